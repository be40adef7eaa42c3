"""Which column of the user's file means what, and the one typed table every later stage reads.

A shop's export can have any column names, types and timestamp format. This module maps it to the
canonical transactions table (names and types below), using a preset recognised from the header or
the user's mapping, and marks every value that cannot be parsed instead of failing on it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from custseg.errors import MissingColumnsError
from custseg.presets import PRESETS, Preset

ROW_ID = "row_id"
"""Lineage id: the 1-based position of the row among the data rows of the source."""

CANONICAL_COLUMNS: dict[str, dt.DataType] = {
    ROW_ID: dt.int64,
    "customer_id": dt.string,
    "invoice_id": dt.string,
    "invoiced_at": dt.timestamp,
    "product_id": dt.string,
    "description": dt.string,
    "quantity": dt.float64,
    "unit_price": dt.float64,
    "country": dt.string,
}

SOURCE_COLUMNS = tuple(name for name in CANONICAL_COLUMNS if name != ROW_ID)
"""The canonical columns that come from the source: two rows equal on all of them are duplicates."""

MAPPABLE_COLUMNS = (
    "customer_id",
    "invoice_id",
    "invoiced_at",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "country",
    "order_status",
    "refunded_amount",
    "order_total",
    "currency",
)
"""Canonical names a source column can be mapped to; ``amount`` is quantity x unit price. The last
four describe a whole order (`custseg.orders`): its payment status (orders whose status is one of
``[clean] unpaid_statuses`` are not sales), the amount refunded, the total paid and its currency."""

ORDER_LINE_COLUMNS: dict[str, dt.DataType] = {
    "order_status": dt.string,
    "refunded_amount": dt.float64,
    "order_total": dt.float64,
}
"""Order-level columns that `to_canonical` adds to every line (null where the source has none)."""

PROBLEM_COLUMNS = ("problem_reason", "problem_column", "problem_value")
"""Columns that `to_canonical` adds: why a row's values could not be parsed, or null."""

EXACT = dt.Decimal(38, 6)
"""Fixed-point type for sums: adding decimals is exact, so the result cannot depend on the order in
which a parallel engine adds (float sums differ in their last bits from run to run)."""


def exact_sum(value: ir.NumericValue) -> ir.FloatingValue:
    """Sum ``value`` (to 6 decimals) exactly and return it as float64."""
    return value.cast(EXACT).sum().cast(dt.float64)


CANONICAL = Preset(
    "canonical",
    {name: name for name in MAPPABLE_COLUMNS},
    recognised_by=frozenset({"customer_id", "invoiced_at"}),
)
"""custseg's own column names: any header that has the two required ones, tried after `PRESETS`."""

TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
)
"""Text timestamp formats tried when none is given; on a tie the earlier one wins (US before day-first)."""


@dataclass(frozen=True)
class ColumnMapping:
    """The resolved mapping of a source to the canonical columns.

    Attributes
    ----------
    preset : str
        What run.json records as ``input.preset``: the name of the layout, or ``"custom"`` when the
        user mapped columns.
    columns : dict of str to str
        Canonical name -> source column name, only for columns that exist in the source.
    layout : Preset or None
        The preset whose layout the header has (most of its columns), whatever the user mapped.
    """

    preset: str
    columns: dict[str, str]
    layout: Preset | None = None


def detect_preset(source_columns: Iterable[str]) -> Preset | None:
    """Return the first of `PRESETS` and `CANONICAL` whose every identifying column is in ``source_columns``."""
    found = set(source_columns)
    return next((preset for preset in (*PRESETS, CANONICAL) if preset.signature <= found), None)


def closest_preset(source_columns: Iterable[str]) -> Preset | None:
    """Return the preset of `PRESETS` with most of its columns in the header, if half or more are."""
    found = set(source_columns)

    def share(preset: Preset) -> float:
        return len(set(preset.columns.values()) & found) / len(preset.columns)

    best = max(PRESETS, key=share)
    return best if share(best) >= 0.5 else None


def resolve_mapping(source_columns: list[str], user_map: Mapping[str, str], *, source_name: str) -> ColumnMapping:
    """Combine the detected preset and the user's mapping, and check the required columns.

    A header that holds only some of a preset's columns (a UCI export without CustomerID) is read
    by that preset as far as it goes, so that a message names only what is really missing.

    Parameters
    ----------
    source_columns : list of str
        The column names of the source, in order.
    user_map : mapping of str to str
        Canonical name -> source column (``--map`` and ``[columns]``); wins over the preset.
    source_name : str
        The file name, for messages.

    Raises
    ------
    MissingColumnsError
        If a mapped source column does not exist, or a required canonical column has no source:
        customer_id, invoiced_at, and quantity with unit_price or an amount column.
    """
    layout = detect_preset(source_columns) or closest_preset(source_columns)
    expected = layout.columns if layout else {}
    # Columns already named canonically need no mapping, whatever the rest of the header is.
    columns = {name: name for name in MAPPABLE_COLUMNS if name in source_columns}
    columns.update({canonical: source for canonical, source in expected.items() if source in source_columns})
    found = ", ".join(source_columns)
    for canonical, source in user_map.items():
        if source not in source_columns:
            raise MissingColumnsError(
                f"{source_name}: --map {canonical}={source}: no column {source!r}; columns found: {found}"
            )
        columns[canonical] = source

    def named(canonical: str, alternative: str = "") -> str:
        where = [f"{expected[canonical]} in the {layout.name} layout"] if canonical in expected else []
        notes = ", ".join(where + ([alternative] if alternative else []))
        return f"{canonical} ({notes})" if notes else canonical

    missing = [named(name) for name in ("customer_id", "invoiced_at") if name not in columns]
    has_amount = "amount" in columns or {"quantity", "unit_price"} <= set(columns)
    if not has_amount:
        absent = [name for name in ("quantity", "unit_price") if name not in columns]
        if len(absent) == 2:
            missing.append("amount (or quantity and unit_price)")
        else:
            missing.append(named(absent[0], "or an amount"))
    if missing:
        raise MissingColumnsError(
            f"{source_name}: missing required column(s) {', '.join(missing)}; columns found: {found}; "
            "map them with --map canonical=source (e.g. --map customer_id=Client) "
            "or a [columns] table in custseg.toml"
        )
    name = layout.name if layout and not user_map else "custom"
    return ColumnMapping(preset=name, columns=columns, layout=layout)


@ibis.udf.scalar.builtin(name="try_strptime")
def _try_strptime(value: str, fmt: str) -> datetime.datetime:
    """Parse text with a strptime format; null where it does not parse."""


def trimmed(value: ir.StringValue) -> ir.StringValue:
    """Text without leading and trailing whitespace, the same on every engine.

    Ibis's own ``strip`` lists the whitespace characters in a Spark literal whose escaped vertical
    tab and form feed Spark reads as the letters v and f (it turned product 85099f into 85099).
    """
    return value.re_replace(r"^\s+|\s+$", "")


def blank_to_null(value: ir.StringValue) -> ir.StringValue:
    """Trimmed text, null where it is blank."""
    value = trimmed(value)
    return ibis.cases((value == "", ibis.null(dt.string)), else_=value)


MISSING_ID_WORDS = ("null", "none", "nan", "n/a", "na", "-", "--", "?", "(null)", "#n/a")
"""Texts that exports write for "no customer" (a guest order): read as a missing id."""
MAX_ABS_NUMBER = 1e15
"""Quantities, prices and amounts at or above this size (or not finite) are invalid numbers."""
WALL_CLOCK = r"(\d:\d\d(?::\d\d)?)(?:\.\d+)?\s*(?:Z|UTC|[+-]\d\d:?\d\d)?$"
"""A time with optional fractional seconds and UTC offset: text timestamps keep only the time
(``2010-12-01T11:52:00+01:00`` is 11:52, the shop's wall clock, as its hour-of-day chart means it)."""
FIRST_VALID_YEAR, LAST_VALID_YEAR = 1900, 2199
"""Timestamps outside these years are placeholders (0001-01-01, 9999-12-31), not transactions."""


def _as_text(value: ir.Value, *, is_id: bool = False, is_customer: bool = False) -> ir.StringValue:
    """Canonical text of an id or label.

    Integral floats lose their ``.0`` (CustomerID 17850.0), and so do ids written as text that
    way ("17850.0", as Excel and pandas export them), so that one customer stays one. Blank text is
    missing, and so is a customer id that is one of `MISSING_ID_WORDS`. A customer id with an ``@``
    is an email address, which is the same address in any case: it is read in lower case.
    """
    if value.type().is_floating():
        as_int = value.cast(dt.int64).cast(dt.string)
        return ibis.cases((value == value.floor(), as_int), else_=value.cast(dt.string))
    if value.type().is_string():
        text = blank_to_null(value)
        if is_id or is_customer:
            text = text.re_replace(r"^(-?\d+)\.0+$", r"\1")
        if is_customer:
            text = ibis.cases(
                (text.lower().isin(MISSING_ID_WORDS), ibis.null(dt.string)),
                (text.contains("@"), text.lower()),
                else_=text,
            )
        return text
    return value.cast(dt.string)


def customer_id_text(value: ir.Value) -> ir.StringValue:
    """Read a customer id by the rules of `_as_text`: trimmed, ``17850.0`` is ``17850``, guests are null.

    Emails are lower case.
    """
    return _as_text(value, is_customer=True)


def _as_number(value: ir.Value) -> ir.FloatingValue:
    """Read a number: finite and below `MAX_ABS_NUMBER`, else null (an invalid number).

    Text may use a decimal comma ("2,55"); a comma followed by exactly three digits ("1,000") could
    as well be a thousands separator, and is refused rather than guessed.
    """
    if value.type().is_numeric():
        number = value.cast(dt.float64)
    else:
        text = blank_to_null(value.cast(dt.string))
        text = text.re_replace(r"^(-?\d+),(\d{1,2}|\d{4,})$", r"\1.\2")
        number = text.try_cast(dt.float64)
    return ibis.cases(
        (number.isnan() | number.isinf() | (number.abs() >= MAX_ABS_NUMBER), ibis.null(dt.float64)), else_=number
    )


def _as_timestamp(value: ir.Value, timestamp_format: str | None) -> ir.TimestampValue:
    """Read a timestamp in the years `FIRST_VALID_YEAR` to `LAST_VALID_YEAR`, else null (invalid)."""
    if value.type().is_timestamp() or value.type().is_date():
        parsed = value.cast(dt.timestamp)
    else:
        text = blank_to_null(value.cast(dt.string)).re_replace(WALL_CLOCK, r"\1")
        if timestamp_format is None:
            parsed = text.try_cast(dt.timestamp)
        else:
            parsed = _try_strptime(text, timestamp_format).cast(dt.timestamp)
    year = parsed.year()
    return ibis.cases(((year < FIRST_VALID_YEAR) | (year > LAST_VALID_YEAR), ibis.null(dt.timestamp)), else_=parsed)


def timestamp_format_counts(table: ir.Table, column: str) -> ir.Table:
    """One-row table: for each of `TIMESTAMP_FORMATS`, how many distinct values of ``column`` it parses."""
    distinct = table.select(value=table[column].cast(dt.string)).distinct()
    text = blank_to_null(distinct.value).re_replace(WALL_CLOCK, r"\1")
    return distinct.aggregate(**{f"f{i}": _try_strptime(text, fmt).count() for i, fmt in enumerate(TIMESTAMP_FORMATS)})


def to_canonical(
    raw: ir.Table,
    mapping: ColumnMapping,
    *,
    timestamp_format: str | None,
    row_id: str,
    raw_timestamp: str = "__custseg_raw_timestamp",
) -> ir.Table:
    """Map a source table to the canonical transactions table.

    Parameters
    ----------
    raw : ibis.Table of shape (n_rows, n_source_columns)
        The source as read, any types.
    mapping : ColumnMapping
        From `resolve_mapping`.
    timestamp_format : str or None
        strptime format of a text timestamp column; None for typed or ISO timestamps.
    row_id : str
        Name of the source's 1-based row-position column.
    raw_timestamp : str
        Name of the column with the original text of a timestamp column parsed while reading,
        if there is one (for reporting values that did not parse).

    Returns
    -------
    ibis.Table of shape (n_rows, 15)
        `CANONICAL_COLUMNS`, `ORDER_LINE_COLUMNS` and `PROBLEM_COLUMNS`. Values that are missing or
        do not parse are null; the first such value of a row is named in the problem columns (a
        blank order-level amount is no refund or no total, not a problem). Without an invoice id
        (no column, or a blank one) an order is one (customer_id, invoiced_at) pair; without a
        product id (no column, or a blank one) the description stands for the product; with only
        an amount, quantity is its sign and unit_price its absolute value, so that a negative
        amount is a return. The order status is trimmed lower-case text.
    """
    cols = mapping.columns

    def source(name: str) -> ir.Value | None:
        return raw[cols[name]] if name in cols else None

    invoiced_at = _as_timestamp(source("invoiced_at"), timestamp_format)
    numbers = {
        name: _as_number(source(name))
        for name in ("quantity", "unit_price", "amount", "refunded_amount", "order_total")
        if name in cols
    }
    quantity, unit_price, amount = (numbers.get(k) for k in ("quantity", "unit_price", "amount"))
    if quantity is None or unit_price is None:
        if quantity is not None:
            unit_price = ibis.cases((quantity != 0, (amount / quantity).abs()), else_=amount.abs())
        elif unit_price is not None:
            quantity = ibis.cases((unit_price != 0, amount / unit_price), else_=amount.sign())
        else:
            quantity, unit_price = amount.sign(), amount.abs()

    customer_id = customer_id_text(source("customer_id"))
    description = _as_text(source("description")) if "description" in cols else ibis.null(dt.string)
    if "product_id" in cols:
        product_id = _as_text(source("product_id")).coalesce(description)
    else:
        product_id = description
    # An order without an invoice id (no column, or a blank one) is one (customer, timestamp) pair.
    invoice_id = customer_id.concat("@", invoiced_at.cast(dt.string))
    if "invoice_id" in cols:
        invoice_id = _as_text(source("invoice_id"), is_id=True).coalesce(invoice_id)
    country = _as_text(source("country")) if "country" in cols else ibis.null(dt.string)

    # (reason, canonical column, whether the row's value is invalid): a missing line value is
    # invalid, an order-level amount only when something unreadable was written (blank is none).
    checks = [("invalid_timestamp", "invoiced_at", invoiced_at.isnull())]
    checks += [
        ("invalid_number", name, numbers[name].isnull())
        for name in ("quantity", "unit_price", "amount")
        if name in numbers
    ]
    checks += [
        ("invalid_number", name, numbers[name].isnull() & blank_to_null(source(name).cast(dt.string)).notnull())
        for name in ("refunded_amount", "order_total")
        if name in numbers
    ]
    problem_reason = ibis.cases(*[(invalid, reason) for reason, _, invalid in checks], else_=ibis.null(dt.string))
    problem_column = ibis.cases(*[(invalid, cols[name]) for _, name, invalid in checks], else_=ibis.null(dt.string))

    def written(name: str) -> ir.StringValue:
        # A timestamp parsed while reading keeps its original text beside it.
        if name == "invoiced_at" and raw_timestamp in raw.columns:
            return raw[raw_timestamp].fill_null("")
        return raw[cols[name]].cast(dt.string).fill_null("")

    problem_value = ibis.cases(
        *[(invalid, written(name)) for _, name, invalid in checks],
        else_=ibis.null(dt.string),
    )
    return raw.select(
        row_id=raw[row_id].cast(dt.int64),
        customer_id=customer_id,
        invoice_id=invoice_id,
        invoiced_at=invoiced_at,
        product_id=product_id,
        description=description,
        quantity=quantity.cast(dt.float64),
        unit_price=unit_price.cast(dt.float64),
        country=country,
        order_status=_as_text(source("order_status")).lower() if "order_status" in cols else ibis.null(dt.string),
        **{name: numbers.get(name, ibis.null(ORDER_LINE_COLUMNS[name])) for name in ("refunded_amount", "order_total")},
        problem_reason=problem_reason,
        problem_column=problem_column,
        problem_value=problem_value,
    )


def problem_summary(transactions: ir.Table) -> ir.Table:
    """Per source column with missing or unparseable values: reason, count, first row and value."""
    problems = transactions.filter(transactions.problem_reason.notnull())
    return (
        problems.group_by("problem_reason", "problem_column")
        .aggregate(
            rows=problems.count(),
            first_row=problems.row_id.min(),
            first_value=problems.problem_value.argmin(problems.row_id),
        )
        .order_by("first_row")
    )
