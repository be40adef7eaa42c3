"""Exploration: when, where and what people buy, and whether they come back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from custseg.eda import BASKET_LINES_CAP, explore, month_label
from custseg.report.charts import Chart, Section, layout, wrap
from custseg.report.data import ReportData

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def exploration(data: ReportData) -> Section:
    """Show revenue over time, when people order, where, what, baskets, new customers and cohorts."""
    tables = explore(data.lines)
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
        f"Revenue peaks in {month_label(int(peak.month))} at {data.money(peak.revenue)}, "
        f"{peak.revenue / monthly.revenue.median():.1f} times the median month"
    )
    last_day = facts["last_ordered_at"]
    if (last_day + pd.Timedelta(days=1)).month == last_day.month:
        reading += f"; {month_label(int(monthly.month.iloc[-1]))} is cut short: the data ends on {last_day:%d %B}."
    else:
        reading += "."
    charts.append(Chart("Revenue and orders per month", reading, layout(figure)))

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
            texttemplate="%{z:,}",
            textfont={"size": 10},
        )
    )
    figure.update_yaxes(autorange="reversed")
    busiest = np.unravel_index(grid.to_numpy().argmax(), grid.shape)
    quiet_days = [WEEKDAYS[d] for d in range(7) if grid.iloc[d].sum() == 0]
    reading = f"The busiest hour is {WEEKDAYS[busiest[0]]} {grid.columns[busiest[1]]}:00"
    reading += f"; no orders at all on {', '.join(quiet_days)}." if quiet_days else "."
    charts.append(Chart("Orders by weekday and hour", reading, layout(figure, 360)))

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
            layout(figure, 440),
        )
    )

    products = tables.top_products.iloc[::-1].copy()
    total_revenue = facts["total_revenue"]
    products["name"] = products.description.fillna(products.product_id).fillna("unknown").astype(str)
    figure = go.Figure(
        go.Bar(
            x=products.revenue,
            y=[wrap(name, 40) for name in products.name],
            orientation="h",
            hovertemplate="%{y}: %{x:,.0f}<extra></extra>",
            marker_color="#9467bd",
        )
    )
    figure.update_xaxes(title_text="net revenue")
    charts.append(
        Chart(
            f"Top {len(products)} products by revenue",
            f"The {len(products)} best sellers bring {products.revenue.sum() / total_revenue:.1%} of revenue; the "
            f"first, {products.name.iloc[-1]}, alone {products.revenue.iloc[-1] / total_revenue:.1%}.",
            layout(figure, 480),
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
            f"The median basket is worth {data.money(facts['median_basket_value'])} with "
            f"{facts['median_basket_lines']:.0f} lines; the top 10% of baskets are worth over "
            f"{data.money(facts['p90_basket_value'])}.",
            layout(figure, 360),
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
            layout(figure),
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
            texttemplate="%{z:.0f}",
            textfont={"size": 11},
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
    charts.append(Chart("Monthly cohorts: share still buying", reading, layout(figure, 460)))
    intro = "What the kept purchase lines show: when, where and what people buy, and whether they come back."
    return Section("exploration", "Exploration", intro, charts)
