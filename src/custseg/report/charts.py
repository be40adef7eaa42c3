"""The report's building blocks: a chart with the sentence that reads it, a table, a section, the look."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from custseg.record import RunRecord, SegmentsSection
from custseg.rfm import RF_GRID_SEGMENTS, RFM_SEGMENTS

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""Colours of series that are not segments (models, measures)."""
LEARNED_ID = re.compile(r"S\d+")
"""A learned segment's id: ``S1``, ``S2``, ...; any other segment is an RFM segment, named."""

SEGMENT_PALETTE = (
    "#08519c",
    "#3182bd",
    "#1b9e77",
    "#66a61e",
    "#a6a61e",
    "#e6ab02",
    "#fd8d3c",
    "#e6550d",
    "#d62728",
    "#a50f15",
    "#8c6d62",
    "#7f7f7f",
)
"""Segment colours from the best segment (dark blue) through green and orange to the worst (red, then grey)."""
RFM_BEST_FIRST = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "Recent Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "Can't Lose Them",
    "At Risk",
    "Hibernating",
    "Lost",
)
"""The default map's segments from good to bad: buying now, then lapsing (the valuable first), then gone.

Not the map's own order, which is the order its rules are tried in (Can't Lose Them before At Risk).
"""
NEUTRAL = "#c7c7c7"
"""The colour of what is no segment: new customers, customers gone, flows grouped together."""


@dataclass
class Chart:
    """One Plotly chart and the sentence that reads it."""

    title: str
    reading: str
    figure: go.Figure
    html: str = ""


@dataclass(frozen=True)
class Link:
    """A table cell that links to a file of the run's folder (a list) or a place in the report."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Figure:
    """A key figure at the top of a section: the number, and the words that say what it counts."""

    value: str
    label: str


@dataclass
class Table:
    """A small HTML table: a title, column names and rows of text (or links)."""

    title: str
    columns: list[str]
    rows: list[list[str | Link]]


@dataclass
class Section:
    """A part of the report."""

    key: str
    title: str
    intro: str
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    method: str = ""
    """How this was measured, in the analyst's terms: shown folded under the section."""


def shareable_ids(customer_ids: pd.Series) -> pd.Series:
    """Return customer ids as the report may show them: an email address (personal data) hidden.

    The report is forwarded; the customer tables, which the marketer acts on, keep the addresses.
    """
    text = customer_ids.astype(str)
    return text.where(~text.str.contains("@", regex=False), "(email hidden)")


def share(value: float) -> str:
    """Write a share as a percentage with one decimal."""
    return f"{value:.1%}"


def layout(figure: go.Figure, height: int = 420) -> go.Figure:
    """Give a figure the report's look and height."""
    figure.update_layout(
        height=height,
        margin={"l": 60, "r": 30, "t": 30, "b": 50},
        template="plotly_white",
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        # To the right of the plot, where Plotly widens the margin for it: never over data or axis labels.
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
    )
    return figure


def stacked(sizes: pd.Series, scale: float | None = None) -> list[float]:
    """Centre of each node when nodes are stacked top to bottom, as tall as their sizes, over 0 to 1.

    ``scale`` is a node's height per unit of size, as a share of the whole height (by default the
    nodes fill it); the height left is shared evenly between the nodes, so that a column with fewer
    nodes than the other spreads over the same height.
    """
    values = sizes.to_numpy(dtype=float)
    heights = values * (scale if scale is not None else 1 / values.sum())
    free = max(1 - heights.sum(), 0.0)
    gap = free / (len(values) - 1) if len(values) > 1 else free / 2
    tops = np.cumsum(heights + gap) - heights - gap + (0 if len(values) > 1 else gap)
    return list(np.clip(tops + heights / 2, 0.001, 0.999))


def faded(color: str, opacity: float = 0.35) -> str:
    """Return a #rrggbb colour as rgba at ``opacity`` (35% by default), for Sankey links."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{opacity})"


def segment_label(segment: str, name: str | None) -> str:
    """Name a learned segment as the report does: ``S1 Champions`` (an RFM segment is its name)."""
    return f"{segment} {name}" if name and name != segment else segment


def rfm_order(names: Iterable[str]) -> list[str]:
    """Order RFM segment names best first (`RFM_BEST_FIRST`), any other name after, in the order given.

    The 10-cell grid's names rank as the default map's segment whose description they share (its
    "New Customers" are the default map's "Recent Customers").
    """
    named = {rule.description: rule.name for rule in RFM_SEGMENTS}
    rank = {rule.name: RFM_BEST_FIRST.index(named[rule.description]) for rule in (*RFM_SEGMENTS, *RF_GRID_SEGMENTS)}
    given = list(dict.fromkeys(names))
    return sorted(given, key=lambda name: (rank.get(name, len(RFM_BEST_FIRST)), given.index(name)))


def segment_order(segments: Iterable[str]) -> list[str]:
    """Order segments best first: learned ids by number (``S1`` has the highest mean spend), RFM names by map."""
    given = list(dict.fromkeys(segments))
    learned = sorted((s for s in given if LEARNED_ID.fullmatch(s)), key=lambda s: int(s[1:]))
    return learned + rfm_order(s for s in given if not LEARNED_ID.fullmatch(s))


def segment_colors(segments: Iterable[str]) -> dict[str, str]:
    """Give every segment of one segmentation its colour, the same in every chart of the report.

    The segments are put best first (`segment_order`) and spread evenly over `SEGMENT_PALETTE`,
    so the best segment is always dark blue and the worst grey; past 12 segments colours repeat.

    Parameters
    ----------
    segments : iterable of str
        Learned segment ids (``S1``, ``S2``, ...) or RFM segment names, in any order.

    Returns
    -------
    dict of str to str
        Segment -> ``#rrggbb``.

    Examples
    --------
    >>> segment_colors(["S2", "S1"])
    {'S1': '#08519c', 'S2': '#7f7f7f'}
    """
    ordered = segment_order(segments)
    last = len(SEGMENT_PALETTE) - 1
    if len(ordered) > len(SEGMENT_PALETTE):
        return {s: SEGMENT_PALETTE[i % len(SEGMENT_PALETTE)] for i, s in enumerate(ordered)}
    steps = max(len(ordered) - 1, 1)
    return {s: SEGMENT_PALETTE[round(i * last / steps)] for i, s in enumerate(ordered)}


def run_colors(record: RunRecord) -> dict[str, str]:
    """Colour every segment of a run, learned (by id) and RFM (by name), each segmentation over all its segments.

    Every chart takes its colours from here, so a segment keeps its colour from chart to chart even
    where a chart leaves some segments out.
    """
    described = record.segments
    learned = [p["segment"] for p in described.profiles] if isinstance(described, SegmentsSection) else []
    rfm = [s.segment for s in record.rfm.segments] if record.rfm is not None else []
    return {**segment_colors(learned), **segment_colors(rfm)}


def wrap(text: str, width: int = 24) -> str:
    """Break a long label into lines of at most ``width`` characters (``<br>``, as Plotly reads it), never cut it."""
    return "<br>".join(textwrap.wrap(text, width, break_long_words=False)) or text


def log_ticks(values: Iterable[float]) -> dict:
    """Readable ticks for a log axis over the positive values: 1, 2, 5, 10, 20, ... or powers of ten.

    Steps of 1, 2 and 5 over up to three powers of ten, powers of ten beyond; the range runs from the
    tick at or below the smallest value to the one at or above the largest, so both ends are labelled.

    Returns
    -------
    dict
        ``tickvals``, ``ticktext`` and ``range`` (in log10 units), to pass to ``update_yaxes``.
    """
    positive = [float(v) for v in values if v is not None and v == v and v > 0]
    if not positive:
        return {}
    low, high = min(positive), max(positive)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps]
    below = max(t for t in ticks if t <= low * (1 + 1e-9))
    above = min(t for t in ticks if t >= high * (1 - 1e-9))
    shown = [t for t in ticks if below <= t <= above]
    return {
        "tickvals": shown,
        "ticktext": [f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in shown],
        "range": [math.log10(below) - 0.05, math.log10(above) + 0.05],
    }
