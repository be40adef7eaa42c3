"""The output folder: always one whole run, the earlier or the new; its model is refused with one line if tampered."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import TEST_DATA
from custseg import workspace as workspace_module
from custseg.cli import app
from custseg.engine import DuckDBEngine
from custseg.errors import InputFileError
from custseg.model import MODEL_VERSION, load_model
from custseg.pipeline import run
from custseg.record import RECORD_FILE, read_record
from custseg.workspace import Workspace, file_sha256


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


# -- the commit: one rename(2) puts the new folder in place of the earlier one ----------------------

ONE_LINE = "custseg: error: --out {out}: cannot be written ({reason}); the folder is left as it was\n"


def digests(folder):
    """Every file and folder under ``folder`` by relative path: a file as its SHA-256, a folder as "/"."""
    return {
        p.relative_to(folder).as_posix(): "/" if p.is_dir() and not p.is_symlink() else file_sha256(p)
        for p in sorted(folder.rglob("*"))
    }


def recover(out):
    """Do what the next run into ``out`` does first: take the lock and clear what killed runs left."""
    workspace = Workspace(out)
    workspace.open()
    workspace.abort()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The output folder of a run on tests/data/small_shop.csv (no .skops files: too few customers)."""
    return run(TEST_DATA / "small_shop.csv", tmp_path_factory.mktemp("small") / "out").out_dir


@pytest.fixture
def runs(trained, small_run, tmp_path):
    """An earlier run with a file of the user's, the new run's files, and ``out`` alone in its parent folder.

    The earlier run is the 800-customer one, with model/*.skops; the new one has none.
    """
    earlier = tmp_path / "earlier"
    shutil.copytree(trained[1].out_dir, earlier)
    (earlier / "my_notes.txt").write_text("mine")
    out = tmp_path / "runs" / "out"
    out.parent.mkdir()
    new = {**digests(small_run), "my_notes.txt": file_sha256(earlier / "my_notes.txt")}
    return earlier, small_run, out, digests(earlier), new


def stage(out, new):
    """Open a workspace on ``out`` and give its staging folder the files of the finished run ``new``."""
    workspace = Workspace(out)
    workspace.open()
    workspace.close()
    shutil.rmtree(workspace.path)
    shutil.copytree(new, workspace.path)
    return workspace


def unsupported(first, second):
    """An exchange on a system without one (not Linux, or NFS): the commit then makes two renames."""
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


# Every call of these in the commit is a moment at which the kill and failure tests stop it.
FILE_OPERATIONS = ("rename", "replace", "link", "unlink", "rmdir", "mkdir", "chmod", "utime", "fsync")

KILL_AT = """
import errno, itertools, os, shutil, signal, sys
from pathlib import Path
from custseg import workspace

earlier, new, out, swap = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
OPERATIONS = sys.argv[5].split(",")


def unsupported(first, second):
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def kill_at(moment):
    calls = itertools.count(1)

    def counted(operation):
        def call(*args, **kwargs):
            if next(calls) == moment:
                os.kill(os.getpid(), signal.SIGKILL)
            return operation(*args, **kwargs)

        return call

    for name in OPERATIONS:
        setattr(os, name, counted(getattr(os, name)))
    workspace._exchange = counted(workspace._exchange if swap == "exchange" else unsupported)


for moment in itertools.count(1):
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(earlier, out)
    child = os.fork()
    if child == 0:
        # A fresh process per moment, without importing custseg again.
        staged = workspace.Workspace(out)
        staged.open()
        staged.close()
        shutil.rmtree(staged.path)
        shutil.copytree(new, staged.path)
        kill_at(moment)
        staged.commit()
        os._exit(0)
    status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    print(moment, status, flush=True)
    if status != -signal.SIGKILL or sys.stdin.readline() != "next\\n":
        break
"""


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_a_run_killed_at_any_moment_of_its_commit_leaves_the_earlier_or_the_new_folder_whole(runs, swap):
    earlier, new, out, earlier_files, new_files = runs
    driver = subprocess.Popen(
        [sys.executable, "-c", KILL_AT, str(earlier), str(new), str(out), swap, ",".join(FILE_OPERATIONS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    left, status = [], None
    try:
        for line in driver.stdout:
            moment, status = map(int, line.split())
            if status == 0:
                assert digests(out) == new_files and os.listdir(out.parent) == ["out"]
                break
            assert status == -signal.SIGKILL, f"moment {moment}: the commit ended with {status}"
            aside = list(out.parent.glob(".out.replaced-*"))
            if out.exists():
                found = digests(out)
                assert found in (earlier_files, new_files), f"killed at operation {moment}: a mixed folder"
                left.append("new" if found == new_files else "earlier")
            else:
                # Only between the two renames: the earlier folder is beside, whole, and is put back.
                assert swap == "two renames" and len(aside) == 1 and digests(aside[0]) == earlier_files
                found = earlier_files
                left.append("earlier, beside")
            recover(out)
            assert digests(out) == found, f"killed at operation {moment}: the next run changed the folder"
            assert os.listdir(out.parent) == ["out"], f"killed at operation {moment}: leftovers stay"
            driver.stdin.write("next\n")
            driver.stdin.flush()
    finally:
        driver.kill()
        driver.wait()
    assert status == 0, "the commit was never let finish"
    # 30 moments with the exchange: 11 fsyncs (the new run's 8 files, its 2 folders, the parent), the
    # mode, the user's file linked, the rename to .swap, the exchange, 12 files and 2 folders of the
    # earlier run deleted, the lock file; two more renames without the exchange.
    assert len(left) >= 30 and {"earlier", "new"} <= set(left), left
    assert ("earlier, beside" in left) == (swap == "two renames")


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_an_operation_that_fails_in_the_commit_ends_in_one_line_and_one_whole_folder(runs, swap, monkeypatch):
    earlier, new, out, earlier_files, new_files = runs
    failures = 0
    for moment in itertools.count(1):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(earlier, out)
        staged = stage(out, new)
        calls = itertools.count(1)

        def failing(operation):
            def call(*args, **kwargs):
                if next(calls) == moment:  # noqa: B023 (the moment of this pass)
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                return operation(*args, **kwargs)

            return call

        with monkeypatch.context() as patch:
            for name in FILE_OPERATIONS:
                patch.setattr(os, name, failing(getattr(os, name)))
            patch.setattr(
                workspace_module,
                "_exchange",
                failing(workspace_module._exchange if swap == "exchange" else unsupported),
            )
            try:
                staged.commit()
            except InputFileError as refused:
                failures += 1
                assert f"custseg: error: {refused}\n" == ONE_LINE.format(out=out, reason="Input/output error")
                assert digests(out) == earlier_files, f"operation {moment} failed: the folder changed"
            else:
                # A failure after the swap does not fail the run: what is left waits for the next one.
                assert digests(out) == new_files, f"operation {moment} failed: not the new run"
            reached = next(calls) > moment
        recover(out)
        assert os.listdir(out.parent) == ["out"], f"operation {moment} failed: leftovers stay"
        if not reached:
            break
    # Each operation up to the swap (10 fsyncs, the mode, the rename to .swap, the swap) fails the
    # commit, except the link of the user's file: it is copied instead.
    assert failures >= 13 and moment > 30


def test_an_output_folder_that_cannot_be_renamed_ends_in_one_line_and_stays(runs, monkeypatch):
    earlier, _, out, earlier_files, _ = runs
    shutil.copytree(earlier, out)

    def refused(first, second):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(first), None, str(second))

    monkeypatch.setattr(workspace_module, "_exchange", refused)
    result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr == ONE_LINE.format(out=out, reason="Operation not permitted")
    assert digests(out) == earlier_files and os.listdir(out.parent) == ["out"]


def test_the_users_own_files_are_kept_and_the_earlier_runs_are_replaced(tmp_path):
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "old.skops").write_text("earlier")
    (out / "course_customers.parquet").write_text("earlier")
    (out / "mine" / "deeper").mkdir(parents=True)
    (out / "mine" / "deeper" / "notes.txt").write_text("mine")
    (out / "link").symlink_to("mine")
    os.chmod(out, 0o750)
    notes = (out / "mine" / "deeper" / "notes.txt").stat()
    workspace = Workspace(out)
    workspace.open()
    workspace.write_text("new", "segments.csv")
    workspace.commit()
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == {
        "custseg.duckdb",
        "segments.csv",
        "mine",
        "mine/deeper",
        "mine/deeper/notes.txt",
        "link",
    }
    # The same file, not a copy: hard-linked into the new folder before the swap.
    assert (out / "mine" / "deeper" / "notes.txt").stat().st_ino == notes.st_ino
    assert os.readlink(out / "link") == "mine" and stat.S_IMODE(out.stat().st_mode) == 0o750
    assert os.listdir(tmp_path) == ["out"]


def test_an_output_folder_named_by_a_symlink_is_replaced_behind_it(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "segments.csv").write_text("earlier")
    (tmp_path / "out").symlink_to("real")
    workspace = Workspace(tmp_path / "out")
    workspace.open()
    workspace.write_text("new", "segments.csv")
    workspace.commit()
    assert os.readlink(tmp_path / "out") == "real" and (tmp_path / "real" / "segments.csv").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["out", "real"]


def test_an_error_the_caller_was_already_handling_is_not_taken_for_the_runs(tmp_path):
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        workspace = Workspace(tmp_path / "out")
        workspace.open()
        workspace.abort()
    assert os.listdir(tmp_path) == []


def chattr(flag, path):
    """Set or clear the immutable flag (it needs root, as `make test`'s apt-get does): a failure is the test's."""
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"chattr {flag} is not allowed here (run the tests as root): {done.stderr.strip()}")


def test_an_immutable_output_folder_ends_in_one_line_and_stays(runs):
    earlier, _, out, earlier_files, _ = runs
    shutil.copytree(earlier, out)
    chattr("+i", out)
    try:
        result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(out)])
    finally:
        chattr("-i", out)
    assert result.exit_code == 1
    assert result.stderr == f"custseg: error: --out {out}: cannot be written (the folder is read-only)\n"
    assert digests(out) == earlier_files and os.listdir(out.parent) == ["out"]


def test_an_earlier_output_file_that_cannot_be_deleted_does_not_stop_the_new_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "categories.csv").write_text("earlier")
    chattr("+i", out / "categories.csv")
    try:
        workspace = Workspace(out)
        workspace.open()
        workspace.write_text("new", "segments.csv")
        workspace.commit()
        assert {p.name for p in out.iterdir()} == {"custseg.duckdb", "segments.csv"}
        # The earlier folder stays hidden beside, where each run tries again to delete it.
        [left] = tmp_path.glob(".out.swap-*")
        recover(out)
        assert (left / "categories.csv").read_text() == "earlier"
    finally:
        for immutable in tmp_path.glob(".out.swap-*/categories.csv"):
            chattr("-i", immutable)
    recover(out)
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize(
    "where, message",
    [
        pytest.param("a_file/out", "{tmp}/a_file is a file, not a folder", id="a file where a folder is expected"),
        # chmod does not stop root, whom the immutable flag does stop.
        pytest.param(
            "read_only/out",
            f"cannot be written ({'Operation not permitted' if os.geteuid() == 0 else 'Permission denied'})",
            id="a read-only parent folder",
        ),
    ],
)
def test_an_output_path_that_cannot_be_written_ends_in_one_line(tmp_path, where, message):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "read_only").mkdir(mode=0o555)
    if os.geteuid() == 0:
        chattr("+i", tmp_path / "read_only")
    out = tmp_path / where
    try:
        result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(out)])
    finally:
        if os.geteuid() == 0:
            chattr("-i", tmp_path / "read_only")
    assert result.exit_code == 1
    assert result.stderr == f"custseg: error: --out {out}: {message.format(tmp=tmp_path)}\n"


def refuse_writing(name):
    """A `Path.write_text` that finds the disk full when writing a file called ``name``."""
    write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, *args, **kwargs)

    return full


def duckdb_full(*args, **kwargs):
    raise duckdb.IOException('IO Error: Could not write file "custseg.duckdb": No space left on device')


def pandas_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


FULL_DISK = {
    "the report": (Path, "write_text", refuse_writing("report.html")),
    "run.json": (Path, "write_text", refuse_writing(RECORD_FILE)),
    "model.json": (Path, "write_text", refuse_writing("model.json")),
    "a stored table": (DuckDBEngine, "save", duckdb_full),
    "a Parquet file": (DuckDBEngine, "write_parquet", duckdb_full),
    "a CSV file": (pd.DataFrame, "to_csv", pandas_full),
    "the commit's flush": (os, "fsync", pandas_full),
}


@pytest.mark.parametrize("case", FULL_DISK, ids=list(FULL_DISK))
def test_a_full_disk_ends_in_one_line_and_leaves_the_earlier_run(small_run, tmp_path, monkeypatch, case):
    out = tmp_path / "out"
    shutil.copytree(small_run, out)
    before = digests(out)
    owner, name, full = FULL_DISK[case]
    monkeypatch.setattr(owner, name, full)
    result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(out)])
    monkeypatch.undo()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == ONE_LINE.format(out=out, reason="No space left on device")
    assert digests(out) == before and os.listdir(tmp_path) == ["out"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MiB filesystem (tmpfs), unmounted after the test; mounting needs root."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here (run the tests as root): {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


# With this much space left, the run stops at: DuckDB's new database, a stored table, the report.
@pytest.mark.parametrize("free_kib", [0, 32, 1024], ids=["open", "a stored table", "the report"])
def test_a_really_full_disk_ends_in_one_line_and_leaves_the_earlier_run(small_run, small_disk, free_kib):
    out = small_disk / "out"
    shutil.copytree(small_run, out)
    before = digests(out)
    space = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * max(space.f_bavail * space.f_frsize - free_kib * 1024, 0))
    result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr == ONE_LINE.format(out=out, reason="No space left on device")
    assert digests(out) == before and sorted(os.listdir(small_disk)) == ["filler", "out"]


def test_a_mount_point_is_refused_with_one_line(small_disk):
    result = CliRunner().invoke(app, ["run", str(TEST_DATA / "small_shop.csv"), "--out", str(small_disk)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"custseg: error: --out {small_disk}: is a mount point, which cannot be replaced in one step; "
        "give a folder inside it\n"
    )
