"""The run record's value section: the expected value over the next H days and how it was checked."""

from __future__ import annotations

import datetime
from dataclasses import field

from custseg.record.base import Records, Skipped, frozen


@frozen
class ValueFigures:
    """Predicted against actual next-H-days value (`custseg.backtest.value_scores`); None where undefined."""

    customers: int
    auc: float | None
    spearman: float | None
    r_squared_log: float | None
    predicted_revenue: float
    actual_revenue: float
    revenue_ratio: float | None
    orders_ratio: float | None = None


@frozen
class ForwardCheck(ValueFigures):
    """The learner at a cut C: learned as of C - H, scored on the H days from C and (``season_factor``) at C - 365."""

    trained_as_of: datetime.datetime
    trained_on_customers: int
    scored_as_of: datetime.datetime
    segments: Records = field(default_factory=list)
    season_factor: float | None = None


@frozen
class Coverage:
    """How often an interval held the actual in the forward checks, each left out in turn."""

    held: int
    tried: int


@frozen
class ForwardChecks:
    """Forward checks (`custseg.forward`), newest first, and how often the totals' intervals held (None: too few).

    ``seasonal``: the totals of those with a season factor, corrected by it as the forecast is, are judged.
    """

    step_days: int
    level: float
    seasonal: bool
    cuts: list[ForwardCheck]
    shop: Coverage | None
    segments: Coverage | None


@frozen
class Season:
    """The model scored a year before T (actual over predicted ``factors``), applied as the forward checks say."""

    as_of: datetime.datetime
    customers: int
    predicted_revenue: float
    actual_revenue: float
    factors: dict[str, float]
    applied: bool
    reason: str
    forward_error: float | None
    forward_error_corrected: float | None


@frozen
class Interval:
    """Where the actual total is expected to fall, at ``level`` (from the forward checks' spread)."""

    level: float
    low: float
    high: float


@frozen
class ExpectedTotals:
    """What every customer together is expected to bring in the next H days, and the interval of the revenue."""

    customers: int
    expected_orders: float
    expected_revenue: float
    returning_customers: float
    revenue_interval: Interval | Skipped


@frozen
class ValueSection:
    """The expected value model: its candidates, choice, backtest, calibration, forward check, and window [T, T + H)."""

    horizon_days: int
    window: tuple[datetime.datetime, datetime.datetime]
    columns: dict[str, str]
    protocol: str
    chosen: str
    candidates: Records
    backtest: ValueFigures
    calibration: dict[str, Records]
    forward: ForwardChecks | Skipped
    season: Season | Skipped
    expected: ExpectedTotals


# -- early prediction ----------------------------------------------------------------------------
