"""Worker processes end with the run that started them.

Fitting the candidate segmentations, the value model's folds and the early models runs on every core
in joblib's worker processes, which joblib keeps for reuse. When a run is killed (``kill -9``, an
out-of-memory kill, a closed terminal), its workers and their resource trackers would wait for minutes
before they notice. On Linux each worker asks the kernel to kill it when the process that started it
dies; elsewhere they end by joblib's idle timeout.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when the thread that created it dies."""


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
        yield
