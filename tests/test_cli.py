from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from conftest import PROJECT, TEST_DATA
from custseg.cli import app
from custseg.pipeline import STAGES
from custseg.record import Skipped, read_record

runner = CliRunner()
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_on_the_small_shop_writes_the_output_folder(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", TEST_DATA / "small_shop.csv", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"]["input_rows"] == 22
    assert summary["rows"]["kept_rows"] == 13
    assert {k: v for k, v in summary["rows"]["rejected_by_reason"].items() if v} == {
        "missing_customer_id": 1,
        "duplicate_row": 1,
        "non_product": 2,
        "zero_quantity": 1,
        "non_positive_price": 1,
        "matched_return": 1,
        "partly_matched_return": 1,
        "unmatched_return": 1,
    }
    assert summary["reconciliation"]["balanced"] is True
    assert {p.name for p in out.iterdir()} >= {
        "custseg.duckdb",
        "rejected.parquet",
        "run.json",
        "customers.parquet",
        "segments.csv",
    }
    record = read_record(out)
    assert record.input.preset == "uci_online_retail"
    assert record.input.timestamp_format == "%m/%d/%Y %H:%M"
    assert len(record.input.sha256) == 64
    assert set(record.timings_s) == set(STAGES)
    assert record.segments == Skipped(reason="4 customers; learned segments need 20")
    assert isinstance(record.backtest, Skipped)
    assert record.value == Skipped(reason=f"no backtest: {record.backtest.reason}")
    # Movement needs no outcomes: the three customers of T - H and one new one, in RFM segments only.
    assert record.movement.learned is None and record.movement.rfm is not None
    assert sum(flow["customers"] for flow in record.movement.rfm.flows) == 4
    assert record.customers.count == 4
    assert sum(summary["rfm_segments"].values()) == 4
    segments = (out / "segments.csv").read_text().splitlines()
    from custseg.profile import SEGMENT_COLUMNS, segment_value_columns
    from custseg.value import value_columns

    *profile, description, action = SEGMENT_COLUMNS
    columns = [*profile, *segment_value_columns(value_columns(90)), description, action, "currency"]
    assert segments[0] == ",".join(columns)
    assert len(segments) == 1 + 11
    with duckdb.connect(str(out / "custseg.duckdb"), read_only=True) as con:
        tables = {row[0] for row in con.sql("show tables").fetchall()}
        assert tables >= {"transactions", "lines", "rejected", "customers", "segments"}
        assert con.sql("select count(*) from lines").fetchall() == [(13,)]


def test_run_with_a_column_map_and_config_file(tmp_path):
    data = tmp_path / "shop.csv"
    data.write_text("Kunde;Zeit;Betrag\nk1;2011-03-01 10:00;12,50\nk2;2011-03-02 11:00;-3\n", encoding="utf-8")
    result = invoke(
        "run",
        data,
        "--out",
        tmp_path / "a",
        "--map",
        "customer_id=Kunde",
        "--map",
        "invoiced_at=Zeit",
        "--map",
        "amount=Betrag",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"]["kept_rows"] == 1
    assert summary["rows"]["rejected_by_reason"]["unmatched_return"] == 1
    config = tmp_path / "custseg.toml"
    config.write_text('[columns]\ncustomer_id = "Kunde"\ninvoiced_at = "Zeit"\namount = "Betrag"\n')
    result = invoke("run", data, "--out", tmp_path / "b", "--config", config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reconciliation"]["net_revenue"] == 12.5


def bad(tmp_path: Path, text: str | bytes, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


LINE_BREAKS = HEADER + '1,A,"MUG\nRED\nBIG",1,12/1/2010 8:26,1,5,UK\n'
"""Row 1's quoted description holds two line breaks: row 2 starts on the file's fifth line."""

CASES = {
    "missing file": (lambda t: t / "nope.csv", [], "{p}: no such file"),
    "empty file": (lambda t: bad(t, ""), [], "{p}: the file is empty"),
    "header only": (lambda t: bad(t, HEADER), [], "{p}: the file has a header but no data rows"),
    "missing column": (
        lambda t: bad(t, "Client,Total\na,1\n"),
        [],
        "{p}: missing required column(s) customer_id, invoiced_at, amount (or quantity and unit_price); "
        "columns found: Client, Total; map them with --map canonical=source (e.g. --map customer_id=Client) "
        "or a [columns] table in custseg.toml",
    ),
    "the UCI layout without its customer column": (
        lambda t: bad(t, HEADER.replace(",CustomerID", "") + "1,A,X,1,12/1/2010 8:26,1,UK\n"),
        [],
        "{p}: missing required column(s) customer_id (CustomerID in the uci_online_retail layout); columns found: "
        "InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, Country; map them with "
        "--map canonical=source (e.g. --map customer_id=Client) or a [columns] table in custseg.toml",
    ),
    "the UCI layout without prices": (
        lambda t: bad(t, HEADER.replace(",UnitPrice", "") + "1,A,X,1,12/1/2010 8:26,5,UK\n"),
        [],
        "{p}: missing required column(s) unit_price (UnitPrice in the uci_online_retail layout, or an amount); "
        "columns found: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, CustomerID, Country; map them "
        "with --map canonical=source (e.g. --map customer_id=Client) or a [columns] table in custseg.toml",
    ),
    "a column name twice": (
        lambda t: bad(t, HEADER.strip() + ",Quantity\n1,A,X,1,12/1/2010 8:26,1,5,UK,3\n"),
        [],
        "{p}: column 'Quantity' appears more than once in the header (columns 4, 9); give each column its own name",
    ),
    "unreadable encoding": (
        lambda t: bad(t, b"\xff\xfeI\x00n\x00"[2:] + b"\x00,\x00"),
        [],
        "{p}: cannot be read as text: it holds NUL bytes (a binary file, or UTF-16 without a byte-order mark; "
        "give --encoding)",
    ),
    "wrong encoding": (
        lambda t: bad(t, (HEADER + "1,A,CAF\xc9,1,12/1/2010 8:26,1,5,UK\n").encode("latin-1")),
        ["--encoding", "utf-8"],
        "{p}: row 1 is not valid utf-8 (byte 0xc9); give the right --encoding",
    ),
    "wrong encoding after a value with line breaks": (
        lambda t: bad(t, (LINE_BREAKS + "2,A,CAF\xc9,1,12/1/2010 8:26,1,5,UK\n").encode("latin-1")),
        ["--encoding", "utf-8"],
        "{p}: row 2 is not valid utf-8 (byte 0xc9); give the right --encoding",
    ),
    "a row of too many fields after a value with line breaks": (
        lambda t: bad(t, LINE_BREAKS + "\n2,A,X,1,12/1/2010 8:26,1,5,UK,9\n"),
        [],
        "{p}: row 2 has 9 fields, the header has 8 (1 such row(s)); check the delimiter (--delimiter) and quoting",
    ),
    "text in a numeric column": (
        lambda t: bad(t, HEADER + "1,A,X,six,12/1/2010 8:26,1,5,UK\n2,A,X,one,12/1/2010 8:26,1,5,UK\n"),
        [],
        "{p}: row 1, column 'Quantity': 'six' is not valid (2 of 2 rows in this column are missing or not "
        "numbers); check --map, or --date-format for timestamps",
    ),
    "no rows left": (
        lambda t: bad(t, HEADER + "1,A,X,1,12/1/2010 8:26,1,,UK\n2,POST,POSTAGE,1,12/1/2010 8:26,1,5,UK\n"),
        [],
        "{p}: no rows left after cleaning; rejected by reason: missing_customer_id 1, non_product 1",
    ),
    "bad map option": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--map", "customer_id"],
        "--map 'customer_id' must look like canonical=source, e.g. customer_id=Client",
    ),
    "unknown engine": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--engine", "polars"],
        "engine 'polars' is not one of duckdb, spark",
    ),
    "bad spark setting": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--engine", "spark", "--spark-conf", "spark.driver.memory"],
        "--spark-conf 'spark.driver.memory' must look like key=value, e.g. spark.driver.memory=8g",
    ),
    "negative seed": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--seed", "-1"],
        "seed=-1 must be a whole number, at least 0",
    ),
    "one segment": (lambda t: TEST_DATA / "small_shop.csv", ["--segments", "1"], "n_segments=1 must be at least 2"),
    "negative segments": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--segments", "-3"],
        "n_segments=-3 must be at least 2",
    ),
    "memory limit that is not a size": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--memory-limit", "lots"],
        "memory_limit='lots' must be a size such as 3GB, 500MB or 2.5GiB",
    ),
    "malformed reference date": (
        lambda t: TEST_DATA / "small_shop.csv",
        ["--as-of", "2011-13-01"],
        "as_of='2011-13-01' must be a date like 2011-12-10",
    ),
    "a setting of the wrong type": (
        lambda t: TEST_DATA / "small_shop.csv",
        lambda t: ["--config", bad(t, '[cluster]\nstability_resamples = "many"\n', "custseg.toml")],
        "{t}/custseg.toml [cluster]: stability_resamples = 'many' must be a whole number",
    ),
    "a list setting holding the wrong type": (
        lambda t: TEST_DATA / "small_shop.csv",
        lambda t: ["--config", bad(t, '[cluster]\nmodels = ["kmeans", 3]\n', "custseg.toml")],
        "{t}/custseg.toml [cluster]: models = ['kmeans', 3] must be a list of texts",
    ),
    "missing table with spark": (
        lambda t: "no_such_table",
        ["--engine", "spark", "--spark-master", "local[2]"],
        "{p}: no such file or Spark table",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_gives_one_line_and_exit_1(tmp_path, case):
    make, options, message = CASES[case]
    path = make(tmp_path)
    options = options(tmp_path) if callable(options) else options
    result = invoke("run", path, "--out", tmp_path / "out", *options)
    assert result.exit_code == 1
    assert result.stderr == "custseg: error: " + message.format(p=path, t=tmp_path) + "\n"
    assert "Traceback" not in result.output


def test_every_command_has_help_and_is_in_the_cli_reference():
    readme = (PROJECT / "docs" / "cli.md").read_text()
    commands = [c.name for c in app.registered_commands]
    assert commands
    for command in commands:
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert f"custseg {command}" in readme
        for option in set(re.findall(r"(--[a-z][a-z-]+)", result.output)) - {"--help"}:
            assert option in readme, f"docs/cli.md's reference of `custseg {command}` lacks {option}"


def test_dates_that_fit_both_day_and_month_first_are_read_by_the_tie_rule_and_it_is_said(tmp_path):
    rows = "".join(f"{i},A,THING,1,{i % 12 + 1}/{i % 9 + 1}/2011 10:00,1.5,{100 + i % 4},UK\n" for i in range(1, 30))
    path = bad(tmp_path, HEADER + rows)
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (
        "custseg: note: every timestamp fits both '%m/%d/%Y %H:%M' and '%d/%m/%Y %H:%M'; read as '%m/%d/%Y %H:%M', "
        "the first in custseg's order; if that is wrong, rerun with --date-format '%d/%m/%Y %H:%M'\n"
    ) in result.stderr


def test_timestamps_with_a_utc_offset_keep_the_shops_wall_clock(tmp_path):
    rows = "1,A,THING,1,2010-12-01T11:52:00+01:00,1.5,100,UK\n2,A,THING,1,2010-12-02T09:50:26-05:00,1.5,101,UK\n"
    result = invoke("run", bad(tmp_path, HEADER + rows), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    span = read_record(tmp_path / "out").span
    assert (span.first_invoiced_at, span.last_invoiced_at) == (
        datetime.datetime(2010, 12, 1, 11, 52, 0),
        datetime.datetime(2010, 12, 2, 9, 50, 26),
    )


def test_assign_says_which_reference_date_it_used_and_why(tmp_path):
    model = tmp_path / "run"
    assert invoke("run", TEST_DATA / "small_shop.csv", "--out", model).exit_code == 0
    rows = (TEST_DATA / "small_shop.csv").read_text().splitlines()
    one_customer = bad(tmp_path, "\n".join([rows[0], *(row for row in rows if ",12583," in row)]) + "\n", "few.csv")
    # Customer 12583's last order is 2011-01-14; the model's reference date is the day after the log's last.
    result = invoke("assign", one_customer, "--model", model, "--out", tmp_path / "a.csv")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {key: summary[key] for key in ("as_of", "as_of_source", "model_as_of", "as_of_note")} == {
        "as_of": "2011-01-15 00:00:00",
        "as_of_source": "last_transaction",
        "model_as_of": "2011-12-10 00:00:00",
        "as_of_note": "the day after the last transaction in these rows; the model is as of 2011-12-10: to score "
        "these customers as of the run that trained it, pass --as-of 2011-12-10",
    }
    given = invoke("assign", one_customer, "--model", model, "--out", tmp_path / "b.csv", "--as-of", "2011-12-10")
    assert given.exit_code == 0, given.output
    summary = json.loads(given.stdout)
    assert (summary["as_of"], summary["as_of_source"], summary["as_of_note"]) == (
        "2011-12-10 00:00:00",
        "given",
        "given with --as-of",
    )
    # Scored as of the model's date, the customer's recency is the run's.
    run_customers = duckdb.sql(f"select recency_days from '{model / 'customers.parquet'}' where customer_id = '12583'")
    assigned = duckdb.sql(f"select recency_days from read_csv('{tmp_path / 'b.csv'}') where customer_id = 12583")
    assert assigned.fetchall() == run_customers.fetchall() == [(330,)]
