"""What a new customer's first orders show, and what they have become a horizon later.

The early prediction learns from customers described right after their first N orders (as placed,
before any later return) to what they are H days after their first order. This module builds both
descriptions as Ibis expressions, with the same customer features as a run (`custseg.features`),
so that they run in the engine on any number of customers.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from custseg.features import customer_table
from custseg.profile import segment_ids

if TYPE_CHECKING:
    from custseg.cluster import Segmentation

KEY_SEPARATOR = "\x1f"
"""Between a customer id and a number of orders in `early_features`' key: a character no id holds."""


def numbered_orders(lines: ir.Table) -> ir.Table:
    """Each customer's orders numbered from 1 in the order they were placed.

    Returns
    -------
    ibis.Table of shape (n_orders, 4)
        customer_id, invoice_id, ordered_at (the order's first timestamp) and order_number
        (ties in time: by invoice id).
    """
    per_order = lines.group_by("customer_id", "invoice_id").aggregate(ordered_at=lines.invoiced_at.min())
    number = ibis.row_number().over(
        group_by=per_order.customer_id, order_by=[per_order.ordered_at, per_order.invoice_id]
    )
    return per_order.mutate(order_number=number + 1)


def as_placed(lines: ir.Table) -> ir.Table:
    """Return the lines as they were when bought: returns made later are not netted yet."""
    gross = lines.quantity * lines.unit_price
    return lines.mutate(returned_quantity=ibis.literal(0.0), net_quantity=lines.quantity, net_revenue=gross)


def early_features(lines: ir.Table, products: ir.Table, categories: list[str], n_orders: int | ir.Table) -> ir.Table:
    """Describe each customer right after their ``n_orders``-th order (customers with that many).

    Parameters
    ----------
    lines : ibis.Table
        Kept purchase lines; only the first ``n_orders`` orders of each customer are read, as placed.
    products : ibis.Table
        product_id -> category.
    categories : list of str
        Every category id, in order.
    n_orders : int or ibis.Table
        How many first orders are known: one number for every customer, or a table
        (customer_id, n_orders) of the numbers wanted for each customer, one or more (only its
        customers are described).

    Returns
    -------
    ibis.Table of shape (n_rows, 15 + n_categories + 2 + 1)
        One row per customer and number of orders: `custseg.features.customer_features` and
        `custseg.features.customer_interests` of those orders, as of one second after the last of
        them (so recency_days is 0, frequency is ``n_orders`` and tenure_days the whole days from the
        first to the last of them), and n_orders.
    """
    numbered = numbered_orders(lines)
    if not isinstance(n_orders, ir.Table):
        n_orders = numbered.select("customer_id").distinct().mutate(n_orders=ibis.literal(n_orders, dt.int64))
    wanted = n_orders.select("customer_id", wanted="n_orders")
    # Every (customer, number of orders) is described as a customer of its own, under a key of both:
    # one query for all the numbers wanted.
    enough = numbered.inner_join(wanted, "customer_id").filter(lambda t: t.order_number == t.wanted)
    enough = enough.select(
        "customer_id", "wanted", key=enough.customer_id.concat(KEY_SEPARATOR, enough.wanted.cast(dt.string))
    )
    known = numbered.inner_join(enough, "customer_id").filter(lambda t: t.order_number <= t.wanted)
    placed = (
        as_placed(lines)
        .inner_join(known.select("customer_id", "invoice_id", "key"), ["customer_id", "invoice_id"])
        .mutate(customer_id=lambda t: t.key)
        .drop("key")
    )
    cutoff = placed.group_by("customer_id").aggregate(as_of=placed.invoiced_at.max() + ibis.interval(seconds=1))
    described = customer_table(placed, products, categories, cutoff).rename(key="customer_id")
    keys = enough.select("key", "customer_id", n_orders="wanted")
    return keys.inner_join(described, "key").drop("key")


def first_orders(
    lines: ir.Table,
    products: ir.Table,
    categories: list[str],
    max_orders: int,
    segmentation: Segmentation | None,
) -> dict[int, pd.DataFrame]:
    """Compute `early_features` for 1 to ``max_orders`` first orders, in one query.

    Returns
    -------
    dict of int to DataFrame
        For each number of orders, the customers with that many, without the n_orders column; with
        a segmentation, column ``segment_now`` holds the segment it gives those orders as they are.
    """
    counted = lines.group_by("customer_id").aggregate(orders=lines.invoice_id.nunique())
    wanted = ibis.union(
        *(
            counted.filter(counted.orders >= n).select("customer_id", n_orders=ibis.literal(n, dt.int64))
            for n in range(1, max_orders + 1)
        )
    )
    described = early_features(lines, products, categories, wanted).order_by(["n_orders", "customer_id"]).execute()
    early = {}
    for n_orders in range(1, max_orders + 1):
        frame = described[described.n_orders == n_orders].drop(columns="n_orders").reset_index(drop=True)
        if segmentation is not None and len(frame):
            frame["segment_now"] = segment_ids(segmentation.predict(frame))
        early[n_orders] = frame
    return early


def old_enough(lines: ir.Table, horizon_days: int, data_end: datetime.datetime) -> ir.Table:
    """Return the customers (customer_id) whose first order is at least ``horizon_days`` before ``data_end``.

    Those `horizon_features` can describe (less those with no order of positive net revenue by
    then), found in one cheap pass so that a sample of them is drawn before they are described.
    """
    first = lines.group_by("customer_id").aggregate(joined_at=lines.invoiced_at.min())
    return first.filter(first.joined_at + ibis.interval(days=horizon_days) <= ibis.timestamp(data_end)).select(
        "customer_id"
    )


def horizon_features(
    lines: ir.Table, products: ir.Table, categories: list[str], horizon_days: int, data_end: datetime.datetime
) -> ir.Table:
    """Each customer's features and interests ``horizon_days`` after their first order.

    Only customers whose first order is at least ``horizon_days`` before ``data_end`` are
    described, and only those with an order of positive net revenue by then.

    Returns
    -------
    ibis.Table of shape (n_customers, 16 + n_categories + 2)
        joined_at (the first order's time), then the columns of `custseg.features.customer_features`
        and `custseg.features.customer_interests` as of joined_at + ``horizon_days``.
    """
    numbered = numbered_orders(lines)
    first = numbered.filter(numbered.order_number == 1)
    horizon = first.ordered_at + ibis.interval(days=horizon_days)
    cutoff = first.filter(horizon <= ibis.timestamp(data_end)).select(
        "customer_id", joined_at="ordered_at", as_of=horizon
    )
    features = customer_table(lines, products, categories, cutoff)
    return cutoff.select("customer_id", "joined_at").inner_join(features, "customer_id")


def early_rows(
    lines: ir.Table, products: ir.Table, categories: list[str], customers: ir.Table, usable: list[int]
) -> ir.Table:
    """Describe ``customers`` after the most first orders a model uses, each with its own number.

    Parameters
    ----------
    lines, products, categories
        As for `early_features`.
    customers : ibis.Table
        With customer_id: whom to describe.
    usable : list of int
        Numbers of first orders the models use (`usable_orders`).

    Returns
    -------
    ibis.Table of shape (n_customers, n_columns)
        `early_features` with n_orders, the largest of ``usable`` that is at most the customer's
        number of orders (customers with fewer orders than any are left out).
    """
    mine = lines.semi_join(customers, "customer_id")
    counted = mine.group_by("customer_id").aggregate(orders=mine.invoice_id.nunique())
    largest = ibis.cases(*((counted.orders >= n, n) for n in sorted(usable, reverse=True)), else_=None)
    wanted = counted.select("customer_id", n_orders=largest.cast(dt.int64))
    wanted = wanted.filter(wanted.n_orders.notnull())
    return early_features(mine, products, categories, wanted)
