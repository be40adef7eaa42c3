"""What the shop's purchase lines look like: the small tables of the exploratory analysis.

An analyst's first look at a log (revenue by month, when and where people order, what sells, basket
value and size, new against returning customers, monthly cohorts) needs a few hundred numbers, not
the orders. Each table here is aggregated by the engine (DuckDB or Spark), so a large log never comes
to this process one row per order; the report only draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from custseg.schema import exact_sum

TOP_PRODUCTS = 15
"""How many best-selling products the exploration lists."""
BASKET_LINES_CAP = 100
"""Baskets of this many lines or more are counted together."""
BASKET_VALUE_DECIMALS = 3
"""Basket values are counted per log10 value rounded to this many decimals (0.7% apart at most)."""


def month_index(value: ir.TimestampValue) -> ir.IntegerValue:
    """Months since year 0 (year * 12 + month - 1): consecutive months are consecutive numbers."""
    return value.year() * 12 + value.month() - 1


def month_label(index: int) -> str:
    """``2011-03`` for a `month_index`."""
    return f"{index // 12}-{index % 12 + 1:02d}"


def order_table(lines: ir.Table) -> ir.Table:
    """One row per order: its customer, first timestamp, month, gross value, net revenue, lines and country."""
    per_order = lines.group_by("customer_id", "invoice_id").aggregate(
        ordered_at=lines.invoiced_at.min(),
        value=exact_sum(lines.quantity * lines.unit_price),
        net=exact_sum(lines.net_revenue),
        size=lines.count(),
        country=lines.country.min(),
    )
    return per_order.mutate(country=per_order.country.fill_null("unknown"), month=month_index(per_order.ordered_at))


def exact_quantiles(table: ir.Table, column: str, quantiles: tuple[float, ...]) -> dict[float, float]:
    """Quantiles of a column computed in the engine, exactly, with numpy's linear interpolation.

    Engines differ in their quantile functions (Spark's are approximate); ranking the values gives
    the same answer on every engine.
    """
    ranked = table.select(value=table[column]).mutate(rank=ibis.row_number().over(order_by=table[column]))
    count = int(ranked.count().execute())
    wanted = {}
    for q in quantiles:
        position = q * (count - 1)
        wanted[q] = (int(position), min(int(position) + 1, count - 1), position - int(position))
    ranks = sorted({r for low, high, _ in wanted.values() for r in (low, high)})
    values = ranked.filter(ranked["rank"].isin(ranks)).execute().set_index("rank").value
    return {q: float(values[low] + (values[high] - values[low]) * share) for q, (low, high, share) in wanted.items()}


@dataclass(frozen=True)
class Exploration:
    """The exploration's tables (each at most a few thousand rows).

    Attributes
    ----------
    monthly : DataFrame
        month (`month_index`), revenue (net), orders; by month.
    weekday_hour : DataFrame
        weekday (0 = Monday), hour, orders of each (weekday, hour) with orders.
    countries : DataFrame
        country, revenue, orders, customers; by revenue, highest first.
    top_products : DataFrame
        product_id, description, revenue, units of the `TOP_PRODUCTS` best sellers, best first.
    basket_values : DataFrame
        log_value (log10 of a positive basket value, rounded to `BASKET_VALUE_DECIMALS`), orders.
    basket_sizes : DataFrame
        lines (capped at `BASKET_LINES_CAP`), orders.
    new_returning : DataFrame
        month, new and returning: customers buying that month for the first time, or again.
    cohorts : DataFrame
        first_month, offset (months after it), customers of that cohort buying in that month.
    summary : dict
        customers, total_revenue, last_ordered_at, median_basket_value, p90_basket_value,
        median_basket_lines.
    """

    monthly: pd.DataFrame
    weekday_hour: pd.DataFrame
    countries: pd.DataFrame
    top_products: pd.DataFrame
    basket_values: pd.DataFrame
    basket_sizes: pd.DataFrame
    new_returning: pd.DataFrame
    cohorts: pd.DataFrame
    summary: dict[str, Any]


def explore(lines: ir.Table) -> Exploration:
    """Aggregate the kept purchase lines into the exploration's tables.

    Parameters
    ----------
    lines : ibis.Table
        Kept purchase lines (`custseg.clean`), on any engine.
    """
    # Computed once into the engine: every table below starts from the orders.
    orders = order_table(lines).cache()
    monthly = orders.group_by("month").aggregate(revenue=exact_sum(orders.net), orders=orders.count()).order_by("month")
    when = orders.mutate(weekday=orders.ordered_at.day_of_week.index(), hour=orders.ordered_at.hour())
    weekday_hour = when.group_by("weekday", "hour").aggregate(orders=when.count()).order_by("weekday", "hour")
    countries = orders.group_by("country").aggregate(
        revenue=exact_sum(orders.net), orders=orders.count(), customers=orders.customer_id.nunique()
    )
    products = lines.group_by("product_id").aggregate(
        description=lines.description.min(),
        revenue=exact_sum(lines.net_revenue),
        units=exact_sum(lines.net_quantity),
    )
    positive = orders.filter(orders.value > 0)
    values = positive.mutate(log_value=positive.value.log10().round(BASKET_VALUE_DECIMALS))
    sizes = orders.mutate(lines=ibis.least(orders["size"], BASKET_LINES_CAP))
    active = orders.select("customer_id", "month").distinct()
    first = active.group_by("customer_id").aggregate(first_month=active.month.min())
    joined = active.inner_join(first, "customer_id")
    is_new = (joined.month == joined.first_month).cast("int64")
    new_returning = joined.group_by("month").aggregate(new=is_new.sum(), returning=(1 - is_new).sum())
    cohorts = joined.mutate(offset=joined.month - joined.first_month)
    cohorts = cohorts.group_by("first_month", "offset").aggregate(customers=cohorts.count())
    totals = orders.aggregate(
        customers=orders.customer_id.nunique(), total_revenue=exact_sum(orders.net), last=orders.ordered_at.max()
    ).execute()
    quantiles = exact_quantiles(orders, "value", (0.5, 0.9))
    return Exploration(
        monthly=monthly.execute(),
        weekday_hour=weekday_hour.execute(),
        countries=countries.order_by(ibis.desc("revenue"), "country").execute(),
        top_products=products.order_by(ibis.desc("revenue"), "product_id").limit(TOP_PRODUCTS).execute(),
        basket_values=values.group_by("log_value").aggregate(orders=values.count()).order_by("log_value").execute(),
        basket_sizes=sizes.group_by("lines").aggregate(orders=sizes.count()).order_by("lines").execute(),
        new_returning=new_returning.order_by("month").execute(),
        cohorts=cohorts.order_by("first_month", "offset").execute(),
        summary={
            "customers": int(totals.customers.iloc[0]),
            "total_revenue": float(totals.total_revenue.iloc[0]),
            "last_ordered_at": pd.Timestamp(totals["last"].iloc[0]),
            "median_basket_value": quantiles[0.5],
            "p90_basket_value": quantiles[0.9],
            "median_basket_lines": exact_quantiles(orders, "size", (0.5,))[0.5],
        },
    )
