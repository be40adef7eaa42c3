"""Actions: what to do, segment by segment."""

from __future__ import annotations

from custseg.report.charts import Section, Table, segment_label, share
from custseg.report.data import ReportData


def actions(data: ReportData) -> Section | None:
    """List segment by segment: size, revenue share, description, recommended action."""
    segments = data.segments
    if segments is None:
        return None
    learned = segments[segments.kind == "learned"]
    shown = learned if len(learned) else segments[segments.kind == "rfm"]
    table = Table(
        "What to do, segment by segment",
        ["segment", "customers", "share", "revenue", "description", "recommended action"],
        [
            [
                segment_label(row.segment, row.name),
                f"{row.customers:,}",
                share(row.share),
                share(row.revenue_share),
                row.description,
                row.action,
            ]
            for row in shown.itertuples()
        ],
    )
    kind = "learned" if len(learned) else "RFM"
    return Section(
        "actions", "Actions", f"The {kind} segments with a description and a recommended action each.", [], [table]
    )
