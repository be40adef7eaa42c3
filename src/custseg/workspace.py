"""Where a run's tables and files live: one output folder with a DuckDB file, Parquet and JSON.

Analysts want every intermediate table for their own SQL, and a record of how the run was made;
this module is the only place that creates, overwrites or reads that folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from custseg.engine import EngineOptions, make_engine

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


class Workspace:
    """An output folder: every table, Parquet and CSV exports, ``run.json`` and the model.

    Tables live in ``custseg.duckdb``, or with Spark in ``tables/`` (a Parquet dataset each).

    Parameters
    ----------
    path : Path
        The folder; created if missing. Tables of an earlier run in it are replaced.
    engine : EngineOptions, optional
        Which engine computes and stores the tables; DuckDB by default.
    """

    def __init__(self, path: str | Path, engine: EngineOptions | None = None) -> None:
        self.path = Path(path)
        self.engine = make_engine(engine or EngineOptions())
        self.backend = None

    def open(self) -> ibis.BaseBackend:
        """Create the folder, start fresh tables and return the engine's connection."""
        self.path.mkdir(parents=True, exist_ok=True)
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

    from custseg.errors import InputFileError
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
