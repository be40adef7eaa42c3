from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from custseg.cli import app
from custseg.pipeline import run
from custseg.simulate import PRODUCT_KINDS, SEGMENTS, simulate_to_files, transactions


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    files = simulate_to_files(folder / "shop.parquet", 1500, seed=7)
    return files, pd.read_parquet(files.log), pd.read_parquet(files.customers), pd.read_parquet(files.products)


@pytest.mark.parametrize("name", ["a.parquet", "a.csv", "a.csv.gz"])
def test_same_seed_gives_byte_identical_files(tmp_path, name):
    first = simulate_to_files(tmp_path / "one" / name, 300, seed=3)
    second = simulate_to_files(tmp_path / "two" / name, 300, seed=3)
    other = simulate_to_files(tmp_path / "three" / name, 300, seed=4)
    for a, b in [(first.log, second.log), (first.customers, second.customers), (first.products, second.products)]:
        assert a.read_bytes() == b.read_bytes()
    assert first.log.read_bytes() != other.log.read_bytes()


def test_planted_segments_cover_every_customer_with_an_id(shop):
    _, log, customers, _ = shop
    with_id = set(log.CustomerID.dropna().astype(int))
    assert with_id == set(customers.customer_id)
    assert customers.customer_id.is_unique
    assert set(customers.planted_segment) == {s.name for s in SEGMENTS}
    assert 5 <= len(SEGMENTS) <= 8


def test_catalogue_has_hundreds_of_products_with_kinds_and_varied_prices(shop):
    _, log, _, products = shop
    assert len(products) >= 300
    assert set(products.planted_kind) == set(PRODUCT_KINDS)
    assert products.product_id.is_unique and products.description.is_unique
    spread = products.groupby("planted_kind").unit_price.agg(lambda p: p.max() / p.min())
    assert (spread > 3).all()
    assert set(log.StockCode) - {"POST", "M", "BANK CHARGES"} <= set(products.product_id)


def test_log_has_seasonality_weekdays_hours_and_multi_line_orders(shop):
    _, log, _, _ = shop
    purchases = log[log.Quantity > 0]
    per_month = purchases.groupby(purchases.InvoiceDate.dt.to_period("M")).InvoiceNo.nunique()
    assert str(per_month.idxmax()) == "2011-11"
    weekday = purchases.InvoiceDate.dt.day_of_week
    assert (weekday == 5).sum() == 0
    assert purchases.InvoiceDate.dt.hour.between(7, 20).all()
    assert purchases.groupby("InvoiceNo").size().median() > 3


def test_every_kind_of_dirt_is_present_and_reported_by_cleaning(shop, tmp_path):
    files, log, _, _ = shop
    assert log.CustomerID.isna().any()
    assert log.duplicated().any()
    assert log.StockCode.isin(["POST", "M", "BANK CHARGES"]).any()
    assert (log.UnitPrice == 0).any()
    assert log.InvoiceNo.str.startswith("C").any()
    result = run(files.log, tmp_path / "out")
    reported = result.record.rows.rejected_by_reason
    for reason in (
        "missing_customer_id",
        "duplicate_row",
        "non_product",
        "non_positive_price",
        "matched_return",
        "partly_matched_return",
        "unmatched_return",
    ):
        assert reported[reason] > 0, reason
    assert reported["matched_return"] > 5 * reported["unmatched_return"]
    assert result.record.span.customers == 1500


def test_chunks_continue_ids_and_invoice_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(transactions, "CUSTOMERS_PER_CHUNK", 100)
    files = simulate_to_files(tmp_path / "x.parquet", 250, seed=1)
    log = pq.read_table(files.log).to_pandas()
    assert pq.ParquetFile(files.log).metadata.num_row_groups == 3
    assert sorted(pd.read_parquet(files.customers).customer_id) == list(range(12346, 12346 + 250))
    invoice_customers = log.dropna(subset=["CustomerID"]).groupby("InvoiceNo").CustomerID.nunique()
    assert (invoice_customers == 1).all()


def test_simulate_command_writes_the_three_files(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--customers", "50", "--seed", "2", "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["customers"] == 50
    assert {p.name for p in tmp_path.iterdir()} == {"s.csv", "s.customers.csv", "s.products.csv"}


def test_simulate_refuses_an_unknown_extension(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "s.txt")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"custseg: error: --out {tmp_path / 's.txt'}: the file name must end in .parquet, .csv or .csv.gz\n"
    )
