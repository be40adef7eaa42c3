"""The report's building blocks: a chart with the sentence that reads it, a table, a section, the look."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

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


@dataclass
class Chart:
    """One Plotly chart and the sentence that reads it."""

    title: str
    reading: str
    figure: go.Figure
    html: str = ""


@dataclass
class Table:
    """A small HTML table: a title, column names and rows of text."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """A part of the report."""

    key: str
    title: str
    intro: str
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def shareable_ids(customer_ids: pd.Series) -> pd.Series:
    """Return customer ids as the report may show them: an email address (personal data) hidden.

    The report is forwarded; the customer tables, which the marketer acts on, keep the addresses.
    """
    text = customer_ids.astype(str)
    return text.where(~text.str.contains("@", regex=False), "(email hidden)")


def money(value: float) -> str:
    """Write an amount in whole units with thousands separators."""
    return f"{value:,.0f}"


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
        legend={"orientation": "h", "y": -0.18},
    )
    return figure


def stacked(sizes: pd.Series) -> list[float]:
    """Centre of each node when nodes are stacked top to bottom in proportion to their sizes (0 to 1)."""
    shares = sizes.to_numpy(dtype=float) / sizes.sum()
    return list(np.clip(np.cumsum(shares) - shares / 2, 0.001, 0.999))


def faded(color: str) -> str:
    """Return a #rrggbb colour as rgba at 35% opacity, for Sankey links."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.35)"


def segment_label(segment: str, name: str | None) -> str:
    """Name a learned segment as the report does: ``S1 Champions`` (an RFM segment is its name)."""
    return f"{segment} {name}" if name and name != segment else segment
