"""The run record (run.json): what a run read, did and found, one typed section per stage.

The terminal summary, the report, the notebook view and the HTTP API all read a run through this
record, so its layout is declared once, in this package: a frozen dataclass per section (the larger
sections in modules of their own, `custseg.record.value`, `custseg.record.interests`), a `Skipped` value
for a stage that ran but had nothing to do (with its reason), and None for a stage that did not
run (a run stopped early, or the course recipe). `to_json` and `from_json` write and read it,
`json_schema` is the JSON Schema the documentation publishes (`custseg.report.headline` derives the
few figures every view shows first). Tables inside a section (candidates, profiles, flows) are
`Records`: one dict per row, with the columns of the CSV or Parquet table they come from.
"""

from __future__ import annotations

import datetime
import functools
import json
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError

from custseg.errors import InputFileError
from custseg.record.base import Records, Skipped, frozen
from custseg.record.interests import InterestsSection
from custseg.record.value import ValueSection

RECORD_VERSION = 5
"""Layout version of run.json (1: the untyped layout of custseg 0.1, which carried no version)."""
RECORD_FILE = "run.json"


@frozen
class InputSection:
    """How the input was read: where from, its layout and column map, its timestamps and fingerprint."""

    path: str
    format: str
    encoding: str | None
    delimiter: str | None
    columns: list[str]
    preset: Annotated[str, Field(description="The layout read with no mapping, or custom when --map changed it.")]
    layout: Annotated[str | None, Field(description="The layout whose header the input has, mapped or not.")]
    column_map: dict[str, str]
    timestamp_format: str | None
    timestamp_format_ties: list[str]
    currency: Annotated[str | None, Field(description="ISO 4217 code of every amount; None when nothing says it.")]
    currency_source: Annotated[
        str | None,
        Field(description="What says the currency: export (its currency column), setting or layout (a preset's)."),
    ] = None
    bytes: int | None = None
    sha256: Annotated[str | None, Field(description="Of the file's bytes, or of the rows read from a table.")] = None


@frozen
class RowsSection:
    """Input rows, kept as purchase lines or rejected; rejected rows per reason (every reason, 0 where none)."""

    input_rows: int
    kept_rows: int
    rejected_rows: int
    rejected_by_reason: dict[str, int]


@frozen
class SpanSection:
    """What the kept purchase lines span."""

    customers: int
    orders: int
    products: int
    first_invoiced_at: datetime.datetime
    last_invoiced_at: datetime.datetime


@frozen
class Reconciliation:
    """Where every unit of currency of the input went: gross - returns - refunds = net, rejected per reason."""

    input_amount: float
    gross_sales: float
    returns_matched: float
    refunds: float
    net_revenue: float
    rejected_amount: dict[str, float]
    balanced: bool


# -- products and customers ----------------------------------------------------------------------


@frozen
class Category:
    """A product category: its label, products, revenue share, characteristic words and best sellers."""

    category: str
    label: str
    products: int
    revenue_share: float
    top_words: str
    examples: str


@frozen
class ProductsSection:
    """The product categories learned from the descriptions (or given by the user's map)."""

    products: int
    method: str
    criterion: str
    chosen: int
    candidates: Records
    categories: list[Category]


@frozen
class StoredProducts:
    """Products put in a stored model's categories; those it never saw are ``unknown``."""

    products: int
    unknown_to_the_model: int


@frozen
class FullyReturned:
    """Customers with kept lines but no order of positive net revenue: they get no segment."""

    count: int
    customer_ids: list[str]


@frozen
class CustomersSection:
    """The customers described as of the reference date."""

    as_of: datetime.datetime
    count: int
    fully_returned: FullyReturned


@frozen
class RFMSegment:
    """One named RFM segment: size, revenue share and median recency (days), frequency and monetary."""

    segment: str
    customers: int
    share: float
    revenue_share: float
    median_recency_days: float | None
    median_frequency: float | None
    median_monetary: float | None


@frozen
class RFMSection:
    """RFM scores 1 to ``bins`` from quantile cut points, and the named segment map."""

    bins: int
    cut_points: dict[str, list[float]]
    segment_map: str
    segments: list[RFMSegment]


# -- backtest and segments -----------------------------------------------------------------------


@frozen
class Scores:
    """How well a segmentation tells the next H days apart, out of fold (`custseg.backtest.Scores`)."""

    auc: float
    eta_squared: float
    validity: float
    validity_se: float


@frozen
class RFMBacktest(Scores):
    """The RFM map refitted on the customers as of T - H and scored on the last H days."""

    cut_points: dict[str, list[float]]
    segments: Records


@frozen
class Ceilings:
    """Continuous scores on the same features: what no segmentation can beat."""

    logistic_regression_auc: float
    linear_regression_r_squared: float


@frozen
class BacktestSection:
    """The customers as of T - H, what they did in the last H days, and the RFM map scored on them."""

    horizon_days: int
    as_of: datetime.datetime
    window: tuple[datetime.datetime, datetime.datetime]
    customers: int
    scored_on_customers: int
    returned_share: float
    mean_revenue: float
    protocol: str
    rfm: RFMBacktest
    ceilings: Ceilings


@frozen
class SegmentsBacktest(Scores):
    """The final learned segments applied to the backtest customers: what each did next."""

    note: str
    per_segment: Records


@frozen
class KeptSegments:
    """Segments kept from an earlier run (``--segments-from``): its segmentation applied to today's customers.

    Both validities are on this run's backtest, so that the user sees when a refit pays.
    """

    run: str
    model_id: str
    validity: float
    fresh_validity: Annotated[float, Field(description="A fresh fit's, on the same backtest customers.")]
    fresh_segments: int
    advice: str


@frozen
class SegmentsSection:
    """The learned segments: the rule, the choice and its reason, every candidate, each segment's profile."""

    rule: str
    reason: str
    chosen_by: Literal["backtest", "silhouette"]
    features: list[str]
    typical_gap_days: float
    searched_on_customers: int
    fitted_on_customers: int
    profiled_on_customers: int
    chosen: dict[str, Any]
    classifier_agreement: float | None
    candidates: Records
    profiles: Records
    rules: Annotated[
        Records | None,
        Field(description="Each segment's rule as data (segment, rule in words, conditions); null for clusters."),
    ] = None
    backtest: SegmentsBacktest | None = None
    kept: KeptSegments | None = None


@frozen
class AssignedSegments:
    """Customers given a stored model's learned segment."""

    assigned: int


# -- movement ------------------------------------------------------------------------------------


@frozen
class Migration:
    """Who moved between the segments of one segmentation from one date to another (`custseg.movement`)."""

    from_date: datetime.date
    to_date: datetime.date
    names: dict[str, str]
    flows: Records
    sizes_before: dict[str, int]
    sizes_after: dict[str, int]
    worth: Annotated[
        dict[str, float], Field(description="Revenue between the dates per customer of each segment at the first.")
    ]
    stayed: int
    sentences: list[str]


@frozen
class MovementSection:
    """The final segmentations applied as of T - H and as of T."""

    horizon_days: int
    learned: Migration | None
    rfm: Migration


# -- value ---------------------------------------------------------------------------------------


@frozen
class ClassifierScores:
    """Accuracy and macro-F1 on the hold-out."""

    accuracy: float
    macro_f1: float


@frozen
class ConfusionMatrix:
    """Counts of hold-out customers, truth in rows and prediction in columns, in ``labels`` order."""

    labels: list[str]
    rows_true_columns_predicted: list[list[int]]


@frozen
class EarlyFit:
    """One early model on the hold-out, beside the two baselines."""

    classes: list[str]
    chosen: str
    candidates: Records
    model: ClassifierScores
    majority: ClassifierScores
    first_orders_as_is: ClassifierScores
    confusion_matrix: ConfusionMatrix
    degenerate: Annotated[str | None, Field(description="Why the hold-out cannot score a model (one class).")] = None


@frozen
class EarlyResult:
    """The early model of one target after a customer's first ``n_orders`` orders."""

    target: Literal["segment", "category"]
    n_orders: int
    train_customers: int
    test_customers: int
    fit: EarlyFit | Skipped

    @property
    def scored(self) -> EarlyFit | None:
        """The fit when the hold-out scores it (neither skipped nor degenerate)."""
        if isinstance(self.fit, EarlyFit) and self.fit.degenerate is None:
            return self.fit
        return None


@frozen
class EarlySection:
    """The early prediction: the temporal hold-out of its models, and how many customers got one."""

    horizon_days: int
    test_share: float
    eligible_customers: int
    test_joined_from: datetime.datetime | None
    protocol: str
    results: list[EarlyResult]
    learned_from_customers: int
    predicted_customers: int


@frozen
class AssignedEarly:
    """Customers given an early prediction by a stored model."""

    predicted_customers: int


# -- the record ----------------------------------------------------------------------------------


@frozen
class RunRecord:
    """run.json of ``custseg run``: one section per stage.

    A section is None when its stage did not run (the run stopped before it, or the course recipe
    ran instead), and `Skipped` when the stage ran and had nothing to do.
    """

    record_version: int = RECORD_VERSION
    custseg_version: str
    settings: Annotated[dict[str, Any], Field(description="`custseg.settings.Settings.to_dict()`.")]
    input: InputSection | None = None
    rows: RowsSection | None = None
    span: SpanSection | None = None
    reconciliation: Reconciliation | None = None
    products: ProductsSection | None = None
    customers: CustomersSection | None = None
    rfm: RFMSection | None = None
    backtest: BacktestSection | Skipped | None = None
    segments: SegmentsSection | Skipped | None = None
    movement: MovementSection | Skipped | None = None
    value: ValueSection | Skipped | None = None
    early: EarlySection | Skipped | None = None
    interests: InterestsSection | Skipped | None = None
    course: Annotated[dict[str, Any] | None, Field(description="The course recipe's figures (--recipe course).")] = None
    report: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


@frozen
class AssignRecord:
    """What ``custseg assign`` read and found: the stages a stored model applies."""

    custseg_version: str
    settings: dict[str, Any]
    input: InputSection
    rows: RowsSection
    span: SpanSection
    reconciliation: Reconciliation
    products: StoredProducts
    customers: CustomersSection
    rfm: RFMSection
    segments: AssignedSegments
    early: AssignedEarly


# -- JSON ----------------------------------------------------------------------------------------


@functools.cache
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def _plain(value: Any) -> Any:
    # numpy's scalars arrive from pandas and scikit-learn; JSON knows their Python values.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not part of the run record")


def to_dict(section: Any) -> Any:
    """Return a record or any section as JSON-ready data (dates as ISO text, NaN as null)."""
    return _adapter(type(section)).dump_python(section, mode="json", by_alias=True, fallback=_plain)


def to_json(record: RunRecord | AssignRecord) -> str:
    """Return the record as indented JSON text (run.json)."""
    return json.dumps(to_dict(record), indent=2) + "\n"


def from_json(text: str, source: str | Path = RECORD_FILE) -> RunRecord:
    """Read run.json text written by this layout version.

    Raises
    ------
    InputFileError
        One line naming ``source``: not JSON, written by another layout version, or not a run record.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{source}: not readable JSON ({exc}); run custseg run again") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{source}: not a custseg run record; run custseg run again")
    version = data.get("record_version", 1)
    if version != RECORD_VERSION:
        raise InputFileError(
            f"{source}: written by custseg {data.get('custseg_version', 'unknown')} in run record version {version}; "
            f"this custseg reads version {RECORD_VERSION}: run custseg run again"
        )
    try:
        return _adapter(RunRecord).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputFileError(f"{source}: {where}: {first['msg']}; run custseg run again") from None


def read_record(folder: str | Path) -> RunRecord:
    """Read ``run.json`` of a run's output folder.

    Raises
    ------
    InputFileError
        If there is none, or it cannot be read (`from_json`).
    """
    path = Path(folder) / RECORD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{folder}: no {RECORD_FILE}; give the output folder of custseg run") from None
    return from_json(text, path)


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of run.json (`RunRecord`), as published in the documentation."""
    schema = _adapter(RunRecord).json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "custseg run.json", **schema}
