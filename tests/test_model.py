"""The model folder: what a run keeps, what assign applies, and what is refused."""

from __future__ import annotations

import datetime
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from custseg import model as model_folder
from custseg.cli import app
from custseg.errors import InputFileError
from custseg.model import MODEL_VERSION, load_model
from custseg.pipeline import assign


def test_run_writes_a_model_folder_with_version_settings_and_checksum(trained):
    _, result = trained
    manifest = json.loads((result.out_dir / "model" / "model.json").read_text())
    assert manifest["model_version"] == MODEL_VERSION
    assert manifest["trained_on"]["sha256"] == result.record.input.sha256
    assert manifest["rfm"]["cut_points"] == result.record.rfm.cut_points
    assert len(manifest["segments"]) == result.record.segments.chosen["n_segments"]
    assert (result.out_dir / "model" / "segmentation.skops").exists()
    assert not list(result.out_dir.glob("**/*.pkl")) and not list(result.out_dir.glob("**/*.pickle"))


def test_assign_on_the_training_file_reproduces_every_segment(trained, tmp_path):
    files, result = trained
    assign(files.log, result.out_dir, tmp_path / "assigned.csv")
    assigned = pd.read_csv(tmp_path / "assigned.csv", dtype={"customer_id": str, "rfm_code": str})
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    merged = customers.merge(assigned, on="customer_id", suffixes=("_run", "_assign"))
    assert len(merged) == len(customers) == len(assigned)
    for column in ("rfm_code", "rfm_segment", "segment", "segment_name"):
        assert (merged[f"{column}_run"] == merged[f"{column}_assign"]).all(), column


def test_assign_scores_new_customers_with_the_stored_cut_points(trained, tmp_path):
    files, result = trained
    log = pd.read_parquet(files.log)
    early = log[log.InvoiceDate < "2011-06-01"]
    early.to_parquet(tmp_path / "early.parquet")
    out = assign(tmp_path / "early.parquet", result.out_dir, tmp_path / "early_assigned.parquet")
    assigned = pd.read_parquet(tmp_path / "early_assigned.parquet")
    assert out.customers.as_of == datetime.datetime(2011, 6, 1, 0, 0, 0)
    assert assigned.segment.notna().all() and assigned.rfm_segment.notna().all()
    cuts = result.record.rfm.cut_points["monetary"]
    expected = 1 + sum(assigned.monetary.iloc[0] > c for c in cuts)
    assert assigned.m_score.iloc[0] == expected


def test_untrusted_types_in_a_model_file_are_refused(trained, monkeypatch):
    _, result = trained
    monkeypatch.setattr(model_folder, "TRUSTED_TYPES", frozenset())
    with pytest.raises(InputFileError, match="refusing untrusted types custseg.backtest.BacktestOptions, custseg"):
        load_model(result.out_dir)


def test_assign_command_reports_a_missing_model_in_one_line(tmp_path, trained):
    files, _ = trained
    outcome = CliRunner().invoke(
        app, ["assign", str(files.log), "--model", str(tmp_path), "--out", str(tmp_path / "a.csv")]
    )
    assert outcome.exit_code == 1
    assert outcome.stderr == (
        f"custseg: error: {tmp_path}: no model.json; give the output folder of custseg run (or its model/)\n"
    )


# -- early prediction ---------------------------------------------------------------------------
