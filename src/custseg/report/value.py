"""Value: what the customers and each segment are expected to bring next, and how the model was checked."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg.forward import LEVEL
from custseg.record import Skipped
from custseg.record.value import ForwardChecks
from custseg.report.charts import NEUTRAL, Chart, Section, Table, layout, log_ticks, run_colors, share
from custseg.report.data import ReportData
from custseg.value import forward_in_words, period, season_in_words


def value(data: ReportData) -> Section | None:
    """Show what customers are worth next: calibration on the backtest, the forward check, value per segment."""
    described, segments = data.record.value, data.segments
    if described is None or segments is None:
        return None
    title = "What are the customers worth next?"
    if isinstance(described, Skipped):
        return Section("value", title, f"No expected value in this run: {described.reason}.")
    horizon, fit = described.horizon_days, described.backtest
    columns = described.columns
    candidates = pd.DataFrame(described.candidates)
    others = ", ".join(f"{c.model.replace('_', ' ')} {c.validity:.3f}" for c in candidates.itertuples())
    intro = (
        "Each customer's chance of ordering again, expected orders and expected revenue in "
        f"{period(described.window)}, learned from what the customers did after an earlier date of this log and "
        "checked on days the model had not seen."
    )
    method = (
        f"Columns {', '.join(columns.values())} in customers.parquet; {described.protocol}. Validity of the "
        f"candidates: {others}; {described.chosen.replace('_', ' ')} won."
    )
    deciles = pd.DataFrame(described.calibration["deciles"])
    figure = go.Figure()
    for column, name, color in (("predicted_mean", "predicted", "#9467bd"), ("actual_mean", "actual", "#2ca02c")):
        figure.add_trace(
            go.Scatter(
                x=deciles.group,
                y=deciles[column],
                name=name,
                mode="lines+markers",
                line={"color": color},
                hovertemplate="%{y:,.0f}",
            )
        )
    ticks = log_ticks([*deciles.predicted_mean, *deciles.actual_mean])
    figure.update_yaxes(type="log", title_text=f"mean revenue per customer in {horizon} days", **ticks)
    figure.update_xaxes(title_text="decile of predicted revenue (10 = highest)", dtick=1)
    top_decile, low_decile = deciles.loc[deciles.group.idxmax()], deciles.loc[deciles.group.idxmin()]
    method += (
        f" On the backtest, out of fold: Spearman {fit.spearman:.3f} between expected and actual revenue, R² of "
        f"log revenue {fit.r_squared_log:.3f}, AUC of the chance of ordering again {fit.auc:.3f}."
    )
    charts = [
        Chart(
            f"Predicted against actual revenue on the backtest, decile by decile (out of fold, {fit.customers:,} "
            "customers)",
            f"The tenth of customers expected to spend the most spent {data.money(top_decile.actual_mean)} each "
            f"(expected {data.money(top_decile.predicted_mean)}), the lowest tenth "
            f"{data.money(low_decile.actual_mean)}; "
            f"in all, {data.money(fit.predicted_revenue)} was expected and {data.money(fit.actual_revenue)} spent "
            f"({fit.revenue_ratio:.0%} of it).",
            layout(figure, 380),
        )
    ]
    forward, interval = described.forward, described.expected.revenue_interval
    if isinstance(forward, Skipped):
        intro += f" No forward check: {forward.reason}."
    else:
        charts.append(_forward_chart(forward, horizon))
    intro += f" The forecast is {season_in_words(described.season, described.expected.expected_revenue)}."
    intro += f" In all, {data.money(described.expected.expected_revenue)} is expected" + (
        f" (no interval: {interval.reason})."
        if isinstance(interval, Skipped)
        else f", {interval.level:.0%} interval {data.money(interval.low)} to {data.money(interval.high)}: how far the "
        "forward checks' totals ran from the actual, applied to this forecast."
    )
    revenue, total = columns["expected_revenue"], f"{columns['expected_revenue']}_total"
    # The stored table's row order is the engine's: RFM segments by value, learned ones by id.
    segments = segments[segments[revenue].notna()]
    order = [
        (kind == "learned", int(segment[1:]) if kind == "learned" else -value)
        for kind, segment, value in zip(segments.kind, segments.segment, segments[revenue], strict=True)
    ]
    segments = segments.iloc[sorted(range(len(segments)), key=order.__getitem__)]
    learned = segments[segments.kind == "learned"]
    shown = learned if len(learned) else segments[segments.kind == "rfm"]
    if len(shown):
        labels = [f"{r.segment} {r.name}" if r.segment != r.name else r.name for r in shown.itertuples()]
        figure = make_subplots(
            rows=1,
            cols=2,
            # Short: the two titles share the width of a phone; the chart's own title names the days.
            subplot_titles=(f"expected revenue in {horizon} days", "backtest: actual per customer"),
        )
        colors = run_colors(data.record)
        segment_colors = [colors.get(s, NEUTRAL) for s in shown.segment]
        figure.add_trace(
            go.Bar(
                x=shown.segment,
                y=shown[total],
                marker_color=segment_colors,
                text=labels,
                textposition="none",
                hovertemplate="%{text}: %{y:,.0f}<extra></extra>",
                showlegend=False,
            ),
            1,
            1,
        )
        # What they spent as the segment's bar, what the model predicted as a dash across it.
        figure.add_trace(
            go.Bar(
                x=shown.segment,
                y=shown.backtest_mean_revenue,
                name="actual",
                marker_color=segment_colors,
                text=labels,
                textposition="none",
                hovertemplate="%{text}: spent %{y:,.0f}<extra></extra>",
                showlegend=False,
            ),
            1,
            2,
        )
        figure.add_trace(
            go.Scatter(
                x=shown.segment,
                y=shown.backtest_predicted_revenue,
                name="predicted",
                mode="markers",
                marker={"symbol": "line-ew", "size": 28, "line": {"width": 3, "color": "#222"}},
                text=labels,
                hovertemplate="%{text}: predicted %{y:,.0f}<extra></extra>",
            ),
            1,
            2,
        )
        figure.update_yaxes(rangemode="tozero")
        top = shown.loc[shown[total].idxmax()]
        charts.append(
            Chart(
                f"Value per segment: {period(described.window)}, and the check on the backtest",
                f"{top.segment} {top['name']} is expected to bring {data.money(top[total])} "
                f"({top[total] / shown[total].sum():.0%} of the {data.money(shown[total].sum())} expected from these "
                f"segments), {data.money(top[revenue])} per customer; on the backtest its customers were predicted "
                f"{data.money(top.backtest_predicted_revenue)} each and spent {data.money(top.backtest_mean_revenue)}.",
                layout(figure, 420),
            )
        )
    table = Table(
        f"Expected value per segment in {period(described.window)}: the RFM map's segments, then the "
        "learned ones (each segmentation's totals add up to the whole shop's)",
        [
            "segmentation",
            "segment",
            "customers",
            "ordering again",
            "orders per customer",
            "revenue per customer",
            "revenue in total",
            f"{LEVEL:.0%} interval",
            "backtest: predicted",
            "backtest: actual",
        ],
        [
            [
                "learned" if r.kind == "learned" else "RFM map",
                f"{r.segment} {r.name}" if r.segment != r.name else r.name,
                f"{r.customers:,}",
                share(getattr(r, columns["p_order_again"])),
                f"{getattr(r, columns['expected_orders']):.2f}",
                data.money(getattr(r, revenue)),
                data.money(getattr(r, total)),
                ""
                if pd.isna(getattr(r, f"{total}_low"))
                else f"{data.money(getattr(r, f'{total}_low'))} to {data.money(getattr(r, f'{total}_high'))}",
                "" if pd.isna(r.backtest_predicted_revenue) else data.money(r.backtest_predicted_revenue),
                "" if pd.isna(r.backtest_mean_revenue) else data.money(r.backtest_mean_revenue),
            ]
            for r in segments.itertuples()
        ],
    )
    return Section("value", title, intro, charts, [table], method=method)


def _forward_chart(forward: ForwardChecks, horizon: int) -> Chart:
    """Draw the forecast against the actual total at every past cut, as the model is used now."""
    cuts = sorted(forward.cuts, key=lambda check: check.scored_as_of)
    dates = [check.scored_as_of.date().isoformat() for check in cuts]
    figure = go.Figure()
    bars = [("forecast", [check.predicted_revenue for check in cuts], "#9467bd")]
    if forward.seasonal:
        # Only the checks that reach a year before their cut have a correction (None leaves a gap).
        corrected = [
            None if check.season_factor is None else check.predicted_revenue * check.season_factor for check in cuts
        ]
        bars.append(("forecast corrected by the season a year before", corrected, "#c5b0d5"))
    bars.append(("actual", [check.actual_revenue for check in cuts], "#2ca02c"))
    for name, values, color in bars:
        figure.add_trace(go.Bar(x=dates, y=values, name=name, marker_color=color, hovertemplate="%{y:,.0f}"))
    figure.update_xaxes(title_text=f"cut: the forecast of the {horizon} days from this date", type="category")
    figure.update_yaxes(title_text=f"revenue in {horizon} days")
    return Chart(
        f"Forward checks: the forecast against what came, at {len(cuts)} past date{'s' if len(cuts) > 1 else ''}",
        f"At each date the model learned only from the log before it, as a run on that day would have, and "
        f"forecast the next {horizon} days; {forward_in_words(forward)}"
        + (
            "."
            if forward.segments is None
            else f"; each segment's interval held its actual in {forward.segments.held} of {forward.segments.tried}."
        ),
        layout(figure, 360),
    )
