"""Run the stages in order, from a file to a finished output folder, with a record of the run.

A user wants one command that does everything and leaves behind how it was done: inputs and
their checksum, settings, row counts per rule, the revenue reconciliation, timings and versions.
`run` learns and writes the output folder; `assign` applies a stored model to other transactions.
Both compose the stage functions of `custseg.stages`, and run.json is assembled here from their
results.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa

from custseg import __version__
from custseg import stages as stage
from custseg.course import run_course
from custseg.errors import EmptyInputError, InputFileError, MissingColumnsError
from custseg.model import FittedModel, load_model, model_manifest, save_model
from custseg.movement import migration, migration_summary
from custseg.products import categories_state
from custseg.report import write_report
from custseg.rfm import RFMScorer
from custseg.settings import InputOptions, Settings, settings_from_dict
from custseg.value import value_columns
from custseg.workspace import MODEL_FOLDER, Workspace

STAGES = (
    "read",
    "clean",
    "products",
    "features",
    "rfm",
    "backtest",
    "segments",
    "movement",
    "value",
    "early",
    "write",
    "report",
)
"""Stage names in run order, as reported to the progress callback and in run.json timings."""
COURSE_STAGES = ("read", "course")
"""Stages of ``--recipe course``: the published course pipeline instead of custseg's."""


@dataclass
class RunResult:
    """What a finished run leaves: the output folder and the manifest written to run.json."""

    out_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)


class _Until(Exception):
    """Raised after the stage named by ``until``: the run stops there and writes what it has."""


class _Stages:
    """Time each stage, report it to the progress callback, and stop after ``until``."""

    def __init__(self, on_stage: Callable[[str], None] | None, until: str | None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage
        self.until = until

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        if name == self.until:
            raise _Until


def package_versions() -> dict[str, str]:
    """Versions of custseg, Python and the packages that decide its results."""
    versions = {"custseg": __version__, "python": platform.python_version()}
    for package in ("ibis-framework", "duckdb", "pyarrow", "pandas", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


Data = str | Path | pd.DataFrame | pa.Table


@contextmanager
def _workspace(out_dir: str | Path, settings: Settings) -> Iterator[Workspace]:
    """Open a workspace; commit it when the block ends, abort it when the block fails."""
    workspace = Workspace(out_dir, settings.engine)
    workspace.open()
    try:
        yield workspace
    except BaseException:
        workspace.abort()
        raise
    workspace.commit()


def as_input(data: Data) -> Data:
    """Return a file name as a Path; a URL (Path would fold its "//") or a table in memory as it is."""
    if isinstance(data, pd.DataFrame | pa.Table) or "://" in str(data):
        return data
    return Path(data)


def run(
    data: Data,
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    until: str | None = None,
) -> RunResult:
    """Run the stages on ``data`` and fill ``out_dir``.

    Parameters
    ----------
    data : str, Path, DataFrame or pyarrow.Table
        The transaction log (CSV, gzip CSV, Parquet or Excel, or a table in memory); with the Spark
        engine also a Parquet URL or a Spark table name.
    out_dir : str or Path
        The output folder (created; its previous database is replaced).
    settings : Settings, optional
        Defaults to `Settings()`.
    on_stage : callable, optional
        Called with each stage's name (`STAGES`) as it starts, for progress display.
    until : str, optional
        Stop after this stage (for benchmarks and debugging); run.json then covers the stages run.

    Returns
    -------
    RunResult

    Raises
    ------
    CustsegError
        For any problem with the input or the settings.
    """
    settings = settings or Settings()
    stages = COURSE_STAGES if settings.recipe == "course" else STAGES
    if until is not None and until not in stages:
        raise ValueError(f"until={until!r} must be one of {', '.join(stages)}")
    timed = _Stages(on_stage, until)
    manifest: dict[str, Any] = {"custseg_version": __version__, "settings": settings.to_dict()}
    with _workspace(out_dir, settings) as workspace:
        try:
            if settings.recipe == "course":
                _course(as_input(data), settings, workspace, manifest, timed)
            else:
                _learn(as_input(data), settings, workspace, manifest, timed)
        except _Until:
            pass
        manifest["timings_s"] = timed.seconds
        manifest["versions"] = package_versions()
        workspace.write_json(manifest)
    return RunResult(out_dir=Path(out_dir), manifest=manifest)


def _learn(data: Data, settings: Settings, workspace: Workspace, manifest: dict, timed: _Stages) -> None:
    """Run the stages that learn; each result's summary goes into run.json as it comes."""
    with timed.stage("read"):
        read = stage.read(data, settings, workspace)
        manifest["input"] = read.summary
    name = read.summary["path"]
    with timed.stage("clean"):
        cleaned = stage.clean_lines(read.transactions, settings, workspace, name)
        manifest.update(rows=cleaned.rows, lines=cleaned.span, reconciliation=cleaned.reconciliation)
    with timed.stage("products"):
        products = stage.learn_products(cleaned.lines, settings, workspace)
        manifest["products"] = products.summary
    with timed.stage("features"):
        as_of = stage.default_as_of(settings, read.transactions)
        features = stage.customer_features(cleaned.lines, products, as_of, workspace, name)
        manifest["customers"] = features.summary
    with timed.stage("rfm"):
        scorer = RFMScorer.from_options(settings.rfm).fit(features.customers)
        rfm = stage.score_rfm(features, scorer, settings.rfm.segment_map, workspace)
        manifest["rfm"] = rfm.summary
    with timed.stage("backtest"):
        backtest = stage.backtest(
            cleaned.lines, products, as_of, cleaned.span["first_invoiced_at"], settings, workspace
        )
        manifest["validation"] = backtest.summary
    with timed.stage("segments"):
        segments = stage.learn_segments(rfm, products, backtest, settings, workspace)
        manifest["segments"] = segments.summary
        if segments.backtest is not None:
            manifest["validation"] = {**backtest.summary, "segments": segments.backtest}
    with timed.stage("movement"):
        movement = stage.segment_movement(backtest, rfm, segments, as_of, settings, workspace)
        manifest["migration"] = movement.summary
    with timed.stage("value"):
        value = stage.learn_value(
            segments.customers,
            segments.table,
            backtest,
            movement,
            cleaned.lines,
            products,
            as_of,
            cleaned.span["first_invoiced_at"],
            settings,
            workspace,
        )
        manifest["value"] = value.summary
    customers = value.customers
    with timed.stage("early"):
        early = stage.learn_early(cleaned.lines, products, as_of, segments.segmentation, settings, workspace)
        manifest["early"] = early.summary
        if settings.early.enabled:
            predicted = stage.predict_early(
                customers,
                cleaned.lines,
                products,
                as_of,
                early,
                segments.names,
                segments.segmentation,
                settings,
                workspace,
            )
            customers = predicted.customers
            manifest["early"] = {**early.summary, "predicted_customers": predicted.predicted}
    with timed.stage("write"):
        workspace.write_parquet(cleaned.rejected, "rejected.parquet")
        workspace.write_parquet(customers, "customers.parquet")
        workspace.write_csv(value.table, "segments.csv")
        workspace.write_csv(products.categories, "categories.csv")
        workspace.save("segments", value.table)
        model = model_manifest(
            version=__version__,
            trained_on={k: read.summary[k] for k in ("path", "sha256", "bytes")},
            settings=settings.to_dict(),
            as_of=features.summary["as_of"],
            scorer=rfm.scorer,
            categories=categories_state(products.frame),
            # The learned segments' rows of segments.csv: profiles with their expected value.
            profiles=None if segments.profiles is None else value.table[value.table.kind == "learned"],
            features=segments.segmentation.columns_ if segments.segmentation is not None else None,
            value={"chosen": value.summary.get("chosen"), "columns": value_columns(settings.backtest.horizon_days)},
        )
        save_model(workspace.path / MODEL_FOLDER, model, segments.segmentation, early.models, value.model)
    with timed.stage("report"):
        written = write_report(workspace.path, workspace.backend, manifest)
        manifest["report"] = str(workspace.final / written.name)


def _course(data: Data, settings: Settings, workspace: Workspace, manifest: dict, timed: _Stages) -> None:
    with timed.stage("read"):
        read = stage.read(data, settings, workspace)
        manifest["input"] = read.summary
    with timed.stage("course"):
        customers, report = run_course(read.transactions.execute())
        saved = workspace.save("course_customers", customers.reset_index())
        workspace.write_parquet(saved, "course_customers.parquet")
        manifest["course"] = report


def assign(
    data: Data,
    model: str | Path | FittedModel,
    out: str | Path,
    *,
    input_options: InputOptions | None = None,
    as_of=None,
) -> RunResult:
    """Assign RFM and learned segments to the customers of ``data`` with a stored model; write ``out``.

    ``out`` is Parquet, or CSV for any other extension; its rows are those of `assigned_customers`.

    Raises
    ------
    CustsegError
        For a bad input file, a missing or untrusted model.
    """
    out = Path(out)
    if out.is_dir():
        raise InputFileError(f"--out {out}: is a folder; give a file name ending in .parquet (or .csv)")
    assigned, manifest = assigned_customers(data, model, input_options=input_options, as_of=as_of)
    _write_atomically(assigned, out)
    return RunResult(out_dir=out, manifest=manifest)


def assigned_customers(
    data: Data,
    model: str | Path | FittedModel,
    *,
    input_options: InputOptions | None = None,
    as_of=None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Give the customers of ``data`` their RFM segment, learned segment, expected value and early prediction.

    ``model`` is a run's output folder, its ``model/`` folder or a model loaded from one. The
    transactions are cleaned with the model's rules, products get the model's categories, features
    are computed as of ``as_of`` (default: the day after the data's last transaction), RFM is scored
    with the stored cut points, the learned segment comes from the stored segmentation and the
    expected value over the next H days from the stored value model.

    Returns
    -------
    assigned : DataFrame of shape (n_customers, len(fitted.assigned_columns()) + 1)
        `custseg.model.assigned_columns` and as_of, one row per customer in id order.
    manifest : dict
        What the assignment read and found (input, rows, products, customers, RFM, segments, early).
    """
    fitted = model if isinstance(model, FittedModel) else load_model(model)
    settings = settings_from_dict(fitted.manifest["settings"])
    settings = dataclasses.replace(settings, as_of=as_of, input=input_options or settings.input)
    manifest: dict[str, Any] = {"custseg_version": __version__, "settings": settings.to_dict()}
    with tempfile.TemporaryDirectory(prefix="custseg-assign-") as folder, _workspace(folder, settings) as workspace:
        read = stage.read(as_input(data), settings, workspace)
        manifest["input"] = read.summary
        name = read.summary["path"]
        cleaned = stage.clean_lines(read.transactions, settings, workspace, name)
        manifest.update(rows=cleaned.rows, lines=cleaned.span, reconciliation=cleaned.reconciliation)
        products = stage.stored_products(cleaned.lines, fitted, workspace)
        manifest["products"] = products.summary
        as_of = stage.default_as_of(settings, read.transactions)
        features = stage.customer_features(cleaned.lines, products, as_of, workspace, name)
        manifest["customers"] = features.summary
        rfm = stage.score_rfm(features, fitted.scorer(), settings.rfm.segment_map, workspace)
        manifest["rfm"] = rfm.summary
        segments = stage.stored_segments(rfm, fitted, workspace)
        manifest["segments"] = segments.summary
        valued = workspace.save(
            "customers", stage.with_value(segments.customers, fitted.value, fitted.horizon_days, workspace)
        )
        # Without early models (or with the prediction switched off) the columns are there, null.
        stored = stage.EarlyModels(models=fitted.early if settings.early.enabled else {}, summary={})
        predicted = stage.predict_early(
            valued,
            cleaned.lines,
            products,
            as_of,
            stored,
            segments.names,
            fitted.segmentation,
            settings,
            workspace,
        )
        manifest["early"] = {"predicted_customers": predicted.predicted}
        assigned = predicted.customers.select(*fitted.assigned_columns()).order_by("customer_id").execute()
        assigned["as_of"] = features.summary["as_of"]
    return assigned, manifest


def _write_atomically(frame: pd.DataFrame, out: Path) -> None:
    """Write Parquet (or CSV for any other extension) beside ``out`` and move it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # A failed write never leaves half a file.
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if out.suffix.lower() == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        frame.to_csv(partial, index=False)
    partial.replace(out)


COMPARED_COLUMNS = ("customer_id", "segment", "segment_name", "rfm_segment", "monetary", "revenue_90d", "as_of")
"""What `compare` reads of each assigned table."""


def read_assigned(assigned: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a table written by `assign` (Parquet, or CSV for any other extension), or take one in memory.

    Raises
    ------
    InputFileError
        For a missing or unreadable file.
    MissingColumnsError
        When a column of `COMPARED_COLUMNS` is missing.
    EmptyInputError
        For a table without customers.
    """
    name = "the table" if isinstance(assigned, pd.DataFrame) else str(assigned)
    if isinstance(assigned, pd.DataFrame):
        frame = assigned
    else:
        path = Path(assigned)
        if not path.is_file():
            raise InputFileError(f"{path}: no such file; give a file written by custseg assign")
        try:
            if path.suffix.lower() == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, dtype={"customer_id": str, "segment": str, "rfm_segment": str})
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{path}: not a Parquet or CSV file written by custseg assign ({exc})") from None
    missing = [column for column in COMPARED_COLUMNS if column not in frame.columns]
    if missing:
        raise MissingColumnsError(
            f"{name}: missing column(s) {', '.join(missing)}; give tables written by custseg assign"
        )
    if frame.empty:
        raise EmptyInputError(f"{name}: no customers")
    return frame


def compare(first: str | Path | pd.DataFrame, second: str | Path | pd.DataFrame) -> dict[str, Any]:
    """Count who moved between segments from one assigned table to another (`custseg compare`).

    Both tables come from `assign` with the same model at two dates (``--as-of``); the answer is
    run.json's ``migration`` for those dates.

    Returns
    -------
    dict
        ``learned`` (when either table has learned segments) and ``rfm``: each
        `custseg.movement.migration_summary`.
    """
    tables = [read_assigned(first), read_assigned(second)]
    dates = [str(table.as_of.iloc[0])[:10] for table in tables]
    names = {}
    for table in tables:
        named = table.dropna(subset=["segment"])
        names.update(zip(named.segment.astype(str), named.segment_name.astype(str), strict=True))
    kinds = [("rfm", "rfm_segment", {})]
    if names:
        kinds.insert(0, ("learned", "segment", names))
    columns = ["customer_id", "segment", "rfm_segment", "monetary", "revenue_90d"]
    memtables = [
        ibis.memtable(table[columns].astype({"segment": "string", "rfm_segment": "string"})) for table in tables
    ]
    return {
        kind: migration_summary(migration(*memtables, column).execute(), kind_names, *dates)
        for kind, column, kind_names in kinds
    }
