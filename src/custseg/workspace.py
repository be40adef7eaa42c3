"""Where a run's tables and files live: one output folder with a DuckDB file, Parquet and JSON.

Analysts want every intermediate table for their own SQL, and a record of how the run was made;
this module is the only place that creates, overwrites or reads that folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from custseg.engine import EngineOptions, make_engine
from custseg.errors import InputFileError

MANIFEST_FILE = "run.json"
MODEL_FOLDER = "model"
MODEL_FILE = "model.json"
SEGMENTATION_FILE = "segmentation.skops"
EARLY_FILE = "early.skops"
TRUSTED_TYPES = frozenset(
    {
        "custseg.cluster.ClusterOptions",
        "custseg.cluster.FeatureSpace",
        "custseg.cluster.NextValueScore",
        "custseg.cluster.QuantileTiers",
        "custseg.cluster.Segmentation",
        "custseg.validation.ValidationOptions",
        "custseg.predict.EarlyClassifier",
        "custseg.predict.LookupClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
    }
)
"""Types beyond skops' defaults that a custseg model file may hold; anything else is refused."""


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (NaN becomes null)."""
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


RUN_OUTPUTS = frozenset(
    {
        MANIFEST_FILE,
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
    """

    def __init__(self, path: str | Path, engine: EngineOptions | None = None) -> None:
        self.final = Path(path)
        self.path = self.final
        self.engine = make_engine(engine or EngineOptions())
        self.backend = None
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

    def write_json(self, data: dict[str, Any], file_name: str = MANIFEST_FILE) -> Path:
        """Write ``data`` as indented JSON to ``file_name`` in the folder."""
        target = self.path / file_name
        target.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return target

    def write_model(self, manifest: dict[str, Any], segmentation, early: dict | None = None) -> Path:
        """Write the model folder: segmentation.skops and early.skops when fitted, then model.json.

        model.json records the SHA-256 of every model file (``files``), so that a changed file is
        refused when the model is loaded.
        """
        import skops.io as sio

        folder = self.path / MODEL_FOLDER
        folder.mkdir(exist_ok=True)
        files = {}
        for name, fitted in ((SEGMENTATION_FILE, segmentation and segmentation.portable()), (EARLY_FILE, early)):
            target = folder / name
            target.unlink(missing_ok=True)
            if fitted:
                sio.dump(fitted, target)
                files[name] = file_sha256(target)
        manifest = {**manifest, "files": files}
        (folder / MODEL_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        return folder

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
    elif not (folder / MANIFEST_FILE).exists():
        raise InputFileError(f"{folder}: not the output folder of a custseg run (no {MANIFEST_FILE})")
    raise InputFileError(f"{folder}: the run stored no table {name!r}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(folder: str | Path):
    """Load a model folder written by `Workspace.write_model`, checking it before anything is loaded.

    Refused, with one line naming the file: a missing or unreadable model.json, another model
    version, settings that cannot be read, a model file missing, added or changed since it was
    written (its SHA-256 against model.json's), a file that is not a skops file, a type that is
    not trusted.

    Raises
    ------
    InputFileError
    """
    import skops.io as sio

    from custseg.predict import MODEL_VERSION, FittedModel
    from custseg.settings import settings_from_dict

    folder = Path(folder)
    if (folder / MODEL_FOLDER / MODEL_FILE).exists():
        folder = folder / MODEL_FOLDER
    manifest_path = folder / MODEL_FILE
    if not manifest_path.exists():
        raise InputFileError(f"{folder}: no {MODEL_FILE}; give the output folder of custseg run (or its model/)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{manifest_path}: not a readable model manifest ({exc}); run custseg run again") from None
    if not isinstance(manifest, dict) or manifest.get("model_version") != MODEL_VERSION:
        found = manifest.get("model_version") if isinstance(manifest, dict) else None
        raise InputFileError(
            f"{manifest_path}: model version {found} is not {MODEL_VERSION} (written by another custseg); "
            "run custseg run again"
        )
    try:
        settings_from_dict(manifest["settings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"{manifest_path}: its settings cannot be read ({exc!r}); run custseg run again") from None
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        raise InputFileError(f"{manifest_path}: no SHA-256 of the model files is recorded; run custseg run again")
    fitted = {}
    for name in (SEGMENTATION_FILE, EARLY_FILE):
        stored = folder / name
        if not stored.exists():
            if name in recorded:
                raise InputFileError(f"{stored}: missing; model.json records it")
            continue
        if name not in recorded or file_sha256(stored) != recorded[name]:
            raise InputFileError(
                f"{stored}: its SHA-256 is not the one model.json records: the file was changed since custseg "
                "wrote it; refusing to load it"
            )
        try:
            untrusted = set(sio.get_untrusted_types(file=stored))
        except Exception as exc:  # a corrupt file fails in zipfile or json, with many error types
            raise InputFileError(f"{stored}: not a skops model file ({type(exc).__name__})") from None
        refused = sorted(untrusted - TRUSTED_TYPES)
        if refused:
            raise InputFileError(f"{stored}: refusing untrusted types {', '.join(refused)}")
        fitted[name] = sio.load(stored, trusted=sorted(untrusted))
    return FittedModel(
        manifest=manifest, segmentation=fitted.get(SEGMENTATION_FILE), early=fitted.get(EARLY_FILE) or {}
    )
