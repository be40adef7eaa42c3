"""The figures every view of a run shows first, derived from the run record in one place.

The terminal summary, the report's header and the notebook view read `headline`, so that they never
disagree.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from custseg.record import BacktestSection, RunRecord, SegmentsSection, frozen
from custseg.record.value import ValueSection


@frozen
class Headline:
    """The figures every view of a run shows first (None where the stage did not run or was skipped)."""

    input_name: str
    customers: int | None
    as_of: datetime.date | None
    kept_rows: int | None
    rejected_rows: int | None
    net_revenue: float | None
    balanced: bool | None
    currency: str | None
    fully_returned: int
    learned_segments: int | None
    backtest_validity: float | None
    rfm_validity: float | None
    expected_revenue: float | None
    horizon_days: int | None
    report: str | None


def headline(record: RunRecord) -> Headline:
    """Derive the headline figures of a run (None where the stage did not run or was skipped)."""
    segments = record.segments if isinstance(record.segments, SegmentsSection) else None
    backtest = record.backtest if isinstance(record.backtest, BacktestSection) else None
    value = record.value if isinstance(record.value, ValueSection) else None
    return Headline(
        input_name=Path(record.input.path).name if record.input else "",
        customers=record.customers.count if record.customers else None,
        as_of=record.customers.as_of.date() if record.customers else None,
        kept_rows=record.rows.kept_rows if record.rows else None,
        rejected_rows=record.rows.rejected_rows if record.rows else None,
        net_revenue=record.reconciliation.net_revenue if record.reconciliation else None,
        balanced=record.reconciliation.balanced if record.reconciliation else None,
        currency=record.input.currency if record.input else None,
        fully_returned=record.customers.fully_returned.count if record.customers else 0,
        learned_segments=len(segments.profiles) if segments else None,
        backtest_validity=segments.backtest.validity if segments and segments.backtest else None,
        rfm_validity=backtest.rfm.validity if backtest else None,
        expected_revenue=value.expected.expected_revenue if value else None,
        horizon_days=value.horizon_days if value else None,
        report=record.report,
    )
