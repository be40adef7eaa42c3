"""Product categories: labels, sizes, revenue and example products."""

from __future__ import annotations

import dataclasses

import pandas as pd
import plotly.graph_objects as go

from custseg.record import ProductsSection
from custseg.report.charts import Chart, Section, Table, layout, share
from custseg.report.data import ReportData


def product_categories(data: ReportData) -> Section | None:
    """Show the learned categories: labels, sizes, revenue and example products."""
    described = data.record.products
    if not isinstance(described, ProductsSection) or not described.categories:
        return None
    frame = pd.DataFrame([dataclasses.asdict(c) for c in described.categories]).sort_values("revenue_share")
    figure = go.Figure(
        go.Bar(
            x=frame.revenue_share,
            y=[f"{c} {label}" for c, label in zip(frame.category, frame.label, strict=True)],
            orientation="h",
            text=[f"{s:.0%} · {p:,} products" for s, p in zip(frame.revenue_share, frame.products, strict=True)],
            textposition="auto",
            marker_color="#8c564b",
        )
    )
    figure.update_xaxes(title_text="share of revenue", tickformat=".0%")
    top = frame.iloc[-1]
    chart = Chart(
        "Revenue share per product category",
        f"{len(frame)} categories were learned from {described.products:,} products' descriptions; "
        f"the largest, {top.label}, takes {top.revenue_share:.0%} of revenue.",
        layout(figure, 80 + 45 * len(frame)),
    )
    table = Table(
        "Categories",
        ["category", "label", "products", "revenue", "characteristic words", "examples"],
        [
            [c.category, c.label, f"{c.products:,}", share(c.revenue_share), c.top_words, c.examples]
            for c in described.categories
        ],
    )
    intro = (
        f"Products are grouped by the product type their descriptions name ({described.method}): "
        f"{described.chosen} categories, {described.criterion}."
    )
    return Section("products", "Product categories", intro, [chart], [table])
