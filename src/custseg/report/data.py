"""What every report section reads: the run record and the few tables the charts draw."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import ibis
import pandas as pd

from custseg.amounts import money
from custseg.record import RunRecord, SegmentsSection
from custseg.sampling import rows_at_most


@dataclass(frozen=True)
class ReportData:
    """A finished run as the report's sections see it.

    Attributes
    ----------
    record : RunRecord
    customers : DataFrame
        Every customer, or a seeded sample of at most ``max_driver_customers`` of them.
    customer_count : int
        How many customers there are in all.
    lines : ibis.Table
        The kept purchase lines, where they are stored.
    segments : DataFrame or None
        segments.csv's rows (RFM and learned segments, with their expected value).
    """

    record: RunRecord
    customers: pd.DataFrame
    customer_count: int
    lines: ibis.Table
    segments: pd.DataFrame | None

    @property
    def currency(self) -> str | None:
        """The ISO 4217 code of the amounts, or None when nothing says it."""
        return self.record.input.currency if self.record.input else None

    def money(self, value: float) -> str:
        """Write an amount of this run in whole units with its currency (`custseg.report.charts.money`)."""
        return money(value, self.currency)

    @property
    def category_labels(self) -> dict[str, str]:
        """Category id -> label."""
        products = self.record.products
        return {c.category: c.label for c in products.categories} if products else {}

    @property
    def segment_names(self) -> dict[str, str]:
        """Learned segment id -> name (empty without learned segments)."""
        segments = self.record.segments
        if not isinstance(segments, SegmentsSection):
            return {}
        return {profile["segment"]: profile["name"] for profile in segments.profiles}


def report_data(backend: ibis.BaseBackend, record: RunRecord) -> ReportData:
    """Read what the sections need from the run's stored tables."""
    engine = record.settings["engine"]
    most = engine.get("max_driver_customers", sys.maxsize)
    customers, count = rows_at_most(backend.table("customers"), most, record.settings["seed"])
    segments = backend.table("segments").execute() if "segments" in backend.list_tables() else None
    return ReportData(
        record=record, customers=customers, customer_count=count, lines=backend.table("lines"), segments=segments
    )
