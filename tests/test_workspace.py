"""The model folder: tampered, damaged or foreign models are refused with one line, never loaded."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from typer.testing import CliRunner

from custseg.cli import app
from custseg.errors import InputFileError
from custseg.predict import MODEL_VERSION
from custseg.workspace import load_model


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
    assert set(manifest["files"]) == {"segmentation.skops", "early.skops"}
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
