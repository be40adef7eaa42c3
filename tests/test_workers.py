"""Worker processes start before the model stages need them, and end with the run, even when it is killed."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from joblib import delayed, effective_n_jobs

from custseg.simulate import simulate_to_files
from custseg.workers import parallel, start_workers, workers_end_with_the_run


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def workers_of(pid: int) -> list[int]:
    """joblib's worker processes and resource trackers started by ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if parent == pid and (b"loky" in command or b"resource_tracker" in command):
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
def test_a_killed_runs_workers_end_with_it(tmp_path):
    files = simulate_to_files(tmp_path / "shop.parquet", 1500, seed=2)
    run = subprocess.Popen(
        [sys.executable, "-m", "custseg.cli", "run", str(files.log), "--out", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline, workers = time.monotonic() + 300, []
    while not workers and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = workers_of(run.pid)
    assert workers, "the run ended before it started any worker process"
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in workers if alive(pid)] == []
    # A killed run leaves the output folder as it was: here, none.
    assert not (tmp_path / "out").exists()


def test_the_model_stages_find_the_workers_started_and_ready():
    imported = "'custseg.candidates' in __import__('sys').modules and 'openTSNE' in __import__('sys').modules"
    with workers_end_with_the_run():
        start_workers()
        found = parallel()(delayed(eval)(imported) for _ in range(4 * effective_n_jobs(-1)))
    assert found == [True] * len(found)


def test_a_run_that_ends_before_its_model_stages_ends_without_a_warning_or_a_traceback():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with workers_end_with_the_run():
            start_workers()
        with workers_end_with_the_run():
            assert parallel()(delayed(abs)(-n) for n in range(3)) == [0, 1, 2]
