"""RFM: the distributions of recency, frequency and monetary value, and the named RFM segments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg.record import BacktestSection
from custseg.report.charts import Chart, Section, layout, run_colors
from custseg.report.data import ReportData
from custseg.rfm import segment_codes
from custseg.settings import settings_from_dict


def rfm(data: ReportData) -> Section:
    """Show the distributions of recency, frequency and monetary value; the named RFM segments."""
    customers, described = data.customers, data.record.rfm
    figure = make_subplots(
        rows=1, cols=3, subplot_titles=("recency (days)", "frequency (orders, log)", "monetary (log)")
    )
    figure.add_trace(go.Histogram(x=customers.recency_days, nbinsx=50, marker_color="#1f77b4"), 1, 1)
    figure.add_trace(go.Histogram(x=np.log10(customers.frequency), nbinsx=40, marker_color="#ff7f0e"), 1, 2)
    figure.add_trace(
        go.Histogram(x=np.log10(customers.monetary.clip(lower=1)), nbinsx=50, marker_color="#2ca02c"), 1, 3
    )
    for col, ticks in ((2, [1, 2, 5, 10, 20, 50, 100, 200]), (3, [1, 10, 100, 1_000, 10_000, 100_000])):
        figure.update_xaxes(tickvals=np.log10(ticks), ticktext=[f"{t:,}" for t in ticks], row=1, col=col)
    figure.update_layout(showlegend=False)
    one_order = (customers.frequency == 1).mean()
    distributions = Chart(
        "Recency, frequency and monetary value",
        f"Half the customers last bought within {customers.recency_days.median():.0f} days; {one_order:.0%} "
        f"ordered once; the median customer spent {data.money(customers.monetary.median())}.",
        layout(figure, 340),
    )
    segments = pd.DataFrame([dataclasses.asdict(s) for s in described.segments])
    segments = segments[segments.customers > 0]
    colors = run_colors(data.record)
    figure = make_subplots(
        rows=1, cols=2, specs=[[{"type": "domain"}, {"type": "domain"}]], subplot_titles=("customers", "revenue")
    )
    for col, values in ((1, segments.customers), (2, segments.revenue_share.clip(lower=0))):
        figure.add_trace(
            go.Treemap(
                labels=segments.segment,
                parents=[""] * len(segments),
                values=values,
                textinfo="label+percent root",
                marker={"colors": [colors[s] for s in segments.segment]},
            ),
            1,
            col,
        )
    best = segments.loc[segments.revenue_share.idxmax()]
    treemap = Chart(
        "Named RFM segments: share of customers and of revenue",
        f"{best.segment} are {best.share:.0%} of customers and bring {best.revenue_share:.0%} of revenue.",
        layout(figure, 460),
    )
    cuts = described.cut_points
    intro = (
        f"Scores 1-{described.bins} from stored quantile cut points (recency {cuts['recency']}, "
        f"frequency {cuts['frequency']}, monetary {[round(c) for c in cuts['monetary']]}), mapped to named segments."
    )
    if len(customers) < data.customer_count:
        intro += f" Distributions from a random sample of {len(customers):,} of the {data.customer_count:,} customers."
    return Section("rfm", "RFM", intro, [distributions, treemap])


LOW_SCORES = 2
"""A segment of the RFM map whose codes all have recency and frequency scores of at most this (1-5) is
named as gone ("Lost", "Hibernating"); one whose codes all have recency scores above 5 - this, as active."""


def rfm_name_checks(data: ReportData) -> dict[str, str]:
    """Say, for each RFM segment whose name the backtest contradicts, what its customers did instead.

    A segment named as gone (every code's recency and frequency scores at most `LOW_SCORES`) is
    contradicted when at least half the shop's share of customers ordered again within H days; one
    named as active (every recency score above 5 - `LOW_SCORES`), when under half did. Returns
    segment -> a qualifying sentence; segments the backtest bears out are left out.
    """
    backtest = data.record.backtest
    if not isinstance(backtest, BacktestSection):
        return {}
    codes = segment_codes(settings_from_dict(data.record.settings).rfm.rules())
    shop, horizon = backtest.returned_share, backtest.horizon_days
    checks = {}
    for row in backtest.rfm.segments:
        scores = codes.get(row["segment"], [])
        rate = row["return_rate"]
        gone = bool(scores) and all(r <= LOW_SCORES and f <= LOW_SCORES for r, f, _ in scores)
        active = bool(scores) and all(r > 5 - LOW_SCORES for r, _, _ in scores)
        if gone and rate >= shop / 2:
            checks[row["segment"]] = (
                f"not gone: {rate:.0%} of such customers ordered again within {horizon} days (the shop: {shop:.0%})"
            )
        elif active and rate < shop / 2:
            checks[row["segment"]] = (
                f"less active than the name says: {rate:.0%} of such customers ordered again within {horizon} days "
                f"(the shop: {shop:.0%})"
            )
    return checks
