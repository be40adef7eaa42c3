"""The plan: the stages listed once, walked by `run`, `assign` and the notebook's `custseg.Stages`.

A user wants one command that does everything and leaves behind how it was done. Each `Step` names
a stage, its function (`custseg.stages`), the sections of the run record it fills and the tables
the output folder keeps of it; what a stage needs is the names of its keyword-only arguments
(earlier stages' results, ``settings``, ``store``, ...). `LEARN` is ``custseg run``, `ASSIGN` is
``custseg assign`` (a stored model's stages), `COURSE` the published course recipe. Writing the
output folder is a step of its own, at the end.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd

from custseg import __version__
from custseg.course import run_course
from custseg.errors import EmptyInputError, InputFileError, InvalidValueError, MissingColumnsError
from custseg.lists import LIST_COLUMNS, LISTS_FOLDER, recommended_segmentation, segment_lists, write_lists
from custseg.model import FittedModel, load_model, model_manifest, save_model
from custseg.movement import migration, migration_summary
from custseg.products import categories_state
from custseg.record import RECORD_FILE, AssignRecord, Migration, RunRecord, frozen, read_record, to_json
from custseg.record.value import ValueSection
from custseg.report import write_report
from custseg.settings import InputOptions, Settings, settings_from_dict
from custseg.stages.backtest import build_backtest
from custseg.stages.clean import Cleaned, clean_lines
from custseg.stages.customers import RFM, Features, customer_features, score_rfm, stored_rfm
from custseg.stages.early import Early, learn_early, stored_early
from custseg.stages.interests import Interests, learn_interests, stored_interests
from custseg.stages.movement import segment_movement
from custseg.stages.products import Products, learn_products, stored_products
from custseg.stages.read import Data, Read, read_input
from custseg.stages.segments import Segments, learn_segments, stored_segments
from custseg.stages.value import Value, learn_value, stored_value
from custseg.value import value_columns
from custseg.workers import start_workers, workers_end_with_the_run
from custseg.workspace import MODEL_FOLDER, Workspace


@dataclass(frozen=True)
class Step:
    """One stage of a plan.

    Attributes
    ----------
    name : str
        The stage's name: in progress, timings, and the name later stages take its result by.
    function : callable
        Takes what it needs as keyword-only arguments and returns its result (a frozen dataclass).
    fills : tuple of str
        The run record's sections it fills: attributes of its result of the same names.
    keeps : dict of str to str
        Tables the output folder keeps (in custseg.duckdb, or tables/ with Spark): table name ->
        attribute of the result. Later stages get the kept table.
    starts_workers : bool
        Start the worker processes the model stages fit on as it starts (`custseg.workers.start_workers`).
    """

    name: str
    function: Callable[..., Any]
    fills: tuple[str, ...] = ()
    keeps: dict[str, str] = field(default_factory=dict)
    starts_workers: bool = False

    @property
    def needs(self) -> tuple[str, ...]:
        """What the function needs: its keyword-only arguments without a default."""
        parameters = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty)


@dataclass(frozen=True)
class RunResult:
    """A finished run: its output folder and the record written to its run.json."""

    out_dir: Path
    record: RunRecord


@frozen
class Written:
    """The output folder's files are written (report.html comes last, from the record)."""


@frozen
class Reported:
    """Where report.html went."""

    report: str


@frozen
class Course:
    """The published course recipe's customers and its comparison with the published figures."""

    customers: ir.Table
    course: dict[str, Any]


def package_versions() -> dict[str, str]:
    """Versions of custseg, Python and the packages that decide its results."""
    versions = {"custseg": __version__, "python": platform.python_version()}
    for package in ("ibis-framework", "duckdb", "pyarrow", "pandas", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_outputs(
    *,
    read: Read,
    clean: Cleaned,
    products: Products,
    features: Features,
    rfm: RFM,
    segments: Segments,
    value: Value,
    early: Early,
    interests: Interests,
    settings: Settings,
    workspace: Workspace,
) -> Written:
    """Write the files a marketer opens and the model that assigns tomorrow's customers."""
    workspace.write_parquet(clean.rejected, "rejected.parquet")
    workspace.write_parquet(early.table, "customers.parquet")
    workspace.write_csv(value.rows.assign(currency=read.input.currency), "segments.csv")
    workspace.write_csv(products.categories, "categories.csv")
    if interests.groups is not None:
        workspace.write_csv(interests.groups, "interest_groups.csv")
    model = model_manifest(
        version=__version__,
        trained_on={"path": read.input.path, "sha256": read.input.sha256, "bytes": read.input.bytes},
        settings=settings.to_dict(),
        as_of=features.as_of.isoformat(sep=" "),
        scorer=rfm.scorer,
        categories=categories_state(products.frame),
        # The learned segments' rows of segments.csv: profiles with their expected value.
        profiles=None if segments.profiles is None else value.rows[value.rows.kind == "learned"],
        features=segments.segmentation.columns_ if segments.segmentation is not None else None,
        value={
            "chosen": value.value.chosen if isinstance(value.value, ValueSection) else None,
            "columns": value_columns(settings.backtest.horizon_days),
        },
        interests=interests.state,
    )
    save_model(workspace.path / MODEL_FOLDER, model, segments.segmentation, early.models, value.model)
    return Written()


def write_lists_step(*, record: RunRecord, early: Early, value: Value, workspace: Workspace) -> Written:
    """Write one CSV per segment of the recommended segmentation into ``lists/`` (`custseg.lists`)."""
    horizon_days = record.settings["backtest"]["horizon_days"]
    wanted = [*LIST_COLUMNS, "segment", "rfm_segment", *value_columns(horizon_days).values()]
    customers = early.table.select(*(column for column in wanted if column in early.table.columns)).execute()
    lists = segment_lists(
        customers,
        value.rows,
        segmentation=recommended_segmentation(record).segmentation,
        horizon_days=horizon_days,
        currency=record.input.currency,
    )
    write_lists(workspace.path / LISTS_FOLDER, lists)
    return Written()


def write_report_step(*, record: RunRecord, workspace: Workspace) -> Reported:
    """Write report.html from the record and the kept tables."""
    written = write_report(workspace.path, workspace.backend, record)
    return Reported(report=str(workspace.final / written.name))


def course_recipe(*, read: Read, store) -> Course:
    """Run the published course pipeline on the transactions (``--recipe course``), for comparison."""
    customers, report = run_course(read.transactions.execute())
    return Course(customers=store.cache("course_customers", customers.reset_index()), course=report)


def write_course(*, course: Course, workspace: Workspace) -> Written:
    """Write the course recipe's customers."""
    workspace.write_parquet(course.customers, "course_customers.parquet")
    return Written()


LEARN = (
    Step("read", read_input, fills=("input",), keeps={"transactions": "transactions"}),
    Step(
        "clean", clean_lines, fills=("rows", "span", "reconciliation"), keeps={"lines": "lines", "rejected": "rejected"}
    ),
    Step("products", learn_products, fills=("products",), keeps={"products": "table"}),
    Step("features", customer_features, fills=("customers",)),
    Step("rfm", score_rfm, fills=("rfm",), keeps={"customers": "table"}),
    # The model stages' workers start while the backtest and the interests run. On the UCI file the
    # segments stage then took 6.0 s against 9.4 s, those two 1.9 s more; started with the run,
    # they slowed the data stages as much as they saved.
    Step("backtest", build_backtest, fills=("backtest",), starts_workers=True),
    Step("interests", learn_interests, fills=("interests",), keeps={"customers": "table"}),
    Step("segments", learn_segments, fills=("segments",), keeps={"customers": "table"}),
    Step("movement", segment_movement, fills=("movement",), keeps={"customers_then": "then"}),
    Step("value", learn_value, fills=("value",), keeps={"customers": "table", "segments": "rows"}),
    Step("early", learn_early, fills=("early",), keeps={"customers": "table"}),
    Step("write", write_outputs),
    Step("lists", write_lists_step),
    Step("report", write_report_step, fills=("report",)),
)
"""``custseg run``: learn every stage from the data and write the output folder."""
ASSIGN = (
    Step("read", read_input, fills=("input",), keeps={"transactions": "transactions"}),
    Step(
        "clean", clean_lines, fills=("rows", "span", "reconciliation"), keeps={"lines": "lines", "rejected": "rejected"}
    ),
    Step("products", stored_products, fills=("products",)),
    Step("features", customer_features, fills=("customers",)),
    Step("rfm", stored_rfm, fills=("rfm",)),
    Step("interests", stored_interests),
    Step("segments", stored_segments, fills=("segments",)),
    Step("value", stored_value),
    Step("early", stored_early, fills=("early",)),
)
"""``custseg assign``: a stored model's categories, cut points, segments, value and early models (the
input's rows and lines are kept on disk in a temporary folder, as a run's are in its output folder)."""
COURSE = (
    Step("read", read_input, fills=("input",), keeps={"transactions": "transactions"}),
    Step("course", course_recipe, fills=("course",)),
    Step("write", write_course),
)
"""``--recipe course``: the published course pipeline instead of custseg's."""
STAGES = tuple(step.name for step in LEARN)
"""Stage names of ``custseg run`` in run order, as reported to the progress callback and in the timings."""


def plan_of(settings: Settings) -> tuple[Step, ...]:
    """Return the plan ``custseg run`` walks with these settings."""
    return COURSE if settings.recipe == "course" else LEARN


def walk(
    plan: tuple[Step, ...],
    context: dict[str, Any],
    *,
    on_stage: Callable[[str], None] | None = None,
    until: str | None = None,
    record: Callable[[dict[str, Any]], Any] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the steps in order: each gets what it needs from ``context``, and its result goes back in.

    Parameters
    ----------
    plan : tuple of Step
        The steps, in order.
    context : dict
        What the first step needs (``data``, ``settings``, ``store``, ...); results are added
        under their step's name. With a ``workspace``, each step's `Step.keeps` are kept in it.
    on_stage : callable, optional
        Called with each step's name as it starts.
    until : str, optional
        Stop after this step.
    record : callable, optional
        Builds the record from the sections filled so far, for a step that needs ``record``.

    Returns
    -------
    sections : dict
        The record's sections, by name.
    seconds : dict
        Each step's duration, by name.
    """
    sections: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for step in plan:
        if on_stage is not None:
            on_stage(step.name)
        start = time.perf_counter()
        if step.starts_workers:
            start_workers()
        if "record" in step.needs:
            context["record"] = record(sections)
        workspace = context.get("workspace")
        if workspace is not None:
            workspace.keeping = frozenset(step.keeps)
        result = step.function(**{name: context[name] for name in step.needs})
        if workspace is not None:
            result = _kept(result, step.keeps, workspace)
            workspace.keeping = frozenset()
        context[step.name] = result
        sections.update({name: getattr(result, name) for name in step.fills})
        seconds[step.name] = round(time.perf_counter() - start, 3)
        if step.name == until:
            break
    return sections, seconds


def _kept(result: Any, keeps: dict[str, str], workspace: Workspace) -> Any:
    """Keep a result's tables in the output folder; the result then holds the kept tables.

    A table the stage cached under the kept name is kept already (`Workspace.cache`).
    """
    changes = {}
    for table, attribute in keeps.items():
        value = getattr(result, attribute)
        if value is None or (isinstance(value, ir.Table) and _stored_as(value, table)):
            continue
        kept = workspace.save(table, value)
        if isinstance(value, ir.Table):
            changes[attribute] = kept
    return dataclasses.replace(result, **changes)


def _stored_as(table: ir.Table, name: str) -> bool:
    """Whether ``table`` is the stored table ``name`` itself, not a query over it."""
    operation = table.op()
    return isinstance(operation, ops.DatabaseTable) and operation.name == name


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
        The output folder (created; an earlier run's files in it are replaced when this one ends).
    settings : Settings, optional
        Defaults to `Settings()`.
    on_stage : callable, optional
        Called with each stage's name (`STAGES`) as it starts, for progress display.
    until : str, optional
        Stop after this stage (for benchmarks and debugging); the record then covers the stages run.

    Returns
    -------
    RunResult
        The output folder and what was written to its run.json.

    Raises
    ------
    CustsegError
        For any problem with the input or the settings.
    """
    settings = settings or Settings()
    plan = plan_of(settings)
    names = [step.name for step in plan]
    if until is not None and until not in names:
        raise ValueError(f"until={until!r} must be one of {', '.join(names)}")

    def record(sections: dict[str, Any], **more: Any) -> RunRecord:
        return RunRecord(custseg_version=__version__, settings=settings.to_dict(), **sections, **more)

    workspace = Workspace(out_dir, settings.engine)
    workspace.open()
    try:
        context = {"data": data, "settings": settings, "store": workspace, "workspace": workspace}
        with workers_end_with_the_run():
            sections, seconds = walk(plan, context, on_stage=on_stage, until=until, record=record)
        finished = record(sections, timings_s=seconds, versions=package_versions())
        workspace.write_text(to_json(finished), RECORD_FILE)
    except BaseException:
        workspace.abort()
        raise
    workspace.commit()
    return RunResult(out_dir=Path(out_dir), record=finished)


def assign(
    data: Data,
    model: str | Path | FittedModel,
    out: str | Path,
    *,
    input_options: InputOptions | None = None,
    as_of: datetime.date | None = None,
) -> AssignRecord:
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
    assigned, record = assigned_customers(data, model, input_options=input_options, as_of=as_of)
    _write_atomically(assigned, out)
    return record


def assigned_customers(
    data: Data,
    model: str | Path | FittedModel,
    *,
    input_options: InputOptions | None = None,
    as_of: datetime.date | None = None,
) -> tuple[pd.DataFrame, AssignRecord]:
    """Give the customers of ``data`` their RFM segment, learned segment, interest group, value and early prediction.

    ``model`` is a run's output folder, its ``model/`` folder or a model loaded from one. The
    `ASSIGN` plan cleans the transactions with the model's rules, puts products in the model's
    categories, describes the customers as of ``as_of`` (default: the day after the data's last
    transaction) and applies the stored cut points, segmentation, value and early models and
    interest groups.

    Returns
    -------
    assigned : DataFrame of shape (n_customers, len(fitted.assigned_columns()) + 2)
        `custseg.model.assigned_columns`, as_of and model_id (`FittedModel.model_id`), one row per
        customer in id order.
    record : AssignRecord
        What the assignment read and found.
    """
    fitted = model if isinstance(model, FittedModel) else load_model(model)
    settings = settings_from_dict(fitted.manifest["settings"])
    settings = dataclasses.replace(settings, as_of=as_of, input=input_options or settings.input)
    with tempfile.TemporaryDirectory(prefix="custseg-assign-") as folder:
        workspace = Workspace(folder, settings.engine)
        workspace.open()
        try:
            context = {"data": data, "settings": settings, "store": workspace, "workspace": workspace, "fitted": fitted}
            sections, _ = walk(ASSIGN, context)
            features, early = context["features"], context["early"]
            assigned = early.table.select(*fitted.assigned_columns()).order_by("customer_id").execute()
        finally:
            workspace.abort()
    assigned["as_of"] = features.as_of.isoformat(sep=" ")
    assigned["model_id"] = fitted.model_id
    return assigned, AssignRecord(custseg_version=__version__, settings=settings.to_dict(), **sections)


def export_lists(run_dir: str | Path, out: str | Path | None = None, segmentation: str | None = None) -> list[Path]:
    """Write the lists of a finished run again: one CSV per segment (`custseg.lists.segment_lists`).

    Parameters
    ----------
    run_dir : path
        The output folder of custseg run.
    out : path, optional
        Where the lists go (default: the run's ``lists/``, replaced).
    segmentation : {"learned", "rfm"}, optional
        Which segmentation the lists follow (default: the recommended one).

    Raises
    ------
    InputFileError
        If the folder holds no finished run, or the run has no learned segments and they are asked for.
    """
    run_dir = Path(run_dir)
    customers_file, segments_file = run_dir / "customers.parquet", run_dir / "segments.csv"
    if not (run_dir / RECORD_FILE).exists() or not customers_file.exists() or not segments_file.exists():
        raise InputFileError(
            f"{run_dir}: no {RECORD_FILE}, customers.parquet and segments.csv; give the output folder of custseg run"
        )
    record = read_record(run_dir)
    segmentation = segmentation or recommended_segmentation(record).segmentation
    segments = pd.read_csv(segments_file, keep_default_na=False, na_values=[""])
    if segmentation not in set(segments["kind"]):
        raise InputFileError(f"{run_dir}: this run has no {segmentation} segments (segments.csv)")
    customers = pd.read_parquet(customers_file)
    lists = segment_lists(
        customers,
        segments,
        segmentation=segmentation,
        horizon_days=record.settings["backtest"]["horizon_days"],
        currency=record.input.currency,
    )
    return write_lists(Path(out) if out is not None else run_dir / LISTS_FOLDER, lists)


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


COMPARED_COLUMNS = (
    "customer_id",
    "segment",
    "segment_name",
    "rfm_segment",
    "monetary",
    "revenue_90d",
    "as_of",
    "model_id",
)
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


def compare(first: str | Path | pd.DataFrame, second: str | Path | pd.DataFrame) -> dict[str, Migration]:
    """Count who moved between segments from one assigned table to another (`custseg compare`).

    Both tables come from `assign` with the same model at two dates (``--as-of``); the answer is
    the run record's movement for those dates.

    Returns
    -------
    dict of str to Migration
        ``learned`` (when either table has learned segments) and ``rfm``.

    Raises
    ------
    InvalidValueError
        When the tables were assigned by different models: their segment ids (and RFM cut points)
        need not mean the same, so flows between them would be misread.
    """
    tables = [read_assigned(first), read_assigned(second)]
    models = [sorted(table.model_id.astype(str).unique()) for table in tables]
    if models[0] != models[1] or len(models[0]) > 1:
        names = [str(given) if not isinstance(given, pd.DataFrame) else "the table" for given in (first, second)]
        raise InvalidValueError(
            f"{names[0]} and {names[1]} were assigned by different models ({', '.join(models[0])} and "
            f"{', '.join(models[1])}): a segment id of one need not name the same customers in the other; assign "
            "both with the same --model"
        )
    dates = [pd.Timestamp(table.as_of.iloc[0]).date() for table in tables]
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
