"""Actions: what to do, segment by segment, for the segmentation the brief recommends."""

from __future__ import annotations

import pandas as pd

from custseg.lists import recommended_segmentation
from custseg.report.charts import Section, Table, segment_label, share
from custseg.report.data import ReportData
from custseg.report.rfm import rfm_name_checks


def actions(data: ReportData) -> Section | None:
    """List segment by segment: size, revenue share, description, recommended action.

    RFM segments whose name the backtest contradicts say so beside their description (`rfm_name_checks`).
    """
    segments = data.segments
    if segments is None:
        return None
    kind = recommended_segmentation(data.record).segmentation
    shown = segments[segments.kind == kind]
    if shown.empty:
        kind, shown = "rfm", segments[segments.kind == "rfm"]
    rules = shown["rule"].astype(object).fillna("") if "rule" in shown.columns else pd.Series("", index=shown.index)
    with_rules = bool(rules.str.len().gt(0).any())
    checks = rfm_name_checks(data) if kind == "rfm" else {}
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
                row.description + (f" On the shop's history: {checks[row.segment]}." if row.segment in checks else ""),
                row.action,
            ]
            for row, rule in zip(shown.itertuples(), rules, strict=True)
        ],
    )
    words = "learned" if kind == "learned" else "RFM"
    return Section(
        "actions", "Actions", f"The {words} segments with a description and a recommended action each.", [], [table]
    )
