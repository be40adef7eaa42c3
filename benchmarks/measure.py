"""Run a command as a child process and measure its wall time and peak resident memory.

The child reports its own peak (`peak_mb`, VmHWM of /proc/self/status): Linux carries a
process's high-water mark across fork and exec, so the parent's wait4 figure would include the
benchmark driver's own memory.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Measurement:
    seconds: float
    peak_mb: float
    stdout: str


def measure(command: list[str]) -> Measurement:
    """Run ``command``; return its wall time, its peak RSS (MB, from wait4) and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, _ = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
        stdout = out.read()
        return Measurement(seconds=seconds, peak_mb=float(stdout.split()[-1]), stdout=stdout)


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) that process ``pid`` has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        # After the command name in parentheses: utime and stime are fields 14 and 15 of stat.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


RUN_PRELUDE = """
import json, sys, time
from custseg.engine import EngineOptions
from custseg.pipeline import run
from custseg.settings import Settings
sys.path.insert(0, {here!r})
from measure import peak_mb
engine = EngineOptions(**json.loads({engine!r}))
start = time.perf_counter()
"""
"""Start of a child script that runs custseg with an engine: format with here, engine (JSON) and the
script's own fields; it sets ``engine`` and ``start``, and can report ``peak_mb()``."""
