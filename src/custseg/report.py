"""The report: one self-contained HTML file with the data's story, the segments and what to do.

Marketing people would rather look than read tables. `build_report` reads a finished output
folder (run.json and the tables in custseg.duckdb), draws every chart with Plotly, writes one
computed sentence under each saying what it shows on this data, and renders ``report.html`` with
Jinja2: plotly.js is embedded once, so the file opens offline and can be e-mailed. Sections whose
stage did not run are left out.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg import __version__
from custseg.eda import BASKET_LINES_CAP, Exploration, explore, month_label
from custseg.engine import DATABASE_FILE, stored_tables
from custseg.errors import InputFileError
from custseg.movement import GONE, NEW
from custseg.movement import matrix as flow_matrix
from custseg.profile import neighbours_alike, standardised_means
from custseg.sampling import rows_at_most
from custseg.workspace import MANIFEST_FILE

REPORT_FILE = "report.html"
EMBEDDING_SAMPLE = 4000
"""Customers drawn in the embedding scatter (a seeded sample when there are more)."""
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
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


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _share(value: float) -> str:
    return f"{value:.1%}"


def _layout(figure: go.Figure, height: int = 420) -> go.Figure:
    figure.update_layout(
        height=height,
        margin={"l": 60, "r": 30, "t": 30, "b": 50},
        template="plotly_white",
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.18},
    )
    return figure


# -- sections ----------------------------------------------------------------------------------


def data_quality(manifest: dict[str, Any]) -> Section:
    """Show rows in, kept and rejected per reason; the revenue reconciliation; the date range."""
    rows, reconciliation, span = manifest["rows"], manifest["reconciliation"], manifest["lines"]
    reasons = {reason: count for reason, count in rows["rejected_by_reason"].items() if count}
    waterfall = go.Figure(
        go.Waterfall(
            x=["input rows", *reasons, "kept purchase lines"],
            measure=["absolute", *["relative"] * len(reasons), "total"],
            y=[rows["input_rows"], *[-count for count in reasons.values()], 0],
            text=[f"{rows['input_rows']:,}", *[f"-{c:,}" for c in reasons.values()], f"{rows['kept_rows']:,}"],
            textposition="outside",
            connector={"line": {"color": "#bbb"}},
            decreasing={"marker": {"color": "#d62728"}},
            totals={"marker": {"color": "#2ca02c"}},
        )
    )
    biggest = max(reasons, key=reasons.get) if reasons else None
    reading = (
        f"Of {rows['input_rows']:,} input rows, {rows['kept_rows']:,} ({rows['kept_rows'] / rows['input_rows']:.1%})"
    )
    reading += " are kept as purchase lines"
    if biggest:
        reading += (
            f"; the largest group set aside is {biggest.replace('_', ' ')} ({reasons[biggest]:,} rows, "
            f"{reasons[biggest] / rows['input_rows']:.1%} of the input)."
        )
    else:
        reading += "; nothing was set aside."
    money = Table(
        "Revenue reconciliation",
        ["item", "amount"],
        [
            ["input amount (quantity x price, every parseable row)", _money(reconciliation["input_amount"])],
            ["gross sales of the kept lines", _money(reconciliation["gross_sales"])],
            *[
                [f"rejected: {reason.replace('_', ' ')}", _money(amount)]
                for reason, amount in reconciliation["rejected_amount"].items()
            ],
            ["returns netted against kept lines", "-" + _money(reconciliation["returns_matched"])],
            *(
                [["orders' refunds, spread over their lines", "-" + _money(reconciliation["refunds"])]]
                if reconciliation.get("refunds")
                else []
            ),
            ["net revenue", _money(reconciliation["net_revenue"])],
            ["balanced to the cent", "yes" if reconciliation["balanced"] else "NO"],
        ],
    )
    intro = (
        f"{span['customers']:,} customers placed {span['orders']:,} orders for {span['products']:,} products "
        f"between {span['first_invoiced_at'][:10]} and {span['last_invoiced_at'][:10]}. Every input row is "
        "either kept or set aside with a reason (rejected.parquet lists them)."
    )
    return Section(
        "quality",
        "Data quality",
        intro,
        [Chart("From input rows to purchase lines", reading, _layout(waterfall))],
        [money],
    )


def exploration(tables: Exploration) -> Section:
    """Show revenue over time, when people order, where, what, baskets, new customers and cohorts."""
    charts = []
    facts = tables.summary
    monthly = tables.monthly
    labels = [month_label(m) for m in monthly.month]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=labels, y=monthly.revenue, name="net revenue", marker_color="#1f77b4"))
    figure.add_trace(
        go.Scatter(x=labels, y=monthly.orders, name="orders", mode="lines+markers", line={"color": "#ff7f0e"}),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="net revenue", secondary_y=False)
    figure.update_yaxes(title_text="orders", secondary_y=True)
    peak = monthly.loc[monthly.revenue.idxmax()]
    reading = (
        f"Revenue peaks in {month_label(int(peak.month))} at {_money(peak.revenue)}, "
        f"{peak.revenue / monthly.revenue.median():.1f} times the median month"
    )
    last_day = facts["last_ordered_at"]
    if (last_day + pd.Timedelta(days=1)).month == last_day.month:
        reading += f"; {month_label(int(monthly.month.iloc[-1]))} is cut short: the data ends on {last_day:%d %B}."
    else:
        reading += "."
    charts.append(Chart("Revenue and orders per month", reading, _layout(figure)))

    grid = tables.weekday_hour.pivot_table(
        index="weekday", columns="hour", values="orders", aggfunc="sum", fill_value=0
    )
    grid = grid.reindex(index=range(7), fill_value=0)
    figure = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[f"{h}:00" for h in grid.columns],
            y=list(WEEKDAYS),
            colorscale="Blues",
            colorbar={"title": "orders"},
        )
    )
    figure.update_yaxes(autorange="reversed")
    busiest = np.unravel_index(grid.to_numpy().argmax(), grid.shape)
    quiet_days = [WEEKDAYS[d] for d in range(7) if grid.iloc[d].sum() == 0]
    reading = f"The busiest hour is {WEEKDAYS[busiest[0]]} {grid.columns[busiest[1]]}:00"
    reading += f"; no orders at all on {', '.join(quiet_days)}." if quiet_days else "."
    charts.append(Chart("Orders by weekday and hour", reading, _layout(figure, 360)))

    countries = tables.countries.set_index("country")
    top = countries.head(12).iloc[::-1]
    figure = go.Figure(
        go.Bar(
            x=top.revenue,
            y=top.index,
            orientation="h",
            customdata=np.column_stack([top.orders, top.customers]),
            hovertemplate="%{y}: %{x:,.0f} revenue, %{customdata[0]:,} orders, %{customdata[1]:,} customers"
            "<extra></extra>",
            marker_color="#2ca02c",
        )
    )
    figure.update_xaxes(title_text="net revenue")
    first = countries.iloc[0]
    charts.append(
        Chart(
            "Countries by revenue (orders and customers on hover)",
            f"{countries.index[0]} brings {first.revenue / countries.revenue.sum():.0%} of revenue from "
            f"{int(first.customers):,} of {facts['customers']:,} customers; "
            f"{len(countries)} countries in all.",
            _layout(figure, 440),
        )
    )

    products = tables.top_products.iloc[::-1].copy()
    total_revenue = facts["total_revenue"]
    products["name"] = products.description.fillna(products.product_id).fillna("unknown").astype(str)
    figure = go.Figure(
        go.Bar(
            x=products.revenue,
            y=products.name.str.slice(0, 40),
            orientation="h",
            marker_color="#9467bd",
        )
    )
    figure.update_xaxes(title_text="net revenue")
    charts.append(
        Chart(
            f"Top {len(products)} products by revenue",
            f"The {len(products)} best sellers bring {products.revenue.sum() / total_revenue:.1%} of revenue; the "
            f"first, {products.name.iloc[-1]}, alone {products.revenue.iloc[-1] / total_revenue:.1%}.",
            _layout(figure, 480),
        )
    )

    figure = make_subplots(rows=1, cols=2, subplot_titles=("basket value (log scale)", "lines per basket"))
    values, sizes = tables.basket_values, tables.basket_sizes
    # Counted in the engine; the histograms sum the counts into their bins.
    figure.add_trace(
        go.Histogram(
            x=values.log_value, y=values.orders, histfunc="sum", nbinsx=60, marker_color="#17becf", name="value"
        ),
        1,
        1,
    )
    figure.add_trace(
        go.Histogram(x=sizes.lines, y=sizes.orders, histfunc="sum", nbinsx=50, marker_color="#bcbd22", name="lines"),
        1,
        2,
    )
    ticks = [1, 10, 100, 1_000, 10_000, 100_000]
    figure.update_xaxes(tickvals=np.log10(ticks), ticktext=[f"{t:,}" for t in ticks], row=1, col=1)
    figure.update_xaxes(title_text=f"lines ({BASKET_LINES_CAP} or more in the last bar)", row=1, col=2)
    figure.update_yaxes(title_text="orders", row=1, col=1)
    figure.update_layout(showlegend=False)
    charts.append(
        Chart(
            "Basket value and size",
            f"The median basket is worth {_money(facts['median_basket_value'])} with "
            f"{facts['median_basket_lines']:.0f} lines; the top 10% of baskets are worth over "
            f"{_money(facts['p90_basket_value'])}.",
            _layout(figure, 360),
        )
    )

    by_month = tables.new_returning
    labels = [month_label(m) for m in by_month.month]
    figure = go.Figure(
        [
            go.Bar(x=labels, y=by_month.new, name="new customers", marker_color="#ff7f0e"),
            go.Bar(x=labels, y=by_month.returning, name="returning customers", marker_color="#1f77b4"),
        ]
    )
    figure.update_layout(barmode="stack")
    later = by_month.iloc[1:] if len(by_month) > 1 else by_month
    new_share = later.new.sum() / max(later.new.sum() + later.returning.sum(), 1)
    charts.append(
        Chart(
            "New and returning customers per month",
            f"After the first month, {new_share:.0%} of the customers buying in a month are buying for the first time.",
            _layout(figure),
        )
    )

    cohorts = tables.cohorts.pivot_table(
        index="first_month", columns="offset", values="customers", aggfunc="sum", fill_value=0
    )
    # Every month offset, also one in which no cohort came back.
    cohorts = cohorts.reindex(columns=range(int(cohorts.columns.max()) + 1), fill_value=0)
    retention = cohorts.div(cohorts[0], axis=0)
    # Months after the end of the data are unknown, not zero.
    last_month = int(monthly.month.max())
    observable = np.add.outer(retention.index.to_numpy(), retention.columns.to_numpy()) <= last_month
    retention = retention.where(observable)
    figure = go.Figure(
        go.Heatmap(
            z=(retention.to_numpy() * 100).round(1),
            x=[f"+{o}" for o in retention.columns],
            y=[f"{month_label(m)} ({cohorts.loc[m, 0]:,})" for m in retention.index],
            colorscale="Greens",
            zmin=0,
            zmax=float(np.nanmax(retention.iloc[:, 1:].to_numpy() * 100)) if retention.shape[1] > 1 else 100.0,
            colorbar={"title": "% active"},
            hovertemplate="cohort %{y}, month %{x}: %{z}% active<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed", title_text="first order month (customers)")
    figure.update_xaxes(title_text="months after the first order")
    if retention.shape[1] > 1:
        next_month = retention[1].mean()
        reading = f"On average {next_month:.0%} of a month's new customers buy again the month after."
    else:
        reading = "The data covers a single month, so no cohort can come back yet."
    charts.append(Chart("Monthly cohorts: share still buying", reading, _layout(figure, 460)))
    intro = "What the kept purchase lines show: when, where and what people buy, and whether they come back."
    return Section("exploration", "Exploration", intro, charts)


def product_categories(manifest: dict[str, Any]) -> Section | None:
    """Show the learned categories: labels, sizes, revenue and example products."""
    described = manifest.get("products", {})
    categories = described.get("categories")
    if not categories:
        return None
    frame = pd.DataFrame(categories).sort_values("revenue_share")
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
        f"{len(frame)} categories were learned from {described['products']:,} product descriptions; "
        f"the largest, {top.label}, takes {top.revenue_share:.0%} of revenue.",
        _layout(figure, 80 + 45 * len(frame)),
    )
    table = Table(
        "Categories",
        ["category", "label", "products", "revenue", "characteristic words", "examples"],
        [
            [c["category"], c["label"], f"{c['products']:,}", _share(c["revenue_share"]), c["top_words"], c["examples"]]
            for c in categories
        ],
    )
    intro = (
        f"Products are grouped by their descriptions ({described['method']}); the number of categories, "
        f"{described['chosen']}, was chosen by {described['criterion']}."
    )
    return Section("products", "Product categories", intro, [chart], [table])


def rfm(customers: pd.DataFrame, manifest: dict[str, Any]) -> Section:
    """Show the distributions of recency, frequency and monetary value; the named RFM segments."""
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
        f"ordered once; the median customer spent {_money(customers.monetary.median())}.",
        _layout(figure, 340),
    )
    segments = pd.DataFrame(manifest["rfm"]["segments"])
    segments = segments[segments.customers > 0]
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
                marker={"colors": [PALETTE[i % len(PALETTE)] for i in range(len(segments))]},
            ),
            1,
            col,
        )
    best = segments.loc[segments.revenue_share.idxmax()]
    treemap = Chart(
        "Named RFM segments: share of customers and of revenue",
        f"{best.segment} are {best.share:.0%} of customers and bring {best.revenue_share:.0%} of revenue.",
        _layout(figure, 460),
    )
    cuts = manifest["rfm"]["cut_points"]
    intro = (
        f"Scores 1-{manifest['rfm']['bins']} from stored quantile cut points (recency {cuts['recency']}, "
        f"frequency {cuts['frequency']}, monetary {[round(c) for c in cuts['monetary']]}), mapped to named segments."
    )
    return Section("rfm", "RFM", intro, [distributions, treemap])


def learned_segments(customers: pd.DataFrame, manifest: dict[str, Any], labels: dict[str, str]) -> Section | None:
    """Show model selection, the embedding, per-segment profiles, sizes and revenue."""
    described = manifest.get("segments", {})
    if "chosen" not in described:
        return None
    chosen = described["chosen"]
    candidates = pd.DataFrame(described["candidates"])
    by_validity = described.get("chosen_by") == "backtest"
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
    figure.add_hline(y=0.8, line_dash="dot", line_color="#999", row=1, col=2)
    figure.update_xaxes(title_text="segments")
    eligible = int(candidates.eligible.sum())
    curves = Chart(
        "Model selection: every candidate over the number of segments",
        f"{eligible} of {len(candidates)} candidates are stable enough (>= 0.8) with no tiny segment. "
        f"The rule chose {described['reason']}.",
        _layout(figure, 440),
    )
    names = dict(zip(customers.segment, customers.segment_name, strict=False))
    order = sorted(names, key=lambda s: int(s[1:]))
    colors = {segment: PALETTE[i % len(PALETTE)] for i, segment in enumerate(order)}
    charts = [curves]
    # Above max_fit_customers only the customers the segments were learned from have a place.
    mapped = customers[customers.tsne_x.notna()] if "tsne_x" in customers.columns else customers.iloc[:0]
    if len(mapped):
        sample = mapped.sample(min(EMBEDDING_SAMPLE, len(mapped)), random_state=0)
        figure = go.Figure(
            [
                go.Scattergl(
                    x=group.tsne_x,
                    y=group.tsne_y,
                    mode="markers",
                    name=f"{segment} {names[segment]}",
                    marker={"size": 4, "color": colors[segment], "opacity": 0.7},
                    text=shareable_ids(group.customer_id),
                    hovertemplate="customer %{text}<extra>" + segment + "</extra>",
                )
                for segment, group in sample.groupby("segment", sort=False)
                if segment in colors
            ]
        )
        figure.update_xaxes(showticklabels=False, title_text="t-SNE 1")
        figure.update_yaxes(showticklabels=False, title_text="t-SNE 2")
        shown = f"a sample of {len(sample):,} of {len(customers):,}" if len(sample) < len(customers) else "all"
        overall, own = neighbours_alike(sample[["tsne_x", "tsne_y"]].to_numpy(), sample.segment.to_numpy())
        mixed = own.idxmin()
        charts.append(
            Chart(
                "Customers in a 2-D t-SNE map, coloured by learned segment",
                f"The map shows {shown} customers; {overall:.0%} of a customer's 10 nearest neighbours on "
                f"it are in the customer's own segment, least so in {mixed} {names[mixed]} ({own[mixed]:.0%}).",
                _layout(figure, 520),
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
                name=f"{segment} {names[segment]}",
                line={"color": colors[segment]},
            )
            for segment in order
            if segment in means.index
        ]
    )
    figure.add_hline(y=0, line_color="#999")
    figure.update_yaxes(title_text="mean, in standard deviations from all customers")
    spread = means[["recency_days", "frequency", "monetary", "tenure_days"]]
    widest = spread.max() - spread.min()
    charts.append(
        Chart(
            "Segment profiles (snake plot of standardised features and interests)",
            f"The segments differ most in {widest.idxmax().removesuffix('_days')} "
            f"({widest.max():.1f} standard deviations between the highest and the lowest segment).",
            _layout(figure, 440),
        )
    )
    profiles = pd.DataFrame(described["profiles"])
    figure = go.Figure(
        [
            go.Bar(
                x=profiles.segment + " " + profiles.name, y=profiles.share, name="customers", marker_color="#1f77b4"
            ),
            go.Bar(
                x=profiles.segment + " " + profiles.name,
                y=profiles.revenue_share,
                name="revenue",
                marker_color="#2ca02c",
            ),
        ]
    )
    figure.update_layout(barmode="group")
    figure.update_yaxes(tickformat=".0%")
    top = profiles.loc[profiles.revenue_share.idxmax()]
    charts.append(
        Chart(
            "Size and revenue share of each learned segment",
            f"{top['name']} ({top.segment}) is {top.share:.0%} of customers and brings "
            f"{top.revenue_share:.0%} of revenue.",
            _layout(figure, 380),
        )
    )
    table = _candidates_table(candidates, score)
    return Section("learned", "Learned segments", described["rule"].capitalize() + ".", charts, [table])


def _candidates_table(candidates: pd.DataFrame, score: str) -> Table:
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
        cells += [silhouette, f"{c.stability:.3f}", _share(c.smallest_share), "yes" if c.chosen else ""]
        rows.append(cells)
    order = "backtest validity" if with_backtest else "silhouette"
    return Table(f"Best candidates (eligible first, by {order})", columns, rows)


def backtest(manifest: dict[str, Any]) -> Section | None:
    """Show whether the segments predict: lift per segment, learned vs RFM map vs continuous scores."""
    validation = manifest.get("validation")
    if not validation:
        return None
    title = "Do the segments predict?"
    if "skipped" in validation:
        intro = (
            f"No backtest in this run: {validation['skipped']}. The learned segments were chosen by the "
            "silhouette rule instead, which says how separated they are, not what they predict."
        )
        return Section("backtest", title, intro)
    horizon = validation["horizon_days"]
    rfm, ceiling = validation["rfm"], validation["ceilings"]
    learned = validation.get("segments")
    intro = (
        f"A backtest inside the run: {validation['protocol']}. A segmentation is worth what its segments do next: "
        f"the return AUC ranks customers by their segment's share who ordered again within {horizon} days, eta² is "
        "the share of the variance of log revenue in those days that the segments explain."
    )
    comparison = Table(
        f"{validation['customers']:,} customers as of {validation['as_of'][:10]}, scored on the next {horizon} days",
        ["segmentation", "return AUC", "eta² of log revenue", "validity (± se)"],
        [
            *(
                [
                    [
                        "learned segments (this run's final segments)",
                        f"{learned['auc']:.3f}",
                        f"{learned['eta_squared']:.3f}",
                        f"{learned['validity']:.3f} ± {learned['validity_se']:.3f}",
                    ]
                ]
                if learned
                else []
            ),
            [
                "RFM map",
                f"{rfm['auc']:.3f}",
                f"{rfm['eta_squared']:.3f}",
                f"{rfm['validity']:.3f} ± {rfm['validity_se']:.3f}",
            ],
            [
                "continuous scores (a ceiling, not segments)",
                f"{ceiling['logistic_regression_auc']:.3f}",
                f"{ceiling['linear_regression_r_squared']:.3f}",
                "",
            ],
        ],
    )
    tables = [comparison]
    charts = []
    if learned:
        per_segment = pd.DataFrame(learned["per_segment"])
        names = {p["segment"]: p["name"] for p in manifest["segments"].get("profiles", [])}
        hover = [f"{s} {names.get(s, '')}".strip() for s in per_segment.segment]
        figure = make_subplots(rows=1, cols=2, subplot_titles=("ordered again", "mean revenue, times the average"))
        for col, column, color in ((1, "return_rate", "#1f77b4"), (2, "revenue_lift", "#2ca02c")):
            figure.add_trace(
                go.Bar(
                    x=per_segment.segment,
                    y=per_segment[column],
                    marker_color=color,
                    text=hover,
                    hovertemplate="%{text}: %{y}<extra></extra>",
                    textposition="none",
                ),
                1,
                col,
            )
        figure.add_hline(y=validation["returned_share"], line_dash="dot", line_color="#999", row=1, col=1)
        figure.add_hline(y=1.0, line_dash="dot", line_color="#999", row=1, col=2)
        figure.update_yaxes(tickformat=".0%", row=1, col=1)
        figure.update_layout(showlegend=False)
        best = per_segment.loc[per_segment.revenue_lift.idxmax()]
        worst = per_segment.loc[per_segment.revenue_lift.idxmin()]
        charts.append(
            Chart(
                f"What each learned segment did in the {horizon} days after {validation['as_of'][:10]}",
                f"{best.segment} {names.get(best.segment, '')}: {best.return_rate:.0%} ordered again and spent "
                f"{best.revenue_lift:.1f} times the average customer; {worst.segment} {names.get(worst.segment, '')}: "
                f"{worst.return_rate:.0%}, {worst.revenue_lift:.2f} times (dotted: the average, "
                f"{validation['returned_share']:.0%} ordered again). {learned['note'].capitalize()}.",
                _layout(figure, 420),
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
                        _share(r.return_rate),
                        _money(r.mean_revenue),
                        _money(r.median_revenue),
                        f"{r.return_lift:.2f}",
                        f"{r.revenue_lift:.2f}",
                    ]
                    for r in per_segment.itertuples()
                ],
            )
        )
    tables.append(
        Table(
            "RFM map segments in the backtest",
            ["segment", "customers then", "ordered again", "mean revenue", "lift (revenue)"],
            [
                [
                    r["segment"],
                    f"{r['customers']:,}",
                    _share(r["return_rate"]),
                    _money(r["mean_revenue"]),
                    f"{r['revenue_lift']:.2f}",
                ]
                for r in rfm["segments"]
            ],
        )
    )
    segments = manifest.get("segments", {})
    if segments.get("chosen_by") == "backtest":
        tables.insert(1, _candidates_table(pd.DataFrame(segments["candidates"]), "validity"))
        intro += f" The rule: {segments['rule']}."
    return Section("backtest", title, intro, charts, tables)


def value(manifest: dict[str, Any], segments: pd.DataFrame) -> Section | None:
    """Show what customers are worth next: calibration on the backtest, the forward check, value per segment."""
    described = manifest.get("value")
    if not described:
        return None
    title = "What are the customers worth next?"
    if "skipped" in described:
        return Section("value", title, f"No expected value in this run: {described['skipped']}.")
    horizon, fit = described["horizon_days"], described["backtest"]
    columns = described["columns"]
    candidates = {row["model"]: row for row in described["candidates"]}
    others = ", ".join(f"{name.replace('_', ' ')} {row['validity']:.3f}" for name, row in candidates.items())
    intro = (
        f"Each customer's chance of ordering again, expected orders and expected revenue in the next {horizon} days "
        f"({', '.join(columns.values())} in customers.parquet), {described['protocol']}. Validity of the candidates: "
        f"{others}; {described['chosen'].replace('_', ' ')} won."
    )
    deciles = pd.DataFrame(described["calibration"]["deciles"])
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
    figure.update_yaxes(type="log", title_text=f"mean revenue per customer in {horizon} days")
    figure.update_xaxes(title_text="decile of predicted revenue (10 = highest)", dtick=1)
    charts = [
        Chart(
            f"Predicted against actual revenue on the backtest, decile by decile (out of fold, {fit['customers']:,} "
            "customers)",
            f"Spearman {fit['spearman']:.3f} between expected and actual revenue, R² of log revenue "
            f"{fit['r_squared_log']:.3f}, AUC of the chance of ordering again {fit['auc']:.3f}; predicted "
            f"{_money(fit['predicted_revenue'])} against {_money(fit['actual_revenue'])} actual "
            f"({fit['revenue_ratio']:.0%} of it).",
            _layout(figure, 380),
        )
    ]
    forward = described["forward"]
    if "skipped" in forward:
        intro += f" No forward check: {forward['skipped']}."
    else:
        intro += (
            f" Forward check, as the model is used now: fitted as of {forward['trained_as_of'][:10]} and scored on "
            f"the {horizon} days from {forward['scored_as_of'][:10]}: Spearman {forward['spearman']:.3f}, R² of log "
            f"revenue {forward['r_squared_log']:.3f}, predicted total {forward['revenue_ratio']:.0%} of the actual "
            "(a shop's season moves the total more than the ranking)."
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
            subplot_titles=(
                f"expected revenue in the next {horizon} days",
                "backtest: predicted and actual revenue per customer",
            ),
        )
        figure.add_trace(
            go.Bar(
                x=shown.segment,
                y=shown[total],
                marker_color="#1f77b4",
                text=labels,
                textposition="none",
                hovertemplate="%{text}: %{y:,.0f}<extra></extra>",
                showlegend=False,
            ),
            1,
            1,
        )
        for column, name, color in (
            ("backtest_predicted_revenue", "predicted", "#9467bd"),
            ("backtest_mean_revenue", "actual", "#2ca02c"),
        ):
            figure.add_trace(
                go.Bar(
                    x=shown.segment,
                    y=shown[column],
                    name=name,
                    marker_color=color,
                    text=labels,
                    textposition="none",
                    hovertemplate="%{text}: %{y:,.0f}<extra></extra>",
                ),
                1,
                2,
            )
        top = shown.loc[shown[total].idxmax()]
        charts.append(
            Chart(
                f"Value per segment: the next {horizon} days, and the check on the backtest",
                f"{top.segment} {top['name']} is expected to bring {_money(top[total])} "
                f"({top[total] / shown[total].sum():.0%} of the {_money(shown[total].sum())} expected from these "
                f"segments), {_money(top[revenue])} per customer; on the backtest its customers were predicted "
                f"{_money(top.backtest_predicted_revenue)} each and spent {_money(top.backtest_mean_revenue)}.",
                _layout(figure, 420),
            )
        )
    table = Table(
        f"Expected value per segment in the next {horizon} days",
        [
            "segment",
            "customers",
            "ordering again",
            "orders per customer",
            "revenue per customer",
            "revenue in total",
            "backtest: predicted",
            "backtest: actual",
        ],
        [
            [
                f"{r.segment} {r.name}" if r.segment != r.name else r.name,
                f"{r.customers:,}",
                _share(getattr(r, columns["p_order_again"])),
                f"{getattr(r, columns['expected_orders']):.2f}",
                _money(getattr(r, revenue)),
                _money(getattr(r, total)),
                "" if pd.isna(r.backtest_predicted_revenue) else _money(r.backtest_predicted_revenue),
                "" if pd.isna(r.backtest_mean_revenue) else _money(r.backtest_mean_revenue),
            ]
            for r in segments.itertuples()
        ],
    )
    return Section("value", title, intro, charts, [table])


def _stacked(sizes: pd.Series) -> list[float]:
    """Centre of each node when nodes are stacked top to bottom in proportion to their sizes (0 to 1)."""
    shares = sizes.to_numpy(dtype=float) / sizes.sum()
    return list(np.clip(np.cumsum(shares) - shares / 2, 0.001, 0.999))


def _faded(color: str) -> str:
    """Return a #rrggbb colour as rgba at 35% opacity, for Sankey links."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.35)"


def movement(manifest: dict[str, Any]) -> Section | None:
    """Show who moved between segments from T - H to T: a Sankey per segmentation and its sentences."""
    described = manifest.get("migration")
    if not described:
        return None
    title = "Who moved where?"
    if "skipped" in described:
        return Section("movement", title, f"No segment movement in this run: {described['skipped']}.")
    charts, tables = [], []
    for kind, label in (("learned", "learned segments"), ("rfm", "RFM segments")):
        if kind not in described:
            continue
        summary = described[kind]
        flows = pd.DataFrame(summary["flows"])
        names = summary["names"]
        named = {s: f"{s} {names[s]}" if s in names else s for s in set(flows.from_segment) | set(flows.to_segment)}
        # Best segment on top: by what its customers spent between the two dates.
        worth = summary["worth"]
        sources = sorted(flows.from_segment.unique(), key=lambda s: (s == NEW, -worth.get(s, -1), s))
        targets = sorted(flows.to_segment.unique(), key=lambda s: (s == GONE, -worth.get(s, -1), s))
        colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(sources) | set(targets) - {NEW, GONE}))}
        colors.update({NEW: "#c7c7c7", GONE: "#c7c7c7"})
        figure = go.Figure(
            go.Sankey(
                arrangement="fixed",
                node={
                    "label": [f"{named[s]} · {summary['from_date']}" for s in sources]
                    + [f"{named[s]} · {summary['to_date']}" for s in targets],
                    "color": [colors[s] for s in (*sources, *targets)],
                    # In segment order top to bottom on both sides, each as tall as its customers.
                    "x": [0.001] * len(sources) + [0.999] * len(targets),
                    "y": _stacked(flows.groupby("from_segment").customers.sum()[sources])
                    + _stacked(flows.groupby("to_segment").customers.sum()[targets]),
                    "pad": 10,
                    "thickness": 14,
                },
                link={
                    "source": [sources.index(s) for s in flows.from_segment],
                    "target": [len(sources) + targets.index(t) for t in flows.to_segment],
                    "value": flows.customers,
                    "color": [_faded(colors[s]) for s in flows.from_segment],
                    "customdata": np.stack([flows.revenue_before, flows.revenue_between], axis=1),
                    "hovertemplate": "%{value:,} customers<br>revenue in the 90 days before: %{customdata[0]:,.0f}"
                    "<br>revenue since: %{customdata[1]:,.0f}<extra></extra>",
                },
            )
        )
        charts.append(
            Chart(
                f"The {label} as of {summary['from_date']} and as of {summary['to_date']}",
                " ".join(summary["sentences"]),
                _layout(figure, 520),
            )
        )
    if "learned" in described:
        summary = described["learned"]
        table = flow_matrix(pd.DataFrame(summary["flows"]))
        tables.append(
            Table(
                f"Learned segments: customers from each segment as of {summary['from_date']} (rows) to each as of "
                f"{summary['to_date']} (columns)",
                ["from \\ to", *table.columns],
                [[index, *(f"{v:,}" for v in row)] for index, row in zip(table.index, table.to_numpy(), strict=True)],
            )
        )
    intro = (
        f"The final segmentations applied to the customers as of T - {described['horizon_days']} days and as of T, "
        "the same model at both dates (custseg compare gives this for any two files written by custseg assign). "
        "A move is down when the segment moved to spent less per customer in between."
    )
    return Section("movement", title, intro, charts, tables)


def new_customers(manifest: dict[str, Any], names: dict[str, dict[str, str]]) -> Section | None:
    """Show the early-prediction hold-out: results per target and number of orders, confusion matrices."""
    early = manifest.get("early", {})
    results = [row for row in early.get("results", []) if "skipped" not in row and "degenerate" not in row]
    degenerate = [row for row in early.get("results", []) if "degenerate" in row]
    if not results and not degenerate:
        return None
    table = Table(
        f"Hold-out results: {early['eligible_customers']:,} eligible customers, tested on those who joined "
        f"from {str(early['test_joined_from'])[:10]}",
        [
            "target",
            "first orders",
            "test customers",
            "model",
            "macro-F1",
            "majority class",
            "first orders as is",
            "accuracy",
        ],
        [
            [
                row["target"],
                str(row["n_orders"]),
                f"{row['test_customers']:,}",
                row["chosen"].replace("_", " "),
                f"{row['model']['macro_f1']:.3f}",
                f"{row['majority']['macro_f1']:.3f}",
                f"{row['first_orders_as_is']['macro_f1']:.3f}",
                _share(row["model"]["accuracy"]),
            ]
            for row in results
        ],
    )
    charts = []
    for target in ("segment", "category"):
        rows = [row for row in results if row["target"] == target]
        if not rows:
            continue
        row = rows[0]
        matrix = np.array(row["confusion_matrix"]["rows_true_columns_predicted"], dtype=float)
        label_names = [
            f"{label} {names[target].get(label, '')}".strip()[:32] for label in row["confusion_matrix"]["labels"]
        ]
        totals = matrix.sum(axis=1, keepdims=True)
        figure = go.Figure(
            go.Heatmap(
                z=np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0) * 100,
                x=label_names,
                y=label_names,
                text=matrix.astype(int),
                texttemplate="%{text}",
                colorscale="Purples",
                colorbar={"title": "% of row"},
                hovertemplate="truth %{y}<br>predicted %{x}<br>%{text} customers<extra></extra>",
            )
        )
        figure.update_yaxes(autorange="reversed", title_text="what they became")
        figure.update_xaxes(title_text="predicted from the first order")
        gain = row["model"]["macro_f1"] - row["majority"]["macro_f1"]
        charts.append(
            Chart(
                f"Predicting the {target} from the first order: confusion matrix on unseen customers",
                f"On {row['test_customers']:,} customers the model never saw, macro-F1 is "
                f"{row['model']['macro_f1']:.3f} "
                f"({gain:+.3f} over always predicting the most common {target}; accuracy "
                f"{row['model']['accuracy']:.0%}).",
                _layout(figure, 420),
            )
        )
    intro = early["protocol"][0].upper() + early["protocol"][1:] + "."
    for row in degenerate:
        intro += f" {row['target'].capitalize()} after {row['n_orders']} first order(s): {row['degenerate']}."
    return Section("early", "New customers", intro, charts, [table] if results else [])


def actions(manifest: dict[str, Any], segments: pd.DataFrame) -> Section:
    """List segment by segment: size, revenue share, description, recommended action."""
    learned = segments[segments.kind == "learned"]
    shown = learned if len(learned) else segments[segments.kind == "rfm"]
    table = Table(
        "What to do, segment by segment",
        ["segment", "customers", "share", "revenue", "description", "recommended action"],
        [
            [
                f"{row.segment} {row.name}" if row.segment != row.name else row.name,
                f"{row.customers:,}",
                _share(row.share),
                _share(row.revenue_share),
                row.description,
                row.action,
            ]
            for row in shown.itertuples()
        ],
    )
    kind = "learned" if len(learned) else "RFM"
    return Section(
        "actions", "Actions", f"The {kind} segments with a description and a recommended action each.", [], [table]
    )


# -- assembling -------------------------------------------------------------------------------


def report_sections(backend: ibis.BaseBackend, manifest: dict[str, Any]) -> list[Section]:
    """Build every section the run's stages allow, from its tables and its manifest."""
    most = manifest["settings"]["engine"].get("max_driver_customers", sys.maxsize)
    customers, count = rows_at_most(backend.table("customers"), most, manifest["settings"]["seed"])
    sections = [data_quality(manifest), exploration(explore(backend.table("lines"))), product_categories(manifest)]
    sections.append(rfm(customers, manifest))
    if len(customers) < count:
        sections[-1].intro += f" Distributions from a random sample of {len(customers):,} of the {count:,} customers."
    labels = {c["category"]: c["label"] for c in manifest.get("products", {}).get("categories", [])}
    if "segment" in customers.columns:
        sections.append(learned_segments(customers, manifest, labels))
    sections.append(backtest(manifest))
    segments = backend.table("segments").execute() if "segments" in backend.list_tables() else None
    if segments is not None:
        sections.append(value(manifest, segments))
    sections.append(movement(manifest))
    segment_names = {p["segment"]: p["name"] for p in manifest.get("segments", {}).get("profiles", [])}
    sections.append(new_customers(manifest, {"segment": segment_names, "category": labels}))
    if segments is not None:
        sections.append(actions(manifest, segments))
    return [section for section in sections if section is not None]


def render(manifest: dict[str, Any], sections: list[Section]) -> str:
    """Render the sections into one HTML page with plotly.js embedded once."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from plotly.offline import get_plotlyjs

    environment = Environment(loader=PackageLoader("custseg", "templates"), autoescape=select_autoescape())
    template = environment.get_template("report.html.j2")
    config = {"displaylogo": False, "responsive": True}
    charts = []
    for section in sections:
        for number, chart in enumerate(section.charts):
            chart_id = f"chart-{section.key}-{number}"
            charts.append(chart_id)
            chart.html = chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=config)
    return template.render(
        manifest=manifest,
        sections=sections,
        chart_count=len(charts),
        plotlyjs=get_plotlyjs(),
        version=__version__,
        input_name=Path(manifest["input"]["path"]).name,
    )


def write_report(out_dir: Path, backend: ibis.BaseBackend, manifest: dict[str, Any]) -> Path:
    """Write ``report.html`` into ``out_dir`` from the run's tables and manifest."""
    target = Path(out_dir) / REPORT_FILE
    target.write_text(render(manifest, report_sections(backend, manifest)), encoding="utf-8")
    return target


def build_report(out_dir: str | Path) -> Path:
    """Rebuild ``report.html`` of a finished output folder without recomputing anything.

    Raises
    ------
    InputFileError
        If the folder holds no finished custseg run.
    """
    manifest, sections = run_sections(out_dir)
    target = Path(out_dir) / REPORT_FILE
    target.write_text(render(manifest, sections), encoding="utf-8")
    return target


def run_sections(out_dir: str | Path) -> tuple[dict[str, Any], list[Section]]:
    """Build the report's sections of a finished output folder: its manifest and the sections.

    Raises
    ------
    InputFileError
        If the folder holds no finished custseg run.
    """
    out_dir = Path(out_dir)
    manifest_path, database, tables = out_dir / MANIFEST_FILE, out_dir / DATABASE_FILE, stored_tables(out_dir)
    if not manifest_path.exists() or not (database.exists() or tables):
        raise InputFileError(
            f"{out_dir}: no {MANIFEST_FILE} and {DATABASE_FILE}; give the output folder of custseg run"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if "customers" not in manifest or "course" in manifest:
        raise InputFileError(f"{out_dir}: this run has no customer table (stopped early, or --recipe course)")
    if database.exists():
        backend = ibis.duckdb.connect(database, read_only=True)
    else:
        # A Spark run's tables are Parquet datasets; DuckDB reads them in place.
        backend = ibis.duckdb.connect()
        for name, folder in tables.items():
            backend.read_parquet(folder / "*.parquet", table_name=name)
    try:
        return manifest, report_sections(backend, manifest)
    finally:
        backend.disconnect()
