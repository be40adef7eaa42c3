"""Learned segments: how the model was chosen, the t-SNE map, each segment's profile, size and revenue."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg.profile import neighbours_alike, standardised_means
from custseg.record import SegmentsSection
from custseg.report.charts import (
    PALETTE,
    Chart,
    Section,
    Table,
    layout,
    run_colors,
    segment_label,
    share,
    shareable_ids,
    wrap,
)
from custseg.report.data import ReportData

EMBEDDING_SAMPLE = 4000
"""Customers drawn in the embedding scatter (a seeded sample when there are more)."""


def learned_segments(data: ReportData) -> Section | None:
    """Show the segments' rules, the embedding, per-segment profiles, sizes and revenue.

    Model selection too when the silhouette chose them; chosen by the backtest, that section shows it.
    """
    described, customers, labels = data.record.segments, data.customers, data.category_labels
    if not isinstance(described, SegmentsSection) or "segment" not in customers.columns:
        return None
    candidates = pd.DataFrame(described.candidates)
    by_validity = described.chosen_by == "backtest"
    score = "validity" if by_validity else "silhouette"
    names = dict(zip(customers.segment, customers.segment_name, strict=False))
    order = sorted(names, key=lambda s: int(s[1:]))
    colors = run_colors(data.record)
    # Chosen by the backtest, the candidates are its evidence, shown there; chosen by the silhouette, here.
    charts = [] if by_validity else [model_selection(data)]
    # Above max_fit_customers only the customers the segments were learned from have a place.
    mapped = customers[customers.tsne_x.notna()] if "tsne_x" in customers.columns else customers.iloc[:0]
    if len(mapped):
        sample = mapped.sample(min(EMBEDDING_SAMPLE, len(mapped)), random_state=0)
        groups = dict(tuple(sample.groupby("segment", sort=False)))
        figure = go.Figure(
            [
                go.Scattergl(
                    x=groups[segment].tsne_x,
                    y=groups[segment].tsne_y,
                    mode="markers",
                    name=wrap(segment_label(segment, names[segment])),
                    marker={"size": 4, "color": colors[segment], "opacity": 0.7},
                    text=shareable_ids(groups[segment].customer_id),
                    hovertemplate="customer %{text}<extra>" + segment + "</extra>",
                )
                for segment in order
                if segment in groups
            ]
        )
        figure.update_xaxes(showticklabels=False, title_text="t-SNE 1")
        figure.update_yaxes(showticklabels=False, title_text="t-SNE 2")
        # The legend's dots as large as a line's marker, not the map's 4-pixel points: their colours read.
        figure.update_layout(legend={"itemsizing": "constant"})
        shown = f"a sample of {len(sample):,} of {len(customers):,}" if len(sample) < len(customers) else "all"
        overall, own = neighbours_alike(sample[["tsne_x", "tsne_y"]].to_numpy(), sample.segment.to_numpy())
        mixed = own.idxmin()
        charts.append(
            Chart(
                "Customers in a 2-D t-SNE map, coloured by learned segment",
                f"The map shows {shown} customers; {overall:.0%} of a customer's 10 nearest neighbours on "
                f"it are in the customer's own segment, least so in {mixed} {names[mixed]} ({own[mixed]:.0%}).",
                layout(figure, 520),
            )
        )
    means = standardised_means(customers)
    shares = [c for c in means.columns if c.startswith("share_")]
    axis = ["recency", "frequency", "monetary", "tenure", *[labels.get(c.removeprefix("share_"), c) for c in shares]]
    figure = go.Figure(
        [
            go.Scatter(
                x=axis,
                y=means.loc[segment],
                mode="lines+markers",
                name=wrap(segment_label(segment, names[segment])),
                line={"color": colors[segment]},
            )
            for segment in order
            if segment in means.index
        ]
    )
    figure.add_hline(y=0, line_color="#999")
    figure.update_yaxes(title_text="standard deviations from the mean")
    # Every feature named in full on one line: the chart grows by the longest name turned on its side.
    figure.update_xaxes(tickangle=-90, dtick=1, tickfont={"size": 11})
    spread = means[["recency_days", "frequency", "monetary", "tenure_days"]]
    widest = spread.max() - spread.min()
    charts.append(
        Chart(
            "Segment profiles (snake plot of standardised features and interests)",
            f"The segments differ most in {widest.idxmax().removesuffix('_days')} "
            f"({widest.max():.1f} standard deviations between the highest and the lowest segment).",
            snake_layout(figure, 380 + 7 * max(map(len, axis))),
        )
    )
    profiles = pd.DataFrame(described.profiles)
    # Side by side, a bar per segment in its colour, best on top: the names read across, no legend needed.
    figure = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.1,
        subplot_titles=("share of customers", "share of revenue"),
    )
    segment_names = [wrap(segment_label(s, n), 32) for s, n in zip(profiles.segment, profiles.name, strict=True)]
    for col, column in ((1, "share"), (2, "revenue_share")):
        figure.add_trace(
            go.Bar(
                x=profiles[column],
                y=segment_names,
                orientation="h",
                marker_color=[colors[s] for s in profiles.segment],
                text=[f"{v:.0%}" for v in profiles[column]],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{y}: %{x:.1%}<extra></extra>",
                showlegend=False,
            ),
            1,
            col,
        )
    figure.update_xaxes(tickformat=".0%", rangemode="tozero")
    figure.update_yaxes(autorange="reversed")
    top = profiles.loc[profiles.revenue_share.idxmax()]
    charts.append(
        Chart(
            "Size and revenue share of each learned segment",
            f"{top['name']} ({top.segment}) is {top.share:.0%} of customers and brings "
            f"{top.revenue_share:.0%} of revenue.",
            layout(figure, 120 + 60 * len(profiles)),
        )
    )
    # Chosen by the backtest, the candidates are its evidence and shown there; chosen by the silhouette, here.
    tables = [] if by_validity else [candidates_table(candidates, score)]
    if described.rules:
        tables.insert(0, rules_table(described, data.record.backtest.horizon_days if by_validity else None, data))
    intro = (
        "Each learned segment is a rule that every one of its customers satisfies, so it can be rebuilt in an "
        "email tool's segment builder and kept from one run to the next; its name comes from its rule."
        + (" They were chosen by what the shop's customers went on to do." if by_validity else "")
    )
    if described.kept is not None:
        intro = f"Segments kept from {described.kept.run}: {described.kept.advice}. " + intro
    method = f"{described.rule.capitalize()}. {described.reason}."
    return Section("learned", "Learned segments", intro, charts, tables, method=method)


def model_selection(data: ReportData) -> Chart:
    """Draw every candidate segmentation's score and stability over the number of segments, the chosen starred."""
    described = data.record.segments
    chosen = described.chosen
    candidates = pd.DataFrame(described.candidates)
    by_validity = described.chosen_by == "backtest"
    min_stability = data.record.settings["cluster"]["min_stability"]
    score, score_title = ("validity", "backtest validity") if by_validity else ("silhouette", "silhouette")
    figure = make_subplots(rows=1, cols=2, subplot_titles=(score_title, "bootstrap stability"))
    for index, ((model, space), group) in enumerate(candidates.groupby(["model", "space"], sort=True)):
        group = group.sort_values("n_segments")
        color = PALETTE[index % len(PALETTE)]
        for col, metric in ((1, score), (2, "stability")):
            figure.add_trace(
                go.Scatter(
                    x=group.n_segments,
                    y=group[metric],
                    mode="lines+markers",
                    name=f"{model} · {space}",
                    legendgroup=f"{model}{space}",
                    showlegend=col == 1,
                    line={"color": color},
                ),
                1,
                col,
            )
    for col in (1, 2):
        figure.add_trace(
            go.Scatter(
                x=[chosen["n_segments"]],
                y=[chosen[score if col == 1 else "stability"]],
                mode="markers",
                marker={"symbol": "star", "size": 16, "color": "black"},
                name="chosen",
                showlegend=col == 1,
            ),
            1,
            col,
        )
    figure.add_hline(y=min_stability, line_dash="dot", line_color="#999", row=1, col=2)
    figure.update_xaxes(title_text="segments")
    # From zero: candidates a few thousandths apart look as close as they are.
    figure.update_yaxes(rangemode="tozero")
    eligible = int(candidates.eligible.sum())
    return Chart(
        "Model selection: every candidate over the number of segments",
        f"{eligible} of {len(candidates)} candidates are stable enough (>= {min_stability}) with no tiny segment. "
        f"The rule chose {described.reason}.",
        layout(figure, 440),
    )


def rules_table(described: SegmentsSection, horizon_days: int | None, data: ReportData) -> Table:
    """Each segment's rule, name and size, and what such customers did in the backtest."""
    profiles = {p["segment"]: p for p in described.profiles}
    header = ["segment", "rule (every member satisfies it)", "customers", "share"]
    if horizon_days is not None:
        header += [f"ordered within {horizon_days} days (backtest)", "mean revenue (backtest)"]
    rows = []
    for entry in described.rules:
        profile = profiles.get(entry["segment"])
        if profile is None:
            continue
        row = [f"{entry['segment']} {profile['name']}", entry["rule"], f"{profile['customers']:,}"]
        row.append(share(profile["share"]))
        if horizon_days is not None:
            rate, revenue = profile.get("backtest_return_rate"), profile.get("backtest_mean_revenue")
            row += [
                "" if rate is None or rate != rate else share(rate),
                "" if revenue is None or revenue != revenue else data.money(revenue),
            ]
        rows.append(row)
    return Table("The segments as rules", header, rows)


def candidates_table(candidates: pd.DataFrame, score: str) -> Table:
    """Build the table of the best candidates by the rule's score, eligible first."""
    shown = candidates.sort_values(["eligible", score], ascending=[False, False], kind="mergesort").head(12)
    with_backtest = "validity" in candidates.columns
    columns = ["model", "space", "segments"]
    if with_backtest:
        columns += ["return AUC", "eta²", "validity (± se)"]
    columns += ["silhouette", "stability", "smallest segment", "chosen"]
    rows = []
    for c in shown.itertuples():
        cells = [c.model, c.space, str(c.n_segments)]
        if with_backtest:
            cells += [f"{c.auc:.3f}", f"{c.eta_squared:.3f}", f"{c.validity:.3f} ± {c.validity_se:.3f}"]
        silhouette = "-" if c.silhouette != c.silhouette else f"{c.silhouette:.3f}"
        cells += [silhouette, f"{c.stability:.3f}", share(c.smallest_share), "yes" if c.chosen else ""]
        rows.append(cells)
    order = "backtest validity" if with_backtest else "silhouette"
    return Table(f"Best candidates (eligible first, by {order})", columns, rows)


def snake_layout(figure: go.Figure, height: int) -> go.Figure:
    """Give the snake plot the report's look with its legend above it: the features below take the whole width."""
    layout(figure, height)
    figure.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"})
    return figure
