"""Actions: what to do, segment by segment."""

from __future__ import annotations

import pandas as pd

from custseg.report.charts import Section, Table, segment_label, share
from custseg.report.data import ReportData


def actions(data: ReportData) -> Section | None:
    """List segment by segment: size, revenue share, description, recommended action."""
    segments = data.segments
    if segments is None:
        return None
    learned = segments[segments.kind == "learned"]
    shown = learned if len(learned) else segments[segments.kind == "rfm"]
    rules = shown["rule"].astype(object).fillna("") if "rule" in shown.columns else pd.Series("", index=shown.index)
    with_rules = bool(rules.str.len().gt(0).any())
    table = Table(
        "What to do, segment by segment",
        [
            "segment",
            *(["rule"] if with_rules else []),
            "customers",
            "share",
            "revenue",
            "description",
            "recommended action",
        ],
        [
            [
                segment_label(row.segment, row.name),
                *([rule] if with_rules else []),
                f"{row.customers:,}",
                share(row.share),
                share(row.revenue_share),
                row.description,
                row.action,
            ]
            for row, rule in zip(shown.itertuples(), rules, strict=True)
        ],
    )
    kind = "learned" if len(learned) else "RFM"
    return Section(
        "actions", "Actions", f"The {kind} segments with a description and a recommended action each.", [], [table]
    )
