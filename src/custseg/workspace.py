"""Where a run's tables and files live: one output folder with a DuckDB file, Parquet and JSON.

Analysts want every intermediate table for their own SQL, and a record of how the run was made;
this module is the only place that creates, overwrites or reads that folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from custseg.engine import EngineOptions, make_engine
from custseg.errors import InputFileError
from custseg.record import RECORD_FILE

MODEL_FOLDER = "model"


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (NaN becomes null)."""
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


RUN_OUTPUTS = frozenset(
    {
        RECORD_FILE,
        "report.html",
        "customers.parquet",
        "segments.csv",
        "categories.csv",
        "interest_groups.csv",
        "lists",
        "rejected.parquet",
        "course_customers.parquet",
        "custseg.duckdb",
        "custseg.duckdb.wal",
        "tables",
        "spill",
        MODEL_FOLDER,
    }
)
"""What a run writes into its folder; a new run replaces all of them, and nothing else there."""


class Workspace:
    """An output folder: every table, Parquet and CSV exports, ``run.json`` and the model.

    Tables live in ``custseg.duckdb``, or with Spark in ``tables/`` (a Parquet dataset each).
    A run writes into a staging folder beside the output folder (``.NAME.partial-PID``), and
    `commit` puts the finished folder in place of the earlier one with one rename(2): at every
    moment the output folder is one complete run, the earlier or the new (docs/guarantees.md).
    A lock beside the folder (``.NAME.lock``) stops a second run into the same folder while one
    is writing.

    Parameters
    ----------
    path : Path
        The output folder; created if missing.
    engine : EngineOptions, optional
        Which engine computes and stores the tables; DuckDB by default.

    Attributes
    ----------
    final : Path
        The output folder.
    path : Path
        Where the run writes until `commit` (the staging folder while open).
    keeping : frozenset of str
        The tables the running step will keep (`custseg.pipeline.Step.keeps`), set by the plan's walk.
    """

    def __init__(self, path: str | Path, engine: EngineOptions | None = None) -> None:
        self.final = Path(path)
        self.path = self.final
        self.engine = make_engine(engine or EngineOptions())
        self.backend = None
        self.keeping: frozenset[str] = frozenset()
        self._lock = None
        self._place = self.final
        self._handled_before: BaseException | None = None

    def open(self) -> ibis.BaseBackend:
        """Take the folder's lock, finish what a killed run left, start a staging folder; return the connection.

        Raises
        ------
        InputFileError
            If the output path is a file, a mount point or a folder that cannot be written, its
            parent cannot be written, the disk is full, or another run is writing it.
        """
        final = self.final
        # The folder a symlink names is the one replaced, and locked: the link stays as it is.
        place = self._place = Path(os.path.realpath(final))
        existing = next(path for path in (place, *place.parents) if path.exists())
        if not existing.is_dir():
            what = "is a file" if existing == place else f"{existing} is a file"
            raise InputFileError(f"--out {final}: {what}, not a folder")
        if os.path.ismount(place):
            raise InputFileError(
                f"--out {final}: is a mount point, which cannot be replaced in one step; give a folder inside it"
            )
        if place.is_dir() and not os.access(place, os.W_OK):
            raise InputFileError(f"--out {final}: cannot be written (the folder is read-only)")
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(place.parent / f".{place.name}.lock", "w")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise InputFileError(f"--out {final}: cannot be written ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise InputFileError(f"--out {final}: another custseg run is writing this folder; wait for it") from None
        # An error that the caller was already handling is not one of this run's (see `abort`).
        self._handled_before = sys.exc_info()[1]
        try:
            _recover(place)
            self.path = place.parent / f".{place.name}.partial-{os.getpid()}"
            self.path.mkdir()
            self.backend = self.engine.open(self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise _cannot_write(final, _reason(exc)) from exc
            raise
        return self.backend

    def save(self, name: str, table: ir.Table | pd.DataFrame, *, temp: bool = False) -> ir.Table:
        """Compute ``table`` into the store as ``name`` and return the stored table.

        A ``temp`` table lives only while the workspace is open.
        """
        return self.engine.save(name, table, temp=temp)

    def cache(self, name: str, table: ir.Table | pd.DataFrame) -> ir.Table:
        """Compute ``table`` into the table ``name``: kept when it is one of `keeping`, else temporary.

        A table the running step will keep is stored where it stays at once (on disk, out of the
        memory a temporary table holds), instead of being computed twice.
        """
        return self.engine.save(name, table, temp=name not in self.keeping)

    def write_parquet(self, table: ir.Table, file_name: str) -> Path:
        """Write ``table`` to ``file_name`` in the folder (Parquet, zstd; with Spark, a folder of parts)."""
        target = self.path / file_name
        self.engine.write_parquet(table, target)
        return target

    def write_csv(self, frame: pd.DataFrame, file_name: str) -> Path:
        """Write a DataFrame as UTF-8 CSV (no index) to ``file_name`` in the folder."""
        target = self.path / file_name
        frame.to_csv(target, index=False, encoding="utf-8")
        return target

    def write_text(self, text: str, file_name: str) -> Path:
        """Write ``text`` (UTF-8) to ``file_name`` in the folder."""
        target = self.path / file_name
        target.write_text(text, encoding="utf-8")
        return target

    def close(self) -> None:
        """Close the engine's connection (stored tables stay)."""
        self.engine.close()
        self.backend = None

    def commit(self) -> None:
        """Close the engine and put the finished run in place of the output folder in one step.

        The staging folder is flushed to disk and given hard links to (or copies of) the entries
        of the output folder that custseg did not write (not in `RUN_OUTPUTS`); then one
        rename(2) exchanges it with the output folder, and the earlier run, now in the staging
        folder's place, is deleted. A kill at any moment leaves the earlier folder or the new one
        whole (without the exchange, see `_put_in_place`); `open` clears what is left beside it.

        Raises
        ------
        InputFileError
            If the run cannot be put in place (a full disk, a folder that cannot be renamed); the
            output folder is then as it was.
        """
        place = self._place
        swap = place.parent / f".{place.name}.swap-{os.getpid()}"
        try:
            self.close()
            _flush(self.path)
            if place.is_dir():
                self.path.chmod(stat.S_IMODE(place.stat().st_mode))
                _link_entries(place, self.path)
            # From here a leftover is a finished run: `_recover` keeps the user's files in it.
            self.path.rename(swap)
            self.path = swap
            earlier = _put_in_place(swap, place)
        except BaseException as exc:
            self._discard()
            if not isinstance(exc, Exception):
                raise
            raise _cannot_write(self.final, _reason(exc)) from exc
        self.path = self.final
        # The new run is in place: nothing below may fail the run; a leftover waits for the next one.
        with contextlib.suppress(OSError):
            _fsync(place.parent)
        if earlier is not None:
            _carry_over(earlier, place)
        self._discard()

    def abort(self) -> None:
        """Close the engine and drop the staging folder: the output folder stays as it was.

        Called while the run's failure is being handled (``except`` or ``finally``).

        Raises
        ------
        InputFileError
            In place of the failure when it is a write that the disk refused (full, over quota,
            read-only), so that a full disk ends in one line, not a traceback from the writer.
        """
        failure = sys.exc_info()[1]
        try:
            self.close()
        finally:
            self._discard()
        reason = _disk_full(failure) if failure is not self._handled_before else None
        if reason is not None:
            raise _cannot_write(self.final, reason) from failure

    def _discard(self) -> None:
        if self.path != self.final:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = self.final
        if self._lock is not None:
            # Removed while still held: a run that starts now takes a new lock file, after the swap.
            with contextlib.suppress(OSError):
                Path(self._lock.name).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None


_DISK_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _cannot_write(final: Path, reason: str) -> InputFileError:
    """Build the error of a run that could not write its folder, which is then as it was."""
    return InputFileError(f"--out {final}: cannot be written ({reason}); the folder is left as it was")


def _disk_full(failure: BaseException | None) -> str | None:
    """Return the reason when ``failure`` is a write the disk refused, else None.

    DuckDB and Arrow name the system's error only in their message (``... No space left on device``).
    """
    if isinstance(failure, OSError) and failure.errno in _DISK_REFUSALS:
        return failure.strerror
    return next((os.strerror(code) for code in _DISK_REFUSALS if os.strerror(code) in str(failure)), None)


def _reason(failure: Exception) -> str:
    """Say in a few words why a write failed: the system's error, else the message's first line."""
    if isinstance(failure, OSError) and failure.strerror:
        return failure.strerror
    return _disk_full(failure) or next(iter(str(failure).splitlines()), type(failure).__name__)


def _recover(place: Path) -> None:
    """Finish what runs killed beside the folder ``place`` left, so that it holds one complete run.

    ``.NAME.partial-*`` is a run that did not finish: deleted. ``.NAME.swap-*`` is a finished
    run at its swap, the new one or the earlier one, and ``.NAME.replaced-*`` an earlier run
    moved aside by the two renames of `_put_in_place`: put back if the folder is missing, else
    deleted after moving the user's entries that are not in the folder into it.
    """
    moved_aside = sorted(place.parent.glob(f".{place.name}.replaced-*"))
    if moved_aside and not os.path.lexists(place):
        os.rename(moved_aside.pop(), place)
    for stale in place.parent.glob(f".{place.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for leftover in [*place.parent.glob(f".{place.name}.swap-*"), *moved_aside]:
        _carry_over(leftover, place)


def _carry_over(leftover: Path, folder: Path) -> None:
    """Move the entries of ``leftover`` that custseg did not write and ``folder`` lacks into it; delete the rest.

    An entry the user creates in the folder between `_link_entries` and the swap is only in the
    earlier folder; it must not be deleted with it. If a move fails, ``leftover`` stays for the
    next run to try again.
    """
    try:
        if folder.is_dir():
            for entry in leftover.iterdir():
                if entry.name not in RUN_OUTPUTS and not os.path.lexists(folder / entry.name):
                    entry.rename(folder / entry.name)
    except OSError:
        return
    shutil.rmtree(leftover, ignore_errors=True)


def _flush(folder: Path) -> None:
    """Write every file and folder under ``folder`` to disk.

    What is swapped in is then on disk, and a write the disk refuses late (a full disk on a
    network filesystem reports at fsync) fails the commit before the swap.
    """
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def _fsync(path: Path) -> None:
    """Write one file or folder to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _link_entries(folder: Path, into: Path, skip: frozenset[str] = RUN_OUTPUTS) -> None:
    """Give ``into`` the entries of ``folder`` not named in ``skip``: hard links, sub-folders re-created.

    A file that cannot be linked (an immutable file, a filesystem without hard links) is copied.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name in skip:
                continue
            target = into / entry.name
            if entry.is_dir(follow_symlinks=False):
                target.mkdir()
                _link_entries(Path(entry.path), target, frozenset())
                shutil.copystat(entry.path, target)
                continue
            try:
                os.link(entry.path, target, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry.path, target, follow_symlinks=False)


def _put_in_place(new: Path, place: Path) -> Path | None:
    """Move the folder ``new`` to ``place``; return where the folder that was there went (None if none).

    With an exchange (`_exchange`), ``place`` is at every moment one complete folder, and the
    earlier one ends at ``new``. Where the exchange is not supported (not Linux; a filesystem
    such as NFS), two renames: a run killed between them leaves no folder at ``place`` and the
    earlier one at ``.NAME.replaced-PID``, which `Workspace.open` puts back.
    """
    if not os.path.lexists(place):
        new.rename(place)
        return None
    try:
        _exchange(new, place)
        return new
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
    aside = place.parent / f".{place.name}.replaced-{os.getpid()}"
    place.rename(aside)
    try:
        new.rename(place)
    except OSError:
        aside.rename(place)
        raise
    return aside


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> None:
    """Swap two paths in one system call: Linux's ``renameat2(..., RENAME_EXCHANGE)``.

    Raises
    ------
    OSError
        With the call's errno; ENOSYS where the C library has no ``renameat2``.
    """
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(first))
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(first), None, str(second))


def read_table(folder: str | Path, name: str) -> pd.DataFrame:
    """Read one stored table of a finished run: from ``custseg.duckdb``, or ``tables/`` of a Spark run.

    Returns the DataFrame ``pandas.read_parquet`` would give for the table (nullable integers as float).

    Raises
    ------
    InputFileError
        If the folder holds no run or the run stored no such table.
    """
    import duckdb

    folder = Path(folder)
    database, spark_table = folder / "custseg.duckdb", folder / "tables" / name
    if database.exists():
        with duckdb.connect(str(database), read_only=True) as con:
            if con.sql("select 1 from duckdb_tables() where table_name = ?", params=[name]).fetchone():
                # Through Arrow, as a Parquet file is read: the same dtypes from either engine.
                return con.sql(f'select * from "{name}"').to_arrow_table().to_pandas()
    elif spark_table.exists():
        return pd.read_parquet(spark_table)
    elif not (folder / RECORD_FILE).exists():
        raise InputFileError(f"{folder}: not the output folder of a custseg run (no {RECORD_FILE})")
    raise InputFileError(f"{folder}: the run stored no table {name!r}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
