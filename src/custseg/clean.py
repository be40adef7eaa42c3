"""Which rows of the log are real purchases, and what happened to every other row.

Raw exports mix purchases with guest orders, duplicates, postage and fee lines, bad prices and
returns. Each named rule below rejects rows with a reason code; returns are matched to the
customer's earlier purchases of the same product, newest first, and reduce their net quantity.
Every input row ends up in exactly one of `lines` (kept purchases) and `rejected` (with a reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custseg.engine import allocate_in_python
from custseg.orders import refunded_share
from custseg.presets import DISPUTED_STATUSES, UNPAID_STATUSES
from custseg.schema import ROW_ID, SOURCE_COLUMNS, exact_sum, trimmed

REASONS: dict[str, str] = {
    "invalid_timestamp": "timestamp missing or not parseable",
    "invalid_number": "quantity, price or amount missing or not a number",
    "unpaid_order": "order not paid: its status is one of [clean] unpaid_statuses (e.g. voided, pending)",
    "disputed_order": "order whose payment is disputed: its status is one of [clean] disputed_statuses (a chargeback)",
    "unknown_status": "order status the input's layout does not write (not a sale, refund, unpaid or disputed order)",
    "missing_customer_id": "no customer id (a guest order)",
    "duplicate_row": "exact copy of an earlier row (the first copy is kept)",
    "non_product": "postage, carriage, fee, manual adjustment, discount, sample, bank charge or voucher",
    "zero_quantity": "quantity is zero",
    "non_positive_price": "unit price is zero or negative",
    "matched_return": "return fully netted against the customer's earlier purchases of the product",
    "partly_matched_return": "return netted against earlier purchases only in part (see matched_quantity)",
    "unmatched_return": "return with no earlier purchase of the product by the customer in the data",
}
"""Reason codes of `rejected`, in the order the rules are applied (a row gets the first that fits)."""

DEFAULT_NON_PRODUCT_CODES = (
    "POST",
    "DOT",
    "C2",
    "M",
    "D",
    "S",
    "B",
    "BANK CHARGES",
    "AMAZONFEE",
    "CRUK",
    "PADS",
)

LINE_COLUMNS = (
    ROW_ID,
    "customer_id",
    "invoice_id",
    "invoiced_at",
    "product_id",
    "description",
    "quantity",
    "returned_quantity",
    "refunded_quantity",
    "net_quantity",
    "unit_price",
    "net_revenue",
    "country",
)

REJECTED_COLUMNS = (
    ROW_ID,
    "reason",
    "detail",
    "customer_id",
    "invoice_id",
    "invoiced_at",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "country",
    "matched_quantity",
)


@dataclass(frozen=True)
class CleanRules:
    """Settings of the `non_product` rule and of the rules on order statuses (the other rules have none).

    Attributes
    ----------
    non_product_codes : tuple of str
        Product codes that are not products (compared case-insensitively).
    non_product_code_pattern : str
        Regular expression; product codes that match it in full are not products.
    non_product_description_pattern : str
        Regular expression; descriptions that match it in full (case-insensitive) are not products.
    unpaid_statuses : tuple of str
        Order statuses (``order_status``, compared in lower case) of orders that are not sales; by
        default every layout's (`custseg.presets.Preset.unpaid_statuses`).
    disputed_statuses : tuple of str
        Order statuses of orders whose payment is disputed; by default every layout's
        (`custseg.presets.Preset.disputed_statuses`).
    known_statuses : tuple of str
        Every order status the input may carry; an order with another is rejected as
        ``unknown_status``, and empty checks none. The run fills it from the input's layout when the
        layout declares its statuses (`custseg.presets.Preset.statuses`) and this is left empty.
    """

    non_product_codes: tuple[str, ...] = DEFAULT_NON_PRODUCT_CODES
    non_product_code_pattern: str = r"(?i)gift_\d+.*"
    non_product_description_pattern: str = (
        r"(?i)(dotcom )?postage|carriage|manual|discount|samples?|bank charges?|amazon fee"
        r"|adjust bad debt|cruk commission|.*gift voucher.*|.*\bfees?\b.*"
    )
    unpaid_statuses: tuple[str, ...] = UNPAID_STATUSES
    disputed_statuses: tuple[str, ...] = DISPUTED_STATUSES
    known_statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class CleanResult:
    """The two outputs of `clean`.

    Attributes
    ----------
    lines : ibis.Table of shape (n_kept, 13)
        Kept purchase lines, `LINE_COLUMNS`; ``returned_quantity`` is what matched returns and the
        order's refund (``refunded_quantity``, `custseg.orders.refunded_share`) took back,
        ``net_quantity = quantity - returned_quantity``
        and ``net_revenue = net_quantity * unit_price``.
    rejected : ibis.Table of shape (n_rejected, 12)
        Every other input row, `REJECTED_COLUMNS`, with its ``reason`` (a key of `REASONS`).
    screened : ibis.Table
        The cached table both are built from (call `release` when they are stored).
    """

    lines: ir.Table
    rejected: ir.Table
    screened: ir.Table | None = None

    def release(self) -> None:
        """Drop the cached screening table once ``lines`` and ``rejected`` are stored.

        Left to the garbage collector, its finalizer may run after the connection is closed.
        """
        if self.screened is not None and hasattr(self.screened, "release"):
            self.screened.release()


def _full_match(value: ir.StringValue, pattern: str) -> ir.BooleanValue:
    return value.re_search(f"^(?:{pattern})$").fill_null(False)


def is_non_product(transactions: ir.Table, rules: CleanRules) -> ir.BooleanValue:
    """Whether each row is a postage, fee, adjustment or other non-product line."""
    code = trimmed(transactions.product_id).upper()
    codes = [c.upper() for c in rules.non_product_codes]
    by_code = code.isin(codes).fill_null(False) if codes else ibis.literal(False)
    by_pattern = _full_match(transactions.product_id, rules.non_product_code_pattern)
    description = trimmed(transactions.description)
    pattern = rules.non_product_description_pattern
    if not pattern.startswith("(?i)"):
        pattern = "(?i)" + pattern
    return by_code | by_pattern | _full_match(description, pattern)


def screen(transactions: ir.Table, rules: CleanRules) -> ir.Table:
    """Add ``reason`` (null where no screening rule applies) and ``detail`` to every row.

    The screening rules are every rule of `REASONS` before the returns.
    """
    # The first copy of each distinct row, by a hash aggregation: cheaper than a window sorted by
    # row. Marked by a join, not NOT IN, which Spark plans as a nested loop over both tables.
    first_copies = transactions.group_by(list(SOURCE_COLUMNS)).aggregate(first_row=transactions[ROW_ID].min())
    first_copies = first_copies.select(first_row="first_row", is_first_copy=ibis.literal(True))
    t = transactions.left_join(first_copies, transactions[ROW_ID] == first_copies.first_row).drop("first_row")
    unpaid = t.order_status.isin([s.lower() for s in rules.unpaid_statuses]).fill_null(False)
    disputed = t.order_status.isin([s.lower() for s in rules.disputed_statuses]).fill_null(False)
    unknown = ibis.literal(False)
    if rules.known_statuses:
        known = {s.lower() for s in (*rules.known_statuses, *rules.unpaid_statuses, *rules.disputed_statuses)}
        unknown = t.order_status.notnull() & ~t.order_status.isin(sorted(known))
    reason = ibis.cases(
        (t.problem_reason.notnull(), t.problem_reason),
        (unpaid, "unpaid_order"),
        (disputed, "disputed_order"),
        (unknown, "unknown_status"),
        (t.customer_id.isnull(), "missing_customer_id"),
        (t.is_first_copy.isnull(), "duplicate_row"),
        (is_non_product(t, rules), "non_product"),
        (t.quantity == 0, "zero_quantity"),
        (t.unit_price <= 0, "non_positive_price"),
        else_=ibis.null(dt.string),
    )
    detail = ibis.cases(
        (t.problem_reason.notnull(), t.problem_column.concat("=", t.problem_value)),
        (unpaid | disputed | unknown, ibis.literal("order_status=").concat(t.order_status)),
        else_=ibis.null(dt.string),
    )
    return t.mutate(reason=reason, detail=detail).drop("is_first_copy")


def _product_key(table: ir.Table) -> ir.StringValue:
    return table.product_id.fill_null(table.description.fill_null(""))


def allocate_returns(events: pd.DataFrame) -> pd.DataFrame:
    """Net each return against the same customer's earlier purchases of the product, newest first.

    A purchase at the same timestamp as the return counts as earlier. Purchases are consumed
    in last-in-first-out order and never below zero; what a return cannot consume stays unmatched.
    Works on any subset of rows that holds whole (customer, product) groups, so it can run per
    group on a cluster.

    Parameters
    ----------
    events : DataFrame of shape (n_events, 5)
        Columns row_id, customer_id, product_key, invoiced_at, quantity (> 0 purchase, < 0 return).

    Returns
    -------
    DataFrame of shape (n_events, 2)
        Columns row_id and allocated_quantity: for a purchase, the quantity returned against it;
        for a return, the quantity it matched (between 0 and -quantity).

    Examples
    --------
    >>> events = pd.DataFrame({"row_id": [1, 2, 3], "customer_id": "c", "product_key": "p",
    ...     "invoiced_at": pd.to_datetime(["2011-01-01", "2011-01-02", "2011-01-03"]),
    ...     "quantity": [6.0, 6.0, -10.0]})
    >>> allocate_returns(events).allocated_quantity.tolist()
    [4.0, 6.0, 10.0]
    """
    if events.empty:
        return pd.DataFrame({ROW_ID: pd.Series([], dtype="int64"), "allocated_quantity": pd.Series([], dtype=float)})
    ordered = events.assign(is_return=events.quantity < 0).sort_values(
        ["customer_id", "product_key", "invoiced_at", "is_return", ROW_ID], kind="mergesort"
    )
    group = (
        ordered[["customer_id", "product_key"]].ne(ordered[["customer_id", "product_key"]].shift()).any(axis=1)
    ).to_numpy()
    quantity = ordered.quantity.to_numpy(dtype=float).tolist()
    remaining = [0.0] * len(quantity)
    allocated = [0.0] * len(quantity)
    stack: list[int] = []
    for i, (starts_group, qty) in enumerate(zip(group.tolist(), quantity, strict=True)):
        if starts_group:
            stack.clear()
        if qty > 0:
            remaining[i] = qty
            stack.append(i)
            continue
        need = -qty
        while need > 0 and stack:
            top = stack[-1]
            take = min(need, remaining[top])
            remaining[top] -= take
            allocated[top] += take
            need -= take
            if remaining[top] <= 0:
                stack.pop()
        allocated[i] = -qty - need
    result = pd.DataFrame(
        {ROW_ID: ordered[ROW_ID].to_numpy(), "allocated_quantity": np.asarray(allocated, dtype=float)}
    )
    return result.sort_values(ROW_ID, kind="mergesort").reset_index(drop=True)


def return_events(candidates: ir.Table) -> ir.Table:
    """Select the rows `allocate_returns` needs.

    These are the rows of every (customer, product) with a return, up to its last return: a later
    purchase can never be netted.
    """
    keyed = candidates.mutate(product_key=_product_key(candidates))
    returns = keyed.filter(keyed.quantity < 0)
    last_return = returns.group_by("customer_id", "product_key").aggregate(last_return_at=returns.invoiced_at.max())
    events = keyed.inner_join(last_return, ["customer_id", "product_key"])
    events = events.filter(events.invoiced_at <= events.last_return_at)
    return events.select(ROW_ID, "customer_id", "product_key", "invoiced_at", "quantity")


def clean(
    transactions: ir.Table,
    rules: CleanRules | None = None,
    *,
    allocate_with: Callable[[ir.Table, Callable[[pd.DataFrame], pd.DataFrame]], ir.Table] = allocate_in_python,
) -> CleanResult:
    """Split the canonical transactions into kept purchase lines and rejected rows.

    Parameters
    ----------
    transactions : ibis.Table of shape (n_rows, 12)
        From `custseg.schema.to_canonical`.
    rules : CleanRules, optional
        Settings of the non-product rule; defaults to `CleanRules()`.
    allocate_with : callable, optional
        ``(events, allocate_returns) -> allocation table``: where `allocate_returns` runs, e.g.
        per group inside Spark (`custseg.engine.SparkEngine.allocate`); by default in this process.

    Returns
    -------
    CleanResult
        ``lines`` and ``rejected``; together they hold every input row exactly once.
    """
    rules = rules or CleanRules()
    # Computed once: lines, rejected and the return netting all start from it.
    screened = screen(transactions, rules).cache()
    # Newest-first netting is sequential within a (customer, product) group, so it is no table
    # expression; only the groups that hold a return are netted.
    events = return_events(screened.filter(screened.reason.isnull()))
    lines, rejected = net_returns(screened, allocate_with(events, allocate_returns))
    return CleanResult(lines=lines, rejected=rejected, screened=screened)


def net_returns(screened: ir.Table, allocation: ir.Table) -> tuple[ir.Table, ir.Table]:
    """Apply the return allocation to the screened rows: kept purchase lines and rejected rows.

    Parameters
    ----------
    screened : ibis.Table
        From `screen`.
    allocation : ibis.Table of shape (n_events, 2)
        From `allocate_returns`: row_id, allocated_quantity.

    Returns
    -------
    lines : ibis.Table of shape (n_kept, 13)
        `LINE_COLUMNS`.
    rejected : ibis.Table of shape (n_rejected, 12)
        `REJECTED_COLUMNS`.
    """
    candidates = screened.filter(screened.reason.isnull())
    joined = candidates.left_join(allocation, ROW_ID).drop(f"{ROW_ID}_right")
    allocated = joined.allocated_quantity.fill_null(0.0)

    purchases = _with_refunded_share(joined.filter(joined.quantity > 0))
    matched = purchases.allocated_quantity.fill_null(0.0)
    refunded = (purchases.quantity - matched) * purchases.refunded_share
    net_quantity = purchases.quantity - matched - refunded
    lines = purchases.select(
        ROW_ID,
        "customer_id",
        "invoice_id",
        "invoiced_at",
        "product_id",
        "description",
        "quantity",
        returned_quantity=matched + refunded,
        refunded_quantity=refunded,
        net_quantity=net_quantity,
        unit_price=purchases.unit_price,
        net_revenue=net_quantity * purchases.unit_price,
        country=purchases.country,
    )

    returns = joined.filter(joined.quantity < 0).mutate(matched_quantity=allocated)
    return_reason = ibis.cases(
        (returns.matched_quantity >= -returns.quantity, "matched_return"),
        (returns.matched_quantity > 0, "partly_matched_return"),
        else_="unmatched_return",
    )
    screened_out = screened.filter(screened.reason.notnull()).mutate(matched_quantity=ibis.null(dt.float64))
    rejected = ibis.union(
        screened_out.select(*REJECTED_COLUMNS),
        returns.mutate(reason=return_reason).select(*REJECTED_COLUMNS),
    )
    return lines, rejected


def _with_refunded_share(purchases: ir.Table) -> ir.Table:
    """Add ``refunded_share``, the share of each purchase line that its order's refund took back."""
    refunded = purchases.filter(purchases.refunded_amount > 0)
    # Only orders with a refunded amount need their lines' total (the base when the order has no total).
    per_order = refunded.group_by("invoice_id").aggregate(
        lines_amount=(refunded.quantity * refunded.unit_price).sum()
    )
    joined = purchases.left_join(per_order, "invoice_id").drop("invoice_id_right")
    share = refunded_share(
        joined.order_status, joined.refunded_amount, joined.order_total, joined.lines_amount.fill_null(0.0)
    )
    return joined.mutate(refunded_share=share).drop("lines_amount")


def check_partition(transactions: ir.Table, lines: ir.Table, rejected: ir.Table) -> dict[str, int]:
    """Count rows and prove that every input row is in exactly one of ``lines`` and ``rejected``.

    Returns
    -------
    dict
        ``input_rows``, ``kept_rows``, ``rejected_rows``.

    Raises
    ------
    RuntimeError
        If a row is lost, duplicated or invented (a bug in custseg, never the user's input).
    """
    ids = ibis.union(lines.select(ROW_ID), rejected.select(ROW_ID), distinct=False)
    counts = ids.aggregate(rows=ids.count(), distinct_rows=ids[ROW_ID].nunique()).execute().iloc[0]
    input_rows = int(transactions.count().execute())
    kept_rows = int(lines.count().execute())
    rejected_rows = int(rejected.count().execute())
    unknown = int(ids.anti_join(transactions, ROW_ID).count().execute())
    if not (int(counts.rows) == int(counts.distinct_rows) == input_rows and unknown == 0):
        raise RuntimeError(
            f"row audit failed: input {input_rows}, kept {kept_rows}, rejected {rejected_rows}, "
            f"distinct ids {int(counts.distinct_rows)}, ids not in the input {unknown}"
        )
    return {"input_rows": input_rows, "kept_rows": kept_rows, "rejected_rows": rejected_rows}


def reconcile(transactions: ir.Table, lines: ir.Table, rejected: ir.Table) -> dict:
    """Revenue reconciliation: where every unit of currency in the input went.

    Returns
    -------
    dict
        ``input_amount`` (sum of quantity x unit price over parseable rows), ``gross_sales``,
        ``returns_matched`` (at the purchase's price), ``refunds`` (orders' refunds, spread over
        their lines) and ``net_revenue`` of ``lines`` (gross_sales - returns_matched - refunds),
        ``rejected_amount`` per reason (quantity x unit price as in the input) and ``balanced``:
        whether input_amount = gross_sales + all rejected amounts (to a cent).
    """
    line_sums = (
        lines.aggregate(
            gross_sales=exact_sum(lines.quantity * lines.unit_price),
            returns_matched=exact_sum((lines.returned_quantity - lines.refunded_quantity) * lines.unit_price),
            refunds=exact_sum(lines.refunded_quantity * lines.unit_price),
            net_revenue=exact_sum(lines.net_revenue),
        )
        .execute()
        .iloc[0]
    )
    amount = rejected.quantity * rejected.unit_price
    per_reason = (
        rejected.group_by("reason")
        .aggregate(rows=rejected.count(), amount=exact_sum(amount).fill_null(0.0))
        .order_by("reason")
        .execute()
    )
    input_amount = float(
        transactions.aggregate(a=exact_sum(transactions.quantity * transactions.unit_price)).execute().a.iloc[0]
    )
    gross = float(line_sums.gross_sales or 0.0)
    rejected_amount = {r.reason: round(float(r.amount), 2) for r in per_reason.itertuples()}
    total_rejected = float(per_reason.amount.sum())
    return {
        "input_amount": round(input_amount, 2),
        "gross_sales": round(gross, 2),
        "returns_matched": round(float(line_sums.returns_matched or 0.0), 2),
        "refunds": round(float(line_sums.refunds or 0.0), 2),
        "net_revenue": round(float(line_sums.net_revenue or 0.0), 2),
        "rejected_amount": rejected_amount,
        "balanced": abs(input_amount - gross - total_rejected) < 0.01,
    }


def reason_counts(rejected: ir.Table) -> dict[str, int]:
    """Rows rejected per reason, every reason of `REASONS` listed (0 where none), in rule order."""
    counts = rejected.group_by("reason").aggregate(rows=rejected.count()).execute()
    found = dict(zip(counts.reason, counts.rows.astype(int), strict=True))
    return {reason: int(found.get(reason, 0)) for reason in REASONS}
