"""Segment movement: who moved between segments since last time, and how much revenue went with them.

A segmentation applied at two dates says how many Champions became At Risk this quarter, how
many new customers arrived and where they landed. `migration` counts the customers and their
revenue from each segment at the first date to each at the second, in the engine, with new
customers and customers gone as rows and columns of their own; `migration_summary` turns the flows
into the matrix's margins and the sentences a marketer reads.
"""

from __future__ import annotations

import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from custseg.record import Migration

NEW = "(new)"
"""The row of customers who had no order at the first date."""
GONE = "(gone)"
"""The column of customers who are in the first table but not in the second."""
NO_SEGMENT = "(no segment)"
"""A customer present at a date without a segment (no learned segmentation, an unmapped RFM code)."""
MOVE_COLUMNS = ("customer_id", "monetary", "revenue_90d")
"""Besides the segment column, what `migration` reads of each date's customers."""


def migration(before: ir.Table, after: ir.Table, column: str) -> ir.Table:
    """Count customers and revenue from each segment at the first date to each at the second.

    Parameters
    ----------
    before, after : ibis.Table
        Customers at the two dates: customer_id, ``column``, monetary and revenue_90d.
    column : str
        The segment column (``segment`` or ``rfm_segment``).

    Returns
    -------
    ibis.Table of shape (n_flows, 5)
        from_segment (`NEW` for customers only in ``after``), to_segment (`GONE` for customers only
        in ``before``), customers, revenue_before (their revenue in the 90 days before the first
        date) and revenue_between (their revenue from the first date to the second: the growth of
        their total net revenue). Sorted by from_segment, to_segment.
    """
    first = before.select(
        "customer_id",
        from_segment=before[column].cast(dt.string).fill_null(NO_SEGMENT),
        monetary_before=before.monetary,
        revenue_before=before.revenue_90d,
    )
    second = after.select(
        after.customer_id.name("customer_id_after"),
        to_segment=after[column].cast(dt.string).fill_null(NO_SEGMENT),
        monetary_after=after.monetary,
    )
    joined = first.outer_join(second, first.customer_id == second.customer_id_after)
    flows = joined.select(
        from_segment=ibis.cases((joined.customer_id.isnull(), NEW), else_=joined.from_segment),
        to_segment=ibis.cases((joined.customer_id_after.isnull(), GONE), else_=joined.to_segment),
        revenue_before=joined.revenue_before.fill_null(0.0),
        revenue_between=ibis.cases(
            (joined.customer_id_after.isnull(), 0.0),
            else_=joined.monetary_after - joined.monetary_before.fill_null(0.0),
        ),
    )
    return (
        flows.group_by("from_segment", "to_segment")
        .aggregate(
            customers=flows.count().cast(dt.int64),
            revenue_before=flows.revenue_before.sum().cast(dt.float64).round(2),
            revenue_between=flows.revenue_between.sum().cast(dt.float64).round(2),
        )
        .order_by("from_segment", "to_segment")
    )


def matrix(flows: pd.DataFrame, value: str = "customers") -> pd.DataFrame:
    """Lay flows out as a matrix: a row per segment at the first date, a column per segment at the second.

    Returns
    -------
    DataFrame of shape (n_from, n_to)
        ``value`` summed per cell (0 where no customer moved that way); `NEW` is the last row and
        `GONE` the last column.
    """
    table = flows.pivot_table(index="from_segment", columns="to_segment", values=value, aggfunc="sum", fill_value=0)
    rows = [s for s in table.index if s != NEW] + ([NEW] if NEW in table.index else [])
    columns = [s for s in table.columns if s != GONE] + ([GONE] if GONE in table.columns else [])
    return table.loc[rows, columns]


def _label(segment: str, names: dict[str, str]) -> str:
    name = names.get(segment)
    return f"{segment} {name}" if name and name != segment else segment


def migration_summary(
    flows: pd.DataFrame, names: dict[str, str], first: datetime.date, second: datetime.date
) -> Migration:
    """Describe the flows: sizes at both dates, who stayed, the largest moves down and up, the new customers.

    A move is down when the segment moved to was worth less than the one left: its customers of
    the first date spent less per head between the two dates (revenue_between / customers, read
    from the flows themselves).

    Parameters
    ----------
    flows : DataFrame
        `migration`'s table.
    names : dict
        Segment id -> display name (empty for RFM segments, whose ids are their names).
    first, second : date
        The two dates.

    Returns
    -------
    Migration
        The flows (records), sizes at both dates, each segment's worth (revenue between the dates
        per customer of it at the first date), the customers who stayed, and the sentences.
    """
    existing = flows[(flows.from_segment != NEW) & (flows.to_segment != GONE)]
    before = flows[flows.from_segment != NEW].groupby("from_segment")
    sizes_before = before.customers.sum()
    worth = (before.revenue_between.sum() / sizes_before).round(2)
    sizes_after = flows[flows.to_segment != GONE].groupby("to_segment").customers.sum()
    stayed = int(existing[existing.from_segment == existing.to_segment].customers.sum())
    sentences = []
    if len(sizes_before):
        sentences.append(
            f"Of the {int(sizes_before.sum()):,} customers as of {first}, {stayed:,} "
            f"({stayed / sizes_before.sum():.0%}) were in the same segment as of {second}."
        )
    moved = existing[existing.from_segment != existing.to_segment]
    # As floats: when nobody moved, the empty maps would keep the segments' text type.
    gain = moved.to_segment.map(worth).astype(float) - moved.from_segment.map(worth).astype(float)
    for direction, chosen, order in (
        ("down", moved[gain < 0], "revenue_before"),
        ("up", moved[gain > 0], "revenue_between"),
    ):
        if chosen.empty:
            continue
        top = chosen.sort_values([order, "customers", "from_segment"], ascending=[False, False, True]).iloc[0]
        share = top.customers / sizes_before[top.from_segment]
        sentences.append(
            f"The largest move {direction}: {int(top.customers):,} {_label(top.from_segment, names)} ({share:.0%}) "
            f"moved to {_label(top.to_segment, names)}, with {top.revenue_before:,.0f} of revenue in the 90 days "
            f"before {first} and {top.revenue_between:,.0f} since."
        )
    new = flows[flows.from_segment == NEW]
    if len(new):
        landed = new.sort_values(["customers", "to_segment"], ascending=[False, True]).iloc[0]
        sentences.append(
            f"{int(new.customers.sum()):,} new customers arrived; the most ({int(landed.customers):,}) are in "
            f"{_label(landed.to_segment, names)}."
        )
    gone = flows[flows.to_segment == GONE]
    if len(gone):
        sentences.append(f"{int(gone.customers.sum()):,} customers as of {first} are not in the table as of {second}.")
    return Migration(
        from_date=first,
        to_date=second,
        names=names,
        flows=flows.to_dict(orient="records"),
        sizes_before={k: int(v) for k, v in sizes_before.items()},
        sizes_after={k: int(v) for k, v in sizes_after.items()},
        worth={k: float(v) for k, v in worth.items()},
        stayed=stayed,
        sentences=sentences,
    )
