"""The model folder: tampered, damaged or foreign models are refused with one line, never loaded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from custseg.cli import app
from custseg.errors import InputFileError
from custseg.model import MODEL_VERSION, load_model
from custseg.pipeline import run
from custseg.record import read_record


def rewrite_manifest(folder, change):
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def truncate(folder):
    path = folder / "model.json"
    path.write_text(path.read_text()[:200])


def junk_with_its_hash(folder):
    (folder / "early.skops").write_bytes(b"not a zip file")
    digest = hashlib.sha256(b"not a zip file").hexdigest()
    rewrite_manifest(folder, lambda m: m["files"].update({"early.skops": digest}))


TAMPERED = {
    "truncated model.json": (truncate, "model.json: not a readable model manifest"),
    "model file replaced": (
        lambda f: (f / "segmentation.skops").write_bytes(b"junk"),
        "segmentation.skops: its SHA-256 is not the one model.json records: the file was changed since custseg "
        "wrote it; refusing to load it",
    ),
    "not a skops file": (junk_with_its_hash, "early.skops: not a skops model file (BadZipFile)"),
    "model file deleted": (lambda f: (f / "early.skops").unlink(), "early.skops: missing; model.json records it"),
    "settings edited": (
        lambda f: rewrite_manifest(f, lambda m: m["settings"].pop("input")),
        "model.json: its settings cannot be read (KeyError('input')); run custseg run again",
    ),
    "another model version": (
        lambda f: rewrite_manifest(f, lambda m: m.update(model_version=MODEL_VERSION - 1)),
        f"model.json: model version {MODEL_VERSION - 1} is not {MODEL_VERSION} (written by another custseg)",
    ),
    "no recorded checksums": (
        lambda f: rewrite_manifest(f, lambda m: m.pop("files")),
        "model.json: no SHA-256 of the model files is recorded",
    ),
}


@pytest.fixture
def model_copy(trained, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(trained[1].out_dir / "model", folder)
    return folder


def test_an_untouched_model_loads_and_records_its_files(model_copy):
    manifest = json.loads((model_copy / "model.json").read_text())
    assert set(manifest["files"]) == {"segmentation.skops", "early.skops", "value.skops"}
    assert load_model(model_copy).segmentation is not None


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_a_tampered_model_is_refused_with_one_line(model_copy, case, trained, tmp_path):
    tamper, message = TAMPERED[case]
    tamper(model_copy)
    with pytest.raises(InputFileError) as refused:
        load_model(model_copy)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    result = CliRunner().invoke(
        app, ["assign", str(trained[0].log), "--model", str(model_copy)] + ["--out", str(tmp_path / "assigned.parquet")]
    )
    assert result.exit_code == 1 and result.stderr.startswith("custseg: error: ")
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "assigned.parquet").exists()


# -- the output folder: never half-written, never mixed ------------------------------------------

CHILD = """
import sys
from custseg.pipeline import run
from custseg.record import read_record
run(sys.argv[1], sys.argv[2], on_stage=lambda name: print(name, flush=True))
"""


def start_run(log, out):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(log), str(out)], stdout=subprocess.PIPE, text=True)


def wait_for_stage(child, stage):
    for line in child.stdout:
        if line.strip() == stage:
            return
    raise AssertionError(f"the run ended before {stage}")


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous_run(trained, tmp_path):
    """A folder holding a finished run, and a file of the user's own beside the run's files."""
    out = tmp_path / "out"
    shutil.copytree(trained[1].out_dir, out)
    (out / "my_notes.txt").write_text("mine")
    return out


def test_a_run_killed_during_the_segments_stage_leaves_the_previous_folder_as_it_was(trained, previous_run):
    before = snapshot(previous_run)
    child = start_run(trained[0].log, previous_run)
    wait_for_stage(child, "segments")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert snapshot(previous_run) == before


def test_a_failed_run_leaves_the_previous_folder_and_a_finished_one_replaces_only_its_files(
    trained, previous_run, tmp_path
):
    before = snapshot(previous_run)
    bad = tmp_path / "bad.csv"
    bad.write_text("Client,Total\na,1\n")
    result = CliRunner().invoke(app, ["run", str(bad), "--out", str(previous_run)])
    assert result.exit_code == 1 and "missing required column" in result.stderr
    assert snapshot(previous_run) == before
    assert not list(previous_run.parent.glob(".out.partial-*"))
    (previous_run / "course_customers.parquet").write_text("a stale output of an earlier run")
    run(trained[0].log, previous_run, until="rfm")
    names = {p.name for p in previous_run.iterdir()}
    assert "my_notes.txt" in names and "course_customers.parquet" not in names and "model" not in names
    assert read_record(previous_run).timings_s.keys() >= {"read", "rfm"}


def test_a_second_run_into_the_same_folder_stops_while_the_first_writes(trained, tmp_path):
    out = tmp_path / "busy"
    child = start_run(trained[0].log, out)
    try:
        wait_for_stage(child, "clean")
        result = CliRunner().invoke(app, ["run", str(trained[0].log), "--out", str(out)])
        assert result.exit_code == 1
        assert (
            result.stderr == f"custseg: error: --out {out}: another custseg run is writing this folder; wait for it\n"
        )
    finally:
        child.kill()
        child.wait()


def test_out_paths_that_cannot_be_a_folder_or_a_file_are_refused(trained, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    result = CliRunner().invoke(app, ["run", str(trained[0].log), "--out", str(a_file)])
    assert result.stderr == f"custseg: error: --out {a_file}: is a file, not a folder\n"
    result = CliRunner().invoke(
        app, ["assign", str(trained[0].log), "--model", str(trained[1].out_dir), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"custseg: error: --out {tmp_path}: is a folder; give a file name ending in .parquet (or .csv)\n"
    )
