"""Worker processes end with the run that started them, even when the run is killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from custseg.simulate import simulate_to_files


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
