"""Order-level fields: what an order's payment status, refund and currency mean for its lines.

Shop platforms export one row per line item and write an order's own fields (its customer's email,
payment status, refunded amount, totals, billing address) once, on the order's first row
(Shopify's orders export). This module gives every line its order's values, and turns the order's
refund into the share of each line that was refunded. The rules are the README's "Your shop's data".
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from custseg.presets import REFUNDED_STATUSES
from custseg.schema import blank_to_null

ORDER_COLUMNS = ("order_status", "refunded_amount", "order_total", "currency")
"""Canonical columns that describe a whole order; an order's value is its first non-blank one, by row."""


def order_keys(raw: ir.Table, invoice_column: str, row_id: str) -> ir.Table:
    """Add ``__custseg_order``: the row's order, a blank order id belonging to the order above it.

    Returns
    -------
    ibis.Table of shape (n_rows, n_columns + 1)
    """
    invoice = blank_to_null(raw[invoice_column].cast(dt.string))
    if int(raw.filter(invoice.isnull()).count().execute()) == 0:
        return raw.mutate(__custseg_order=invoice)
    # Only a file with blank order ids pays for this window over the whole file, in row order.
    anchor = ibis.cases((invoice.notnull(), raw[row_id]), else_=ibis.null(dt.int64)).max()
    anchored = raw.mutate(__custseg_anchor=anchor.over(ibis.window(order_by=raw[row_id], rows=(None, 0))))
    names = raw.filter(invoice.notnull()).select(__custseg_anchor=raw[row_id], __custseg_order=invoice)
    joined = anchored.left_join(names, "__custseg_anchor")
    return joined.drop("__custseg_anchor", "__custseg_anchor_right")


def spread_order_fields(raw: ir.Table, columns: dict[str, str], row_id: str, spread: tuple[str, ...]) -> ir.Table:
    """Give every line its order's value of the order-level columns and of ``spread``.

    Parameters
    ----------
    raw : ibis.Table of shape (n_rows, n_columns)
        The source as read; needs the mapped ``invoice_id`` column.
    columns : dict of str to str
        Canonical name -> source column (`custseg.schema.ColumnMapping.columns`).
    row_id : str
        The source's 1-based row-position column (an order's first row is its lowest).
    spread : tuple of str
        Canonical line columns the layout writes once per order (`custseg.presets.Preset.once_per_order`).

    Returns
    -------
    ibis.Table of shape (n_rows, n_columns + 1)
        The same rows, the order id column filled (`order_keys`) and each of those source columns
        replaced by its order's first non-blank value (null where the order has none), and
        ``__custseg_order``, the order id.
    """
    keyed = order_keys(raw, columns["invoice_id"], row_id)
    keyed = keyed.mutate(**{columns["invoice_id"]: keyed.__custseg_order})
    sources = sorted({columns[name] for name in (*ORDER_COLUMNS, *spread) if name in columns})
    firsts = {}
    for i, source in enumerate(sources):
        value = blank_to_null(keyed[source].cast(dt.string)) if keyed[source].type().is_string() else keyed[source]
        firsts[f"__custseg_first_{i}"] = keyed[source].argmin(keyed[row_id], where=value.notnull())
    per_order = keyed.group_by("__custseg_order").aggregate(**firsts)
    joined = keyed.left_join(per_order, "__custseg_order").drop("__custseg_order_right")
    replaced = {source: joined[f"__custseg_first_{i}"] for i, source in enumerate(sources)}
    return joined.mutate(**replaced).drop(*firsts)


def refunded_share(
    status: ir.StringValue,
    refunded_amount: ir.FloatingValue,
    order_total: ir.FloatingValue,
    lines_amount: ir.FloatingValue,
) -> ir.FloatingValue:
    """Share of each line of an order that its refund took back, between 0 and 1.

    A refund is spread over the order's lines in proportion to their amounts: each line loses
    ``refunded_amount / order_total`` of its amount (shipping and taxes are refunded in the same
    proportion as the goods), at most all of it. Without a positive order total, the order's line
    amounts (``lines_amount``) are the base. An order whose status is in
    `custseg.presets.REFUNDED_STATUSES` is refunded in full.
    """
    base = ibis.cases((order_total > 0, order_total), else_=lines_amount)
    share = ibis.cases(
        (status.isin(REFUNDED_STATUSES), 1.0),
        ((refunded_amount > 0) & (base > 0), ibis.least(refunded_amount / base, 1.0)),
        else_=0.0,
    )
    return share.cast(dt.float64)


def currency_counts(raw: ir.Table, column: str) -> dict[str, int]:
    """Rows per currency code (trimmed, upper case) of a currency column, blanks left out, most first."""
    codes = raw.select(currency=blank_to_null(raw[column].cast(dt.string)).upper())
    codes = codes.filter(codes.currency.notnull())
    counts = codes.group_by("currency").aggregate(rows=codes.count()).execute()
    counts = counts.sort_values(["rows", "currency"], ascending=[False, True])
    return {str(c): int(n) for c, n in zip(counts.currency, counts.rows, strict=True)}
