"""The worker processes of a run: started before the model stages need them, ended with the run.

Fitting the candidate segmentations, the value model's folds and the early models runs on every core
in joblib's worker processes, which joblib keeps for reuse. Starting them and importing custseg
there takes seconds of CPU, so a run starts them in the background a stage or two before the first
model stage (`start_workers`), which then finds them ready (`parallel`).

When a run is killed (``kill -9``, an out-of-memory kill, a closed terminal), its workers and their
resource trackers would wait for minutes before they notice. On Linux each worker asks the kernel to
kill it when the process that started it dies; elsewhere they end by joblib's idle timeout.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from joblib import Parallel, delayed, effective_n_jobs

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when the thread that created it dies."""
FITTING_MODULES = ("custseg.candidates", "custseg.stages.value", "custseg.early", "openTSNE")
"""What the workers' tasks import: each worker imports them as it starts."""

_starting: Iterator | None = None
"""The workers' start, until a model stage waits for it (`parallel`) or the run ends."""


def end_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when its parent, process ``parent``, dies (Linux; elsewhere nothing).

    A parent that died while this process was starting is too late for the kernel: then it ends now.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)


@contextmanager
def workers_end_with_the_run() -> Iterator[None]:
    """Within the block, joblib's worker processes end when the process that started them dies."""
    from joblib import parallel_config

    with parallel_config(backend="loky", initializer=end_with_parent, initargs=(os.getpid(),)):
        try:
            yield
        finally:
            # A run that ends before its model stages waits for the start to finish: stopping it
            # midway races in joblib's executor, which then prints a traceback.
            _wait_for_start()


def _import_fitting_modules() -> None:
    for name in FITTING_MODULES:
        importlib.import_module(name)


def start_workers() -> None:
    """Start the workers in the background, each importing `FITTING_MODULES` (within `workers_end_with_the_run`)."""
    global _starting
    if _starting is None:
        # One task a worker, one at a time: the imports take long enough that each worker takes one.
        _starting = Parallel(n_jobs=-1, batch_size=1, return_as="generator_unordered")(
            delayed(_import_fitting_modules)() for _ in range(effective_n_jobs(-1))
        )


def parallel() -> Parallel:
    """Return joblib's `Parallel` on every core, once the workers `start_workers` started are ready.

    A `Parallel` called while the start still runs would start workers of its own.
    """
    _wait_for_start()
    return Parallel(n_jobs=-1)


def _wait_for_start() -> None:
    global _starting
    starting, _starting = _starting, None
    if starting is not None:
        for _ in starting:
            pass
