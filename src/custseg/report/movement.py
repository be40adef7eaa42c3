"""Movement: who moved between segments from T - H to T, the same model at both dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from custseg.movement import GONE, NEW
from custseg.movement import matrix as flow_matrix
from custseg.record import Skipped
from custseg.report.charts import PALETTE, Chart, Section, Table, faded, layout, stacked
from custseg.report.data import ReportData


def movement(data: ReportData) -> Section | None:
    """Show who moved between segments from T - H to T: a Sankey per segmentation and its sentences."""
    described = data.record.movement
    if described is None:
        return None
    title = "Who moved where?"
    if isinstance(described, Skipped):
        return Section("movement", title, f"No segment movement in this run: {described.reason}.")
    charts, tables = [], []
    for summary, label in ((described.learned, "learned segments"), (described.rfm, "RFM segments")):
        if summary is None:
            continue
        flows = pd.DataFrame(summary.flows)
        names = summary.names
        named = {s: f"{s} {names[s]}" if s in names else s for s in set(flows.from_segment) | set(flows.to_segment)}
        # Best segment on top: by what its customers spent between the two dates.
        worth = summary.worth
        sources = sorted(flows.from_segment.unique(), key=lambda s: (s == NEW, -worth.get(s, -1), s))
        targets = sorted(flows.to_segment.unique(), key=lambda s: (s == GONE, -worth.get(s, -1), s))
        colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(sources) | set(targets) - {NEW, GONE}))}
        colors.update({NEW: "#c7c7c7", GONE: "#c7c7c7"})
        figure = go.Figure(
            go.Sankey(
                arrangement="fixed",
                node={
                    "label": [f"{named[s]} · {summary.from_date}" for s in sources]
                    + [f"{named[s]} · {summary.to_date}" for s in targets],
                    "color": [colors[s] for s in (*sources, *targets)],
                    # In segment order top to bottom on both sides, each as tall as its customers.
                    "x": [0.001] * len(sources) + [0.999] * len(targets),
                    "y": stacked(flows.groupby("from_segment").customers.sum()[sources])
                    + stacked(flows.groupby("to_segment").customers.sum()[targets]),
                    "pad": 10,
                    "thickness": 14,
                },
                link={
                    "source": [sources.index(s) for s in flows.from_segment],
                    "target": [len(sources) + targets.index(t) for t in flows.to_segment],
                    "value": flows.customers,
                    "color": [faded(colors[s]) for s in flows.from_segment],
                    "customdata": np.stack([flows.revenue_before, flows.revenue_between], axis=1),
                    "hovertemplate": "%{value:,} customers<br>revenue in the 90 days before: %{customdata[0]:,.0f}"
                    "<br>revenue since: %{customdata[1]:,.0f}<extra></extra>",
                },
            )
        )
        charts.append(
            Chart(
                f"The {label} as of {summary.from_date} and as of {summary.to_date}",
                " ".join(summary.sentences),
                layout(figure, 520),
            )
        )
    if described.learned is not None:
        summary = described.learned
        table = flow_matrix(pd.DataFrame(summary.flows))
        tables.append(
            Table(
                f"Learned segments: customers from each segment as of {summary.from_date} (rows) to each as of "
                f"{summary.to_date} (columns)",
                ["from \\ to", *table.columns],
                [[index, *(f"{v:,}" for v in row)] for index, row in zip(table.index, table.to_numpy(), strict=True)],
            )
        )
    intro = (
        f"The final segmentations applied to the customers as of T - {described.horizon_days} days and as of T, "
        "the same model at both dates (custseg compare gives this for any two files written by custseg assign). "
        "A move is down when the segment moved to spent less per customer in between."
    )
    return Section("movement", title, intro, charts, tables)
