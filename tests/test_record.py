"""The run record: one typed declaration that run.json, the terminal, the report and the notebook share."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest
from typer.testing import CliRunner

import custseg
from conftest import in_terminal
from custseg.cli import app
from custseg.errors import InputFileError
from custseg.record import (
    RECORD_FILE,
    RECORD_VERSION,
    BacktestSection,
    RunRecord,
    SegmentsSection,
    Skipped,
    from_json,
    json_schema,
    read_record,
    to_dict,
    to_json,
)
from custseg.report.headline import headline


def test_run_json_reads_back_as_the_record_the_run_wrote(trained):
    _, result = trained
    text = (result.out_dir / RECORD_FILE).read_text(encoding="utf-8")
    assert text == to_json(result.record)
    again = from_json(text)
    assert again == result.record
    assert isinstance(again.customers.as_of, datetime.datetime)
    assert isinstance(again.backtest, BacktestSection) and isinstance(again.segments, SegmentsSection)
    # A section that ran with nothing to do is its own type, with its reason.
    assert json.loads(to_json(dataclasses.replace(again, backtest=Skipped(reason="short"))))["backtest"] == {
        "skipped": "short"
    }


def test_the_headline_figures_come_from_the_sections(trained):
    _, result = trained
    record = result.record
    figures = headline(record)
    assert figures.customers == record.customers.count and figures.as_of == record.customers.as_of.date()
    assert figures.kept_rows == record.rows.kept_rows and figures.net_revenue == record.reconciliation.net_revenue
    assert figures.learned_segments == len(record.segments.profiles) > 0
    assert figures.backtest_validity == record.segments.backtest.validity
    assert figures.rfm_validity == record.backtest.rfm.validity
    assert figures.expected_revenue == record.value.expected.expected_revenue
    assert figures.input_name == "shop.parquet"


def test_the_schema_names_every_section_and_refuses_a_wrong_type(trained):
    import jsonschema

    _, result = trained
    schema = json_schema()
    assert set(schema["properties"]) == {field.name for field in dataclasses.fields(RunRecord)}
    written = json.loads((result.out_dir / RECORD_FILE).read_text(encoding="utf-8"))
    jsonschema.validate(written, schema)
    written["rows"]["kept_rows"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(written, schema)


def earlier_layout(folder, trained):
    """A copy of the trained run whose run.json is in the untyped layout of custseg 0.1 (no version)."""
    import shutil

    _, result = trained
    shutil.copytree(result.out_dir, folder)
    written = to_dict(result.record)
    del written["record_version"]
    written["validation"] = written.pop("backtest")
    written["custseg_version"] = "0.1.0"
    (folder / RECORD_FILE).write_text(json.dumps(written), encoding="utf-8")
    return folder


def test_a_run_json_of_the_earlier_layout_is_refused_in_one_line(trained, tmp_path):
    folder = earlier_layout(tmp_path / "old", trained)
    message = (
        f"{folder / RECORD_FILE}: written by custseg 0.1.0 in run record version 1; this custseg reads version "
        f"{RECORD_VERSION}: run custseg run again"
    )
    with pytest.raises(InputFileError) as raised:
        custseg.load(folder)
    assert str(raised.value) == message
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 1 and result.stderr == f"custseg: error: {message}\n"
    shown = in_terminal("report", folder, cwd=tmp_path)
    assert shown.exit_code == 1 and "Traceback" not in shown.output and "run record version 1" in shown.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "not a custseg run record"),
        (
            f'{{"record_version": {RECORD_VERSION}, "custseg_version": "x", "settings": {{}}, '
            '"rows": {"input_rows": "many"}}',
            "rows",
        ),
    ],
)
def test_a_damaged_run_json_is_refused_when_the_run_is_loaded(trained, tmp_path, text, message):
    import shutil

    _, result = trained
    folder = tmp_path / "damaged"
    shutil.copytree(result.out_dir, folder)
    (folder / RECORD_FILE).write_text(text, encoding="utf-8")
    try:
        with pytest.raises(InputFileError, match=message):
            custseg.load(folder)
        with pytest.raises(InputFileError, match=message):
            read_record(folder)
    finally:
        # Damaged on purpose: not a run.json of custseg's for the session's schema check.
        shutil.rmtree(folder)
