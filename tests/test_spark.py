"""The Spark engine on the real UCI Online Retail data: the same results as DuckDB.

Runs `custseg run --engine spark --spark-master local[2]` (Java and pyspark are installed by
`make test`) and compares its tables with the DuckDB run of the same file, value by value.
"""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from custseg.cli import app
from custseg.features import FEATURE_COLUMNS
from custseg.record import read_record

pytestmark = pytest.mark.realdata

RFM_COLUMNS = ("r_score", "f_score", "m_score", "rfm_code", "rfm_segment")


@pytest.fixture(scope="module")
def spark_out(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("spark") / "out"
    result = CliRunner().invoke(
        app,
        ["run", str(shared_data / "online_retail.parquet"), "--out", str(out)]
        + ["--engine", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.sql.shuffle.partitions=8"],
    )
    assert result.exit_code == 0, result.output
    return out


def duckdb_table(run, name: str) -> pd.DataFrame:
    with duckdb.connect(str(run.out_dir / "custseg.duckdb"), read_only=True) as con:
        return con.sql(f"select * from {name}").df()


def comparable(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows in key order, columns by name, every missing value as None, timestamps to the microsecond."""
    frame = frame.sort_values(key).reset_index(drop=True)
    frame = frame[sorted(frame.columns)]
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].astype("datetime64[us]")
    return frame.astype(object).where(frame.notna(), None)


@pytest.mark.parametrize("name", ["transactions", "lines", "rejected"])
def test_spark_gives_the_same_rows_as_duckdb(uci_run, spark_out, name):
    expected = comparable(duckdb_table(uci_run, name), "row_id")
    got = comparable(pd.read_parquet(spark_out / "tables" / name), "row_id")
    assert len(got) == len(expected) > 100_000
    pd.testing.assert_frame_equal(got, expected)


def test_spark_rejects_and_reconciles_the_same(uci_run, spark_out):
    record = read_record(spark_out)
    assert record.settings["engine"]["name"] == "spark"
    assert record.rows == uci_run.record.rows
    assert record.rows.rejected_by_reason["matched_return"] > 0
    assert record.reconciliation == uci_run.record.reconciliation


def test_spark_gives_the_same_features_rfm_and_segments(uci_run, spark_out):
    expected = comparable(pd.read_parquet(uci_run.out_dir / "customers.parquet"), "customer_id")
    got = comparable(pd.read_parquet(spark_out / "customers.parquet"), "customer_id")
    assert len(got) == len(expected) == uci_run.record.customers.count
    columns = [*FEATURE_COLUMNS, *RFM_COLUMNS, "segment", "segment_name"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    # Everything downstream too: interests, the t-SNE map, the early predictions.
    pd.testing.assert_frame_equal(got, expected)


def test_spark_backtests_the_same(uci_run, spark_out):
    record = read_record(spark_out)
    assert record.backtest.customers > 3000
    assert record.backtest == uci_run.record.backtest
    assert record.segments.candidates == uci_run.record.segments.candidates


def test_spark_writes_the_same_output_folder(uci_run, spark_out):
    duck = {p.name for p in uci_run.out_dir.iterdir()} - {"custseg.duckdb", "spill"}
    assert duck <= {p.name for p in spark_out.iterdir()}
    assert (spark_out / "report.html").stat().st_size > 1_000_000
    assert {p.name for p in (spark_out / "model").iterdir()} == {p.name for p in (uci_run.out_dir / "model").iterdir()}
    spark_segments = pd.read_csv(spark_out / "segments.csv")
    pd.testing.assert_frame_equal(spark_segments, pd.read_csv(uci_run.out_dir / "segments.csv"))


def test_spark_reads_a_parquet_url_and_a_table_name(uci_run, spark_out, shared_data, tmp_path):
    from pyspark.sql import SparkSession

    from custseg.engine import EngineOptions
    from custseg.pipeline import run
    from custseg.settings import Settings

    settings = Settings(engine=EngineOptions(name="spark", spark_master="local[2]"))
    url = (shared_data / "online_retail.parquet").resolve().as_uri()
    from_url = run(url, tmp_path / "url", settings, until="clean")
    assert from_url.record.input.path == url
    assert from_url.record.input.sha256 is None
    assert from_url.record.rows == uci_run.record.rows

    # A catalog table over Parquet files (an external table, as in a data lake).
    folder = tmp_path / "lake" / "uci_orders"
    folder.mkdir(parents=True)
    shutil.copy(shared_data / "online_retail.parquet", folder / "part-0.parquet")
    session = SparkSession.builder.getOrCreate()
    session.sql(f"CREATE TABLE uci_orders USING parquet LOCATION '{folder}'")
    try:
        from_table = run("uci_orders", tmp_path / "table", settings, until="clean")
    finally:
        session.sql("DROP TABLE uci_orders")
    assert from_table.record.input.format == "table"
    assert from_table.record.rows == uci_run.record.rows


@pytest.fixture(scope="module")
def zoned_shop(shared_data, tmp_path_factory):
    """January 2011 of the UCI log without product text (one category), timestamps written in
    Tokyo's zone (+09:00, no summer time): as a zoned Parquet column and as CSV text with offsets."""
    folder = tmp_path_factory.mktemp("zoned")
    frame = pd.read_parquet(shared_data / "online_retail.parquet")
    frame = frame[frame.InvoiceDate < "2011-02-01"].drop(columns="Description")
    frame.assign(InvoiceDate=frame.InvoiceDate.dt.tz_localize("Asia/Tokyo")).to_parquet(
        folder / "zoned.parquet", index=False
    )
    text = frame.assign(InvoiceDate=frame.InvoiceDate.dt.strftime("%Y-%m-%dT%H:%M:%S+09:00"))
    text.to_csv(folder / "offsets.csv", index=False)
    return folder, sorted(frame.InvoiceDate)


def spark_transactions(out) -> list:
    read = pd.read_parquet(out / "tables" / "transactions").invoiced_at
    return sorted(read.astype("datetime64[ns]"))


def test_spark_keeps_a_zoned_parquet_files_wall_clock_on_a_shop_of_one_category(zoned_shop, tmp_path):
    folder, written = zoned_shop
    spark, duck = tmp_path / "spark", tmp_path / "duck"
    for out, engine in ((spark, ["--engine", "spark", "--spark-master", "local[2]"]), (duck, [])):
        result = CliRunner().invoke(app, ["run", str(folder / "zoned.parquet"), "--out", str(out), *engine])
        assert result.exit_code == 0, result.output
    assert spark_transactions(spark) == written
    assert len(read_record(spark).products.categories) == 1
    expected = comparable(pd.read_parquet(duck / "customers.parquet"), "customer_id")
    got = comparable(pd.read_parquet(spark / "customers.parquet"), "customer_id")
    assert len(got) > 1000
    pd.testing.assert_frame_equal(got, expected)


def test_spark_drops_a_utc_offset_in_text_as_duckdb_does(zoned_shop, tmp_path):
    from custseg.engine import EngineOptions
    from custseg.pipeline import run
    from custseg.settings import Settings

    folder, written = zoned_shop
    settings = Settings(engine=EngineOptions(name="spark", spark_master="local[2]"))
    result = run(folder / "offsets.csv", tmp_path / "out", settings, until="clean")
    assert result.record.rows.rejected_by_reason.get("invalid_timestamp", 0) == 0
    assert spark_transactions(tmp_path / "out") == written


def report_text(folder) -> list[str]:
    """The report's words and figures without its charts' data."""
    import html
    import re

    page = (folder / "report.html").read_text(encoding="utf-8")
    page = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    return [html.unescape(t.strip()) for t in re.sub(r"<[^>]+>", "\n", page).split("\n") if t.strip()]


def test_spark_tells_the_same_story_in_the_report(uci_run, spark_out):
    # The exploration's tables are aggregated by each engine (eda.py): every sentence must agree.
    expected = report_text(uci_run.out_dir)
    assert len(expected) > 300
    assert report_text(spark_out) == expected
