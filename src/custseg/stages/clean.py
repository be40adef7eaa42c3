"""Clean: purchase lines kept and rows rejected, every input row accounted for and the revenue reconciled."""

from __future__ import annotations

import dataclasses

import ibis.expr.types as ir

from custseg.clean import CleanRules, check_partition, clean, reason_counts, reconcile
from custseg.errors import NoRowsLeftError
from custseg.presets import preset_named
from custseg.record import Reconciliation, RowsSection, SpanSection, frozen
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.read import Read


@frozen
class Cleaned:
    """Kept purchase lines and rejected rows; the rows per rule, what the lines span, the reconciliation."""

    lines: ir.Table
    rejected: ir.Table
    rows: RowsSection
    span: SpanSection
    reconciliation: Reconciliation


def clean_rules(settings: Settings, read: Read) -> CleanRules:
    """Return the settings' cleaning rules, the input layout's order statuses the known ones unless given."""
    rules, layout = settings.clean, preset_named(read.input.layout)
    if layout is not None and layout.statuses and not rules.known_statuses:
        return dataclasses.replace(rules, known_statuses=layout.statuses)
    return rules


def clean_lines(*, read: Read, settings: Settings, store: Store) -> Cleaned:
    """Apply the cleaning rules and match returns; check that every row is kept or rejected.

    Raises
    ------
    NoRowsLeftError
        When no row is left, naming the input and the rejections by reason.
    """
    transactions = read.transactions
    result = clean(transactions, clean_rules(settings, read), allocate_with=store.engine.allocate)
    lines = store.cache("lines", result.lines)
    rejected = store.cache("rejected", result.rejected.order_by("row_id"))
    result.release()
    counts = check_partition(transactions, lines, rejected)
    rows = RowsSection(**counts, rejected_by_reason=reason_counts(rejected))
    if rows.kept_rows == 0:
        raise NoRowsLeftError(
            f"{read.input.path}: no rows left after cleaning; rejected by reason: "
            + ", ".join(f"{k} {v}" for k, v in rows.rejected_by_reason.items() if v)
        )
    span = (
        lines.aggregate(
            first=lines.invoiced_at.min(),
            last=lines.invoiced_at.max(),
            customers=lines.customer_id.nunique(),
            orders=lines.invoice_id.nunique(),
            products=lines.product_id.nunique(),
        )
        .execute()
        .iloc[0]
    )
    return Cleaned(
        lines=lines,
        rejected=rejected,
        rows=rows,
        span=SpanSection(
            customers=int(span.customers),
            orders=int(span.orders),
            products=int(span.products),
            first_invoiced_at=span["first"].to_pydatetime(),
            last_invoiced_at=span["last"].to_pydatetime(),
        ),
        reconciliation=Reconciliation(**reconcile(transactions, lines, rejected)),
    )
