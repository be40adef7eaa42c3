"""Read: the input file or table as canonical transactions, and how it was read."""

from __future__ import annotations

from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from custseg.database import is_database_url, read_database
from custseg.errors import ConfigError, InvalidValueError
from custseg.io import (
    SOURCE_ROW,
    Source,
    detect_text_timestamp_format,
    detect_timestamp_format,
    frame_sha256,
    narrowed,
    parse_text_timestamps,
    read_source,
)
from custseg.orders import ORDER_COLUMNS, currency_counts, spread_order_fields
from custseg.record import InputSection, frozen
from custseg.schema import ColumnMapping, problem_summary, resolve_mapping, to_canonical
from custseg.settings import Settings
from custseg.stages import Store
from custseg.workspace import file_sha256

Data = str | Path | pd.DataFrame | pa.Table
"""What a run reads: a file name, a ``postgresql://`` URL, a Spark table or URL, or a table in memory."""


@frozen
class Read:
    """The input as canonical transactions (`custseg.schema.CANONICAL_COLUMNS` and row_id, one row per input row)."""

    transactions: ir.Table
    input: InputSection


def as_input(data: Data) -> Data:
    """Return a file name as a Path; a URL (Path would fold its "//") or a table in memory as it is."""
    if isinstance(data, pd.DataFrame | pa.Table) or "://" in str(data):
        return data
    return Path(data)


def read_input(*, data: Data, settings: Settings, store: Store) -> Read:
    """Read a file or table and map it to custseg's columns.

    Raises
    ------
    CustsegError
        A file, table or column that cannot be read, naming it (and the row and value at fault).
    """
    data = as_input(data)
    options = settings.input
    if is_database_url(data):
        source = read_database(
            data, store.engine, table=options.table, query=options.query, column_map=options.column_map
        )
    elif options.table is not None or options.query is not None:
        raise ConfigError(f"{data}: --table and --query read a database (postgresql://...), not a file")
    else:
        source = read_source(data, store.engine, encoding=options.encoding, delimiter=options.delimiter)
    canonical, described = load_transactions(source, settings)
    transactions = store.cache("transactions", canonical)
    check_problems(transactions, source, options.max_invalid_share)
    if isinstance(data, Path) and data.is_file():
        fingerprint = {"bytes": data.stat().st_size, "sha256": file_sha256(data)}
    elif source.file_format in ("dataframe", "postgresql"):
        # The rows as read (a database's, or a table in memory): the same rows give the same hash.
        fingerprint = {"bytes": None, "sha256": frame_sha256(source)}
    else:
        # A Spark table, URL or folder: no one file to fingerprint.
        fingerprint = {"bytes": None, "sha256": None}
    return Read(transactions=transactions, input=InputSection(**described, **fingerprint))


def load_transactions(source: Source, settings: Settings) -> tuple[ir.Table, dict]:
    """Map a read source to the canonical transactions table and describe how it was read.

    Returns
    -------
    transactions : ibis.Table
    described : dict
        The fields of `InputSection` but its fingerprint (bytes, sha256).

    Raises
    ------
    MissingColumnsError
        If required columns are missing.
    InvalidValueError
        If the orders are in several currencies.
    """
    options = settings.input
    mapping = resolve_mapping(source.columns, options.column_map, source_name=str(source.path))
    source = narrowed(source, mapping.columns.values())
    column = mapping.columns["invoiced_at"]
    timestamp_format, tied = options.timestamp_format, []
    if source.arrow is not None and pa.types.is_string(source.arrow.schema.field(column).type):
        # Text timestamps of a CSV or Excel file are parsed in Arrow, where the file already is.
        if timestamp_format is None:
            timestamp_format, tied = detect_text_timestamp_format(source.arrow.column(column))
        source = parse_text_timestamps(source, column, timestamp_format)
        parse_format = None
    else:
        if timestamp_format is None:
            timestamp_format, tied = detect_timestamp_format(source.table, column)
        parse_format = timestamp_format
    table = source.table
    spread = mapping.layout.once_per_order if mapping.layout else ()
    if "invoice_id" in mapping.columns and (spread or set(ORDER_COLUMNS) & set(mapping.columns)):
        table = spread_order_fields(table, mapping.columns, SOURCE_ROW, spread)
    currency, currency_source = _currency(table, mapping, options.currency, str(source.path))
    transactions = to_canonical(table, mapping, timestamp_format=parse_format, row_id=SOURCE_ROW)
    described = {
        "path": str(source.path),
        "format": source.file_format,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "columns": source.columns,
        "preset": mapping.preset,
        "layout": mapping.layout.name if mapping.layout else None,
        "column_map": mapping.columns,
        "timestamp_format": timestamp_format,
        "timestamp_format_ties": tied,
        "currency": currency,
        "currency_source": currency_source,
    }
    return transactions, described


def _currency(table: ir.Table, mapping: ColumnMapping, given: str | None, name: str) -> tuple[str | None, str | None]:
    """Return the currency of the amounts and what says it: the export, the setting or the layout.

    Raises
    ------
    InvalidValueError
        When the orders are in several currencies, or the given one is not the export's.
    """
    if "currency" in mapping.columns:
        column = mapping.columns["currency"]
        found = _one_currency(table, column, name)
        if found is not None and given is not None and found != given:
            raise InvalidValueError(
                f"{name}: column {column!r}: the orders are in {found}, not the currency given ({given}); "
                "drop --currency or give the orders' own"
            )
        if found is not None:
            return found, "export"
    if given is not None:
        return given, "setting"
    if mapping.layout is not None and mapping.layout.currency is not None:
        return mapping.layout.currency, "layout"
    return None, None


def _one_currency(table: ir.Table, column: str, name: str) -> str | None:
    """Return the one currency of the orders, or None when the column is blank.

    Raises
    ------
    InvalidValueError
        When the orders are in several currencies: custseg adds amounts, which only one currency allows.
    """
    counts = currency_counts(table, column)
    if len(counts) > 1:
        found = ", ".join(f"{code} ({rows:,} rows)" for code, rows in counts.items())
        raise InvalidValueError(
            f"{name}: column {column!r}: the orders are in {len(counts)} currencies: {found}; custseg adds "
            "amounts, so one run reads one currency: export or select the orders of one currency "
            "(e.g. --query \"select * from orders where currency = 'EUR'\")"
        )
    return next(iter(counts), None)


def check_problems(transactions: ir.Table, source: Source, max_share: float) -> None:
    """Refuse the input when one column is mostly unparseable (wrong mapping or format).

    Raises
    ------
    InvalidValueError
        Naming the file, the first bad row and its column and value.
    """
    total = int(transactions.count().execute())
    for problem in problem_summary(transactions).execute().itertuples():
        if problem.rows > max_share * total:
            kind = "timestamps" if problem.problem_reason == "invalid_timestamp" else "numbers"
            raise InvalidValueError(
                f"{source.path}: row {problem.first_row}, column {problem.problem_column!r}: "
                f"{problem.first_value!r} is not valid ({problem.rows} of {total} rows in this column "
                f"are missing or not {kind}); check --map, or --date-format for timestamps"
            )
