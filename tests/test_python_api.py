"""The Python API as a notebook uses it: only what ``import custseg`` offers.

The simulated shop is made with `custseg.simulate` (the data of ``custseg demo``); everything after
that goes through `custseg.run`, `custseg.load`, `Run` and `Model`, and the answers are checked
against the output folder and ``custseg assign``.
"""

from __future__ import annotations

import gc
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import custseg
from custseg.cli import app
from custseg.errors import ConfigError, InputFileError
from custseg.record import InputSection, RunRecord, to_dict, to_json
from custseg.simulate import simulate_to_files


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    files = simulate_to_files(folder / "shop.parquet", 600, seed=11)
    return files, custseg.run(files.log, folder / "out", seed=3)


def test_a_run_gives_every_table_as_a_dataframe(shop):
    _, result = shop
    record = result.record
    assert to_dict(record) == json.loads((result.out_dir / "run.json").read_text())
    rows = record.rows
    assert len(result.transactions) == rows.input_rows == len(result.lines) + len(result.rejected)
    assert len(result.rejected) == rows.rejected_rows and len(result.lines) == rows.kept_rows
    assert result.rejected.reason.value_counts().to_dict() == {r: n for r, n in rows.rejected_by_reason.items() if n}
    pd.testing.assert_frame_equal(result.customers, pd.read_parquet(result.out_dir / "customers.parquet"))
    assert len(result.customers) == record.customers.count and result.customers.customer_id.is_unique
    assert result.customers.segment.notna().all()
    assert result.products.product_id.is_unique and len(result.products) == record.products.products
    learned = result.segments[result.segments.kind == "learned"]
    assert learned.segment.tolist() == [p["segment"] for p in record.segments.profiles]
    assert learned.customers.sum() == len(result.customers)
    assert result.report_path == result.out_dir / "report.html" and result.report_path.stat().st_size > 100_000
    assert record.settings["seed"] == 3


def test_the_notebook_summary_says_what_the_run_found(shop):
    _, result = shop
    summary = result._repr_html_()
    rows = result.record.rows
    assert f"{rows.input_rows:,} rows: {rows.kept_rows:,} kept" in summary
    assert "revenue reconciled" in summary
    for profile in result.record.segments.profiles:
        assert f"<td>{profile['segment']}</td>" in summary
    assert f"validity {result.record.segments.backtest.validity:.3f} learned" in summary


def test_model_assign_gives_the_answer_of_custseg_assign(shop, tmp_path):
    files, result = shop
    log = pd.read_parquet(files.log)
    # New transactions: some customers' first weeks, in the training layout, as a DataFrame.
    new = log[log.CustomerID.isin(log.CustomerID.dropna().unique()[:80])].head(1500)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    cli = CliRunner().invoke(
        app,
        ["assign", str(tmp_path / "new.parquet"), "--model", str(result.out_dir), "--out", str(tmp_path / "a.parquet")]
        + ["--as-of", "2011-06-01"],
    )
    assert cli.exit_code == 0, cli.output
    expected = pd.read_parquet(tmp_path / "a.parquet")
    assert len(expected) > 10
    from_frame = result.model.assign(new, as_of="2011-06-01")
    pd.testing.assert_frame_equal(from_frame, expected)
    from_file = custseg.Model.load(result.out_dir / "model").assign(tmp_path / "new.parquet", as_of="2011-06-01")
    pd.testing.assert_frame_equal(from_file, expected)
    assert set(result.model.segments.segment) == set(result.segments[result.segments.kind == "learned"].segment)


def test_a_dataframe_without_an_output_folder_runs_like_its_file(shop):
    files, result = shop
    in_memory = custseg.run(pd.read_parquet(files.log), seed=3)
    folder = in_memory.out_dir
    assert folder.exists() and in_memory.record.input.format == "dataframe"
    assert in_memory.record.input.sha256 and in_memory.record.input.path == "DataFrame"
    pd.testing.assert_frame_equal(in_memory.customers, result.customers)
    pd.testing.assert_frame_equal(in_memory.segments, result.segments)
    assert custseg.load(folder).record.reconciliation == result.record.reconciliation
    del in_memory
    gc.collect()
    assert not folder.exists()


def test_reopening_a_run_reads_the_same_tables(shop):
    _, result = shop
    again = custseg.load(result.out_dir)
    pd.testing.assert_frame_equal(again.customers, result.customers)
    assert repr(again) == f"Run({str(result.out_dir)!r})"


def test_bad_settings_and_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(TypeError, match="unknown setting.s. segmentz; the settings are as_of, seed"):
        custseg.run(tmp_path / "x.csv", segmentz=5)
    with pytest.raises(InputFileError, match="no run.json; give the output folder of custseg run"):
        custseg.load(tmp_path)
    with pytest.raises(InputFileError, match="no model.json"):
        custseg.Model.load(tmp_path)


def test_a_damaged_run_json_is_refused_when_the_folder_is_opened(tmp_path):
    (tmp_path / "run.json").write_text('{"custseg_version": ')
    with pytest.raises(InputFileError, match=r"run\.json: not readable JSON .*; run custseg run again$"):
        custseg.load(tmp_path)


def test_a_dataframe_naming_a_column_twice_is_refused_as_a_file_is():
    frame = pd.DataFrame([["536365", "6", "3", "17850"]], columns=["InvoiceNo", "Quantity", "Quantity", "CustomerID"])
    with pytest.raises(InputFileError) as caught:
        custseg.run(frame)
    assert str(caught.value) == (
        "DataFrame: column 'Quantity' appears more than once in the header (columns 2, 3); "
        "give each column its own name"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_segments": "five"}, "n_segments='five' must be a whole number"),
        ({"seed": "one"}, "seed='one' must be a whole number"),
        ({"as_of": 2011}, "as_of=2011 must be a text or a date"),
        ({"column_map": {"customer_id": None}}, "column_map={'customer_id': None} must be a table of texts"),
    ],
)
def test_a_setting_of_the_wrong_type_is_a_config_error_naming_it(settings, message):
    frame = pd.DataFrame({"CustomerID": ["17850"]})
    with pytest.raises(ConfigError) as by_run:
        custseg.run(frame, **settings)
    with pytest.raises(ConfigError) as by_stages:
        custseg.Stages(**settings).read(frame)
    assert str(by_run.value) == str(by_stages.value) == message


def test_the_stages_one_by_one_give_the_runs_customers(shop):
    files, result = shop
    s = custseg.Stages(seed=3)
    read = s.read(files.log)
    cleaned = s.clean(read)
    products = s.products(cleaned)
    now = s.features(read, cleaned, products)
    earlier = s.features(read, cleaned, products, as_of="2011-03-01")
    rfm = s.rfm(now)
    backtest = s.backtest(cleaned, products, now)
    interests = s.interests(cleaned, products, now, rfm, backtest)
    segments = s.segments(read, rfm, interests, products, backtest)
    movement = s.movement(backtest, rfm, segments, now)
    value = s.value(segments, backtest, movement, cleaned, products, now)
    early = s.early(value, cleaned, products, now, segments)
    customers = early.table.to_pandas().sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(customers, result.customers, check_dtype=False)
    assert segments.segments == result.record.segments and interests.interests == result.record.interests
    assert movement.movement == result.record.movement and value.value == result.record.value
    assert cleaned.rows == result.record.rows and now.customers == result.record.customers
    # The customers as of an earlier date are their own table: the later call did not replace it.
    then = earlier.table.to_pandas()
    assert earlier.as_of.date().isoformat() == "2011-03-01" and 0 < len(then) < len(customers)
    assert (then.recency_days >= 0).all() and then.frequency.sum() < now.table.to_pandas().frequency.sum()


def test_the_summary_of_a_course_run_says_what_the_course_did(tmp_path):
    record = RunRecord(
        custseg_version=custseg.__version__,
        settings={},
        input=InputSection(
            path="x.parquet",
            format="parquet",
            encoding=None,
            delimiter=None,
            columns=[],
            preset="uci_online_retail",
            layout="uci_online_retail",
            column_map={},
            timestamp_format=None,
            timestamp_format_ties=[],
            currency=None,
        ),
        course={
            "counts": {"rows_raw": 10, "rows_final": 8, "customers": 3, "customers_after_trim": 2},
            "comparison": [{"holds": True}, {"holds": False}],
        },
    )
    (tmp_path / "run.json").write_text(to_json(record))
    summary = custseg.load(tmp_path)._repr_html_()
    assert "10 rows to 8, 3 customers, 2 after its trim of the top customers; 1 of 2 published figures" in summary
