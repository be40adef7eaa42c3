"""Where a run's tables and files live: one output folder with a DuckDB file, Parquet and JSON.

Analysts want every intermediate table for their own SQL, and a record of how the run was made;
this module is the only place that creates, overwrites or reads that folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
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
    A run writes into a staging folder beside the output folder (``.NAME.partial-PID``) and
    `commit` moves its files into place at the end, replacing those of an earlier run: a run that
    fails or is killed leaves the folder as it was. A lock beside the folder
    (``.NAME.lock``) stops a second run into the same folder while one is writing.

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

    def open(self) -> ibis.BaseBackend:
        """Take the folder's lock, start a fresh staging folder and return the engine's connection.

        Raises
        ------
        InputFileError
            If the output path is a file or cannot be written, or another run is writing it.
        """
        final = self.final
        if final.exists() and not final.is_dir():
            raise InputFileError(f"--out {final}: is a file, not a folder")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(final.parent / f".{final.name}.lock", "w")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise InputFileError(f"--out {final}: cannot be written ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise InputFileError(f"--out {final}: another custseg run is writing this folder; wait for it") from None
        # Staging folders of runs that were killed: nobody holds them now that we hold the lock.
        for stale in final.parent.glob(f".{final.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.path = final.parent / f".{final.name}.partial-{os.getpid()}"
        self.path.mkdir()
        self.backend = self.engine.open(self.path)
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
        """Close the engine and move the run's files into the output folder, replacing an earlier run's."""
        self.close()
        self.final.mkdir(exist_ok=True)
        trash = self.path / ".replaced"
        trash.mkdir()
        for old in self.final.iterdir():
            if old.name in RUN_OUTPUTS:
                old.rename(trash / old.name)
        for new in self.path.iterdir():
            if new != trash:
                new.rename(self.final / new.name)
        self._discard()

    def abort(self) -> None:
        """Close the engine and drop the staging folder: the output folder stays as it was."""
        try:
            self.close()
        finally:
            self._discard()

    def _discard(self) -> None:
        if self.path != self.final:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = self.final
        if self._lock is not None:
            # Removed while still held: a run that starts now takes a new lock file, after the moves.
            Path(self._lock.name).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None


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
