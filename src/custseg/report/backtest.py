"""The backtest: how well the segments predict what customers do next, beside the RFM map and the ceilings."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg.record import SegmentsSection, Skipped
from custseg.report.charts import NEUTRAL, Chart, Section, Table, layout, run_colors, share
from custseg.report.data import ReportData
from custseg.report.rfm import rfm_name_checks
from custseg.report.segments import candidates_table, model_selection


def backtest(data: ReportData) -> Section | None:
    """Show whether the segments predict: lift per segment, learned vs RFM map vs continuous scores."""
    validation, segments = data.record.backtest, data.record.segments
    if validation is None:
        return None
    title = "Do the segments predict?"
    if isinstance(validation, Skipped):
        intro = (
            f"No backtest in this run: {validation.reason}. The learned segments were chosen by the "
            "silhouette rule instead, which says how separated they are, not what they predict."
        )
        return Section("backtest", title, intro)
    horizon = validation.horizon_days
    rfm, ceiling = validation.rfm, validation.ceilings
    learned = segments.backtest if isinstance(segments, SegmentsSection) else None
    intro = (
        f"A segmentation is worth what its segments do next. custseg went back to {validation.as_of.date()}, put "
        f"the {validation.customers:,} customers of that day into segments, and looked at what they did in the "
        f"next {horizon} days: who ordered again and what they spent. The better a segmentation tells those apart, "
        "the higher its score (0 to 1)."
    )
    method = (
        f"{validation.protocol[0].upper()}{validation.protocol[1:]}. The return AUC ranks customers by their "
        f"segment's share who ordered again within {horizon} days; eta² is the share of the variance of log revenue "
        "in those days that the segments explain; validity is their mean (AUC as a Gini), with its bootstrap "
        "standard error. The continuous scores are a logistic and a linear regression on the same features: a "
        "ceiling for any segmentation, not segments."
    )
    comparison = Table(
        f"{validation.customers:,} customers as of {validation.as_of.date()}, scored on the next {horizon} days",
        ["segmentation", "ordering again: AUC", "spend: eta² of log revenue", "score: validity (± se)"],
        [
            *(
                [
                    [
                        "learned segments (this run's final segments)",
                        f"{learned.auc:.3f}",
                        f"{learned.eta_squared:.3f}",
                        f"{learned.validity:.3f} ± {learned.validity_se:.3f}",
                    ]
                ]
                if learned
                else []
            ),
            [
                "RFM map",
                f"{rfm.auc:.3f}",
                f"{rfm.eta_squared:.3f}",
                f"{rfm.validity:.3f} ± {rfm.validity_se:.3f}",
            ],
            [
                "continuous scores (a ceiling, not segments)",
                f"{ceiling.logistic_regression_auc:.3f}",
                f"{ceiling.linear_regression_r_squared:.3f}",
                "",
            ],
        ],
    )
    tables = [comparison]
    charts = []
    if learned:
        per_segment = pd.DataFrame(learned.per_segment)
        names = data.segment_names
        hover = [f"{s} {names.get(s, '')}".strip() for s in per_segment.segment]
        figure = make_subplots(rows=1, cols=2, subplot_titles=("ordered again", "mean revenue, times the average"))
        colors = run_colors(data.record)
        for col, column in ((1, "return_rate"), (2, "revenue_lift")):
            figure.add_trace(
                go.Bar(
                    x=per_segment.segment,
                    y=per_segment[column],
                    marker_color=[colors.get(s, NEUTRAL) for s in per_segment.segment],
                    text=hover,
                    hovertemplate="%{text}: %{y}<extra></extra>",
                    textposition="none",
                ),
                1,
                col,
            )
        figure.add_hline(y=validation.returned_share, line_dash="dot", line_color="#999", row=1, col=1)
        figure.add_hline(y=1.0, line_dash="dot", line_color="#999", row=1, col=2)
        figure.update_yaxes(tickformat=".0%", row=1, col=1)
        figure.update_layout(showlegend=False)
        best = per_segment.loc[per_segment.revenue_lift.idxmax()]
        worst = per_segment.loc[per_segment.revenue_lift.idxmin()]
        charts.append(
            Chart(
                f"What each learned segment did in the {horizon} days after {validation.as_of.date()}",
                f"{best.segment} {names.get(best.segment, '')}: {best.return_rate:.0%} ordered again and spent "
                f"{best.revenue_lift:.1f} times the average customer; {worst.segment} {names.get(worst.segment, '')}: "
                f"{worst.return_rate:.0%}, {worst.revenue_lift:.2f} times (dotted: the average, "
                f"{validation.returned_share:.0%} ordered again). {learned.note.capitalize()}.",
                layout(figure, 420),
            )
        )
        tables.append(
            Table(
                "Learned segments in the backtest",
                [
                    "segment",
                    "customers then",
                    "ordered again",
                    "mean revenue",
                    "median revenue",
                    "lift (return)",
                    "lift (revenue)",
                ],
                [
                    [
                        f"{r.segment} {names.get(r.segment, '')}".strip(),
                        f"{r.customers:,}",
                        share(r.return_rate),
                        data.money(r.mean_revenue),
                        data.money(r.median_revenue),
                        f"{r.return_lift:.2f}",
                        f"{r.revenue_lift:.2f}",
                    ]
                    for r in per_segment.itertuples()
                ],
            )
        )
    checks = rfm_name_checks(data)
    tables.append(
        Table(
            "RFM map segments in the backtest",
            ["segment", "customers then", "ordered again", "mean revenue", "lift (revenue)", "the name, checked"],
            [
                [
                    r.segment,
                    f"{r.customers:,}",
                    share(r.return_rate),
                    data.money(r.mean_revenue),
                    f"{r.revenue_lift:.2f}",
                    checks.get(r.segment, ""),
                ]
                for r in pd.DataFrame(rfm.segments).itertuples()
            ],
        )
    )
    if isinstance(segments, SegmentsSection) and segments.chosen_by == "backtest":
        tables.insert(1, candidates_table(pd.DataFrame(segments.candidates), "validity"))
        charts.append(model_selection(data))
        method += f" The rule: {segments.rule}."
    return Section("backtest", title, intro, charts, tables, method=method)
