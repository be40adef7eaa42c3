"""Movement: who moved between segments from T - H to T, the same model at both dates."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from custseg.movement import GONE, NEW
from custseg.movement import matrix as flow_matrix
from custseg.record import Migration, Skipped
from custseg.report.charts import (
    NEUTRAL,
    Chart,
    Section,
    Table,
    faded,
    layout,
    run_colors,
    segment_order,
    stacked,
    wrap,
)
from custseg.report.data import ReportData

MIN_MOVE_SHARE = 0.02
"""A move between two segments is drawn on its own when it holds this share of the customers or more."""
MOST_MOVES = 10
"""At most this many moves between two segments are drawn on their own, the largest."""
NODE_GAP = 18
"""Pixels between two nodes of a side: enough for a node's name, however thin the node."""


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
        figure = sankey(summary, run_colors(data.record))
        charts.append(
            Chart(
                f"The {label} as of {summary.from_date} and as of {summary.to_date}",
                " ".join(summary.sentences),
                figure,
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
        f"The same segments, with the same rules, applied to the customers as they were {described.horizon_days} "
        "days before the end of the log and as they are now: who stayed, who moved up, who moved down."
    )
    method = (
        f"The final segmentations applied to the customers as of T - {described.horizon_days} days and as of T "
        "(custseg compare gives this for any two files written by custseg assign). A move is down when the "
        "segment moved to spent less per customer in between."
    )
    return Section("movement", title, intro, charts, tables, method=method)


def split_flows(flows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the flows into those a reader follows one by one and the small moves.

    Customers who stayed in their segment are always followed (drawn straight across); a move to
    another segment is when it is one of the `MOST_MOVES` largest and holds `MIN_MOVE_SHARE` of the
    customers or more.

    Returns
    -------
    (DataFrame, DataFrame)
        The flows followed and the small moves, both with `custseg.movement.migration`'s columns.
    """
    total = flows.customers.sum()
    moving = flows[flows.from_segment != flows.to_segment].sort_values(
        ["customers", "from_segment", "to_segment"], ascending=[False, True, True], kind="mergesort"
    )
    large = moving[moving.customers >= MIN_MOVE_SHARE * total].head(MOST_MOVES)
    followed = (flows.from_segment == flows.to_segment) | flows.index.isin(large.index)
    return flows[followed], flows[~followed]


def sankey(summary: Migration, colors: dict[str, str]) -> go.Figure:
    """Draw who moved from each segment to each: stays straight across, the large moves, the small ones as stubs.

    Both sides list the segments best first in their colours, each as tall as its customers at its
    date; new customers are at the bottom left, customers gone at the bottom right, in grey. The
    small moves (`split_flows`) are not drawn across: a faint stub leaves each segment for them and
    another comes into each segment from them, with the counts on hover.
    """
    flows = pd.DataFrame(summary.flows)
    followed, small = split_flows(flows)
    names = summary.names
    sources = [*segment_order(set(flows.from_segment) - {NEW}), *([NEW] if NEW in set(flows.from_segment) else [])]
    targets = [*segment_order(set(flows.to_segment) - {GONE}), *([GONE] if GONE in set(flows.to_segment) else [])]
    color = {s: colors.get(s, NEUTRAL) for s in (*sources, *targets)}
    out, into = flows.groupby("from_segment").customers.sum(), flows.groupby("to_segment").customers.sum()
    leaving = small.groupby("from_segment").agg(customers=("customers", "sum"), moves=("to_segment", "size"))
    coming = small.groupby("to_segment").agg(customers=("customers", "sum"), moves=("from_segment", "size"))
    # Plotly makes every node as tall as its customers times one scale, the same for the whole chart,
    # from its columns (sources and incoming stubs, targets and outgoing stubs) and the padding between
    # their nodes. The padding is chosen so that the side with more segments fills the height with the
    # segments NODE_GAP pixels apart, each stub at the height of its segment.
    rows = max(len(sources), len(targets))
    height = max(520, 200 + 30 * rows)
    margin = {"l": 10, "r": 10, "t": 30, "b": 56}
    inside = height - margin["t"] - margin["b"]
    drawn = flows.customers.sum() + small.customers.sum()
    wanted = (1 - (rows - 1) * NODE_GAP / inside) / flows.customers.sum()
    column = max(len(sources) + len(coming), len(targets) + len(leaving))
    pad = max((1 - wanted * drawn) * inside / max(column - 1, 1), 0.0)
    scale = (1 - (column - 1) * pad / inside) / drawn
    left, right = stacked(out[sources], scale), stacked(into[targets], scale)

    def label(segment: str) -> str:
        return wrap(f"{segment} {names[segment]}" if segment in names and names[segment] != segment else segment, 30)

    def size(segment: str, customers: int, date) -> str:
        if segment == NEW:
            return f"{customers:,} new customers since {summary.from_date}"
        return f"{customers:,} customers gone" if segment == GONE else f"{customers:,} customers as of {date}"

    nodes = [
        *[
            (label(s), color[s], 0.001, y, size(s, out[s], summary.from_date))
            for s, y in zip(sources, left, strict=True)
        ],
        *[
            (label(t), color[t], 0.999, y, size(t, into[t], summary.to_date))
            for t, y in zip(targets, right, strict=True)
        ],
    ]
    links = [
        (
            sources.index(flow.from_segment),
            len(sources) + targets.index(flow.to_segment),
            flow.customers,
            faded(color[flow.from_segment]),
            f"{flow.customers:,} customers from {label(flow.from_segment)} to {label(flow.to_segment)}<br>revenue in "
            f"the 90 days before: {flow.revenue_before:,.0f}<br>revenue since: {flow.revenue_between:,.0f}",
        )
        for flow in followed.itertuples()
    ]
    stub = f"other segments, each move under {MIN_MOVE_SHARE:.0%}"

    # The small moves: a faint stub out of each segment they leave and into each they reach, no crossing.
    def each(moves: pd.DataFrame, column: str) -> str:
        return "".join(f"<br>{label(s)}: {n:,}" for s, n in zip(moves[column], moves.customers, strict=True))

    small = small.sort_values("customers", ascending=False, kind="mergesort")
    for segment, row in leaving.iterrows():
        said = f"{row.customers:,} customers from {label(segment)} to {row.moves} {stub}"
        said += each(small[small.from_segment == segment], "to_segment")
        nodes.append(("", "rgba(0,0,0,0)", 0.12, left[sources.index(segment)], said))
        links.append((sources.index(segment), len(nodes) - 1, row.customers, faded(color[segment], 0.18), said))
    for segment, row in coming.iterrows():
        said = f"{row.customers:,} customers to {label(segment)} from {row.moves} {stub}"
        said += each(small[small.to_segment == segment], "from_segment")
        nodes.append(("", "rgba(0,0,0,0)", 0.88, right[targets.index(segment)], said))
        links.append(
            (len(nodes) - 1, len(sources) + targets.index(segment), row.customers, faded(color[segment], 0.18), said)
        )
    node_label, node_color, node_x, node_y, node_hover = zip(*nodes, strict=True)
    link_source, link_target, link_value, link_color, link_hover = zip(*links, strict=True)
    figure = go.Figure(
        go.Sankey(
            arrangement="fixed",
            node={
                "label": node_label,
                "color": node_color,
                "x": node_x,
                "y": node_y,
                "customdata": node_hover,
                "hovertemplate": "%{customdata}<extra></extra>",
                "pad": pad,
                "thickness": 14,
                "line": {"width": 0},
            },
            link={
                "source": link_source,
                "target": link_target,
                "value": link_value,
                "color": link_color,
                "customdata": link_hover,
                "hovertemplate": "%{customdata}<extra></extra>",
            },
        )
    )
    for x, anchor, date in ((0, "left", summary.from_date), (1, "right", summary.to_date)):
        figure.add_annotation(
            x=x,
            y=1.0,
            xref="paper",
            yref="paper",
            xanchor=anchor,
            yanchor="bottom",
            text=f"<b>as of {date}</b>",
            showarrow=False,
        )
    if len(small):
        figure.add_annotation(
            x=0.5,
            y=0,
            xref="paper",
            yref="paper",
            yanchor="top",
            yshift=-8,
            text=wrap(
                f"Faint stubs: {small.customers.sum():,} customers in {len(small)} smaller moves (each under "
                f"{MIN_MOVE_SHARE:.0%} of the customers), not drawn across; hover over one for where they went.",
                90,
            ),
            showarrow=False,
            font={"size": 11, "color": "#666"},
        )
    layout(figure, height)
    figure.update_layout(margin=margin)
    return figure
