"""Read orders from a PostgreSQL database, and never change it.

Larger shops keep their orders in a database; exporting them to a file first loses types and
time. A table or a query is read in batches into the engine, numbered like a file's rows, and then
mapped with the same presets and ``--map`` as a file. The password never passes through custseg:
libpq reads it from ``PGPASSWORD`` or a ``.pgpass`` file (``PGPASSFILE``).

Whatever query custseg is given, the database stays as it was. The server first parses the query
alone (its extended protocol parses one statement and runs none); custseg then sends it as the
subquery of its own SELECT (where no statement that changes data is allowed), again as one
statement, in a READ ONLY transaction that is never committed (where nothing can be written,
not even by a function the query calls). Only the columns the mapping reads are fetched, in types
the engine holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from custseg.errors import ConfigError, EmptyInputError, InputFileError, InvalidValueError
from custseg.io import Source, read_frame
from custseg.schema import resolve_mapping

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

SCHEMES = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL database: ``postgresql://user@host:5432/shop``."""

BATCH_ROWS = 100_000
"""Rows fetched from the server per batch."""

NUMBER_COLUMNS = ("quantity", "unit_price", "amount", "refunded_amount", "order_total")
"""Canonical columns read as numbers; ``invoiced_at`` is read as a timestamp, the others as text."""

ALIAS = "custseg_orders"
"""The name of the table or of the query's result in the statement custseg sends."""

NUMBER_TYPES = ("int2", "int4", "int8", "float4", "float8", "numeric", "money")
"""PostgreSQL types read as numbers (``money`` by its value, without the currency sign)."""

TIMESTAMP_TYPES = ("timestamp", "timestamptz", "date")
"""PostgreSQL types read as timestamps (``timestamptz`` in UTC, a date at midnight)."""

_TYPES = """
    SELECT t.oid, format_type(t.oid, NULL), base.typname, base.typcategory
    FROM pg_type t JOIN pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
    WHERE t.oid = ANY(%s::oid[])
"""
"""Each result type's name, and the name and category of the type it is a domain of (or its own)."""

ONE_SELECT = " (--query takes one SELECT statement; custseg never changes the database)"
"""What a refused query is told, after the server's reason."""

# SQLSTATEs: a write in the read-only transaction; a syntax error; a WITH that inserts, in a subquery
_READ_ONLY_REFUSED, _SYNTAX_ERROR, _NOT_SUPPORTED = "25006", "42601", "0A000"


def is_database_url(data: object) -> bool:
    """Whether ``data`` names a database (a ``postgresql://`` URL), not a file."""
    return isinstance(data, str) and data.split("://", 1)[0].lower() in SCHEMES and "://" in data


def connection_settings(url: str) -> dict[str, object]:
    """Split a ``postgresql://user@host:port/database?option=value`` URL into connection settings.

    Raises
    ------
    ConfigError
        If the URL holds a password (it would stay in the shell's history and in process lists:
        give it in ``PGPASSWORD`` or ``.pgpass``) or names no database.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigError(
            f"{redacted(url)}: the URL holds a password; give it in the PGPASSWORD environment variable "
            "or a .pgpass file instead (it would stay in the shell's history)"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"{redacted(url)}: the URL names no database (postgresql://user@host:5432/DATABASE)")
    settings: dict[str, object] = {"host": parts.hostname or "localhost", "database": database}
    if parts.username:
        settings["user"] = unquote(parts.username)
    if parts.port:
        settings["port"] = parts.port
    settings.update(dict(parse_qsl(parts.query)))
    return settings


def redacted(url: str) -> str:
    """Return the URL without its password, as messages and run.json show it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def read_database(
    url: str, engine, *, table: str | None, query: str | None, column_map: Mapping[str, str] | None = None
) -> Source:
    """Read the mapped columns of a table or a query's result from PostgreSQL into the engine, in batches.

    A table's rows are numbered in their order on disk (``ORDER BY ctid``), which does not
    change between reads of an unchanged table; give a query with ``ORDER BY`` for another order.
    Nothing is written to the database (see the module's docstring).

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/database``, without a password.
    engine : DuckDBEngine or SparkEngine
        Where the rows go (`custseg.engine`).
    table, query : str or None
        Exactly one: the table (``schema.table`` allowed) or one SELECT statement.
    column_map : mapping of str to str, optional
        Canonical name -> column (``--map`` and ``[columns]``), as `custseg.schema.resolve_mapping` reads it.

    Returns
    -------
    Source
        ``columns`` names every column of the table or result; ``arrow`` holds the mapped ones only:
        ids and labels as text, amounts as numbers, the timestamp as a timestamp (each as text where
        the database holds text).

    Raises
    ------
    ConfigError, InputFileError, EmptyInputError, MissingColumnsError, InvalidValueError
        With one line naming the database and what went wrong or was refused.
    """
    import psycopg

    name = redacted(url)
    if (table is None) == (query is None):
        raise ConfigError(f"{name}: give the orders as --table NAME or --query \"SELECT ...\" (one of them)")
    settings = connection_settings(url)
    settings["dbname"] = settings.pop("database")
    try:
        con = psycopg.connect(**settings)
    except psycopg.Error as exc:  # libpq's message names the cause (refused, password, unknown database)
        raise InputFileError(f"{name}: cannot connect: {_reason(exc)}") from None
    # psycopg opens every transaction of this connection with BEGIN READ ONLY; none is committed. A
    # read-only session would do as well, but its startup option is one PgBouncer refuses by default.
    con.read_only = True
    what = f"table {table!r}" if table is not None else "the query"
    where = f"{name} {what}" if table is None else f"{name} table {table}"
    try:
        orders, order_by = _orders(con, table, query, name)
        described = _described(con, orders)
        names = [column.name for column in described]
        mapping = resolve_mapping(names, column_map or {}, source_name=where)
        # A column mapped twice (--map amount=Total --map order_total=Total) is read the stricter way.
        kinds = {column: "text" for column in mapping.columns.values()}
        for canonical, column in mapping.columns.items():
            if canonical == "invoiced_at":
                kinds[column] = "timestamp"
            elif canonical in NUMBER_COLUMNS and kinds[column] == "text":
                kinds[column] = "number"
        read_as = _read_as(con, described, kinds, where)
        arrow = _fetched(con, orders, order_by, read_as)
    except psycopg.Error as exc:
        raise InputFileError(f"{name}: cannot read {what}: {_refusal(exc, query)}") from None
    finally:
        con.close()  # without a commit: the transaction ends rolled back
    if arrow.num_rows == 0:
        raise EmptyInputError(f"{name}: {what} has no rows")
    source = read_frame(arrow, engine, name=where, file_format="postgresql")
    return dataclasses.replace(source, columns=names)


def _orders(
    con: psycopg.Connection, table: str | None, query: str | None, name: str
) -> tuple[sql.Composable, sql.Composable]:
    """Return the FROM item that holds the orders, and the ORDER BY that numbers a table's rows.

    Raises
    ------
    InputFileError
        If the server cannot parse the query, with its message.
    """
    from psycopg import sql

    if query is not None:
        text = _parsed(con, query, name)
        # In a FROM clause the query can only be one statement that changes nothing. The line
        # breaks keep a trailing -- comment from hiding the parenthesis.
        return sql.SQL("(\n{}\n) AS {}").format(sql.SQL(text), sql.Identifier(ALIAS)), sql.SQL("")
    relation = sql.Identifier(*table.split("."))
    found = con.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (relation.as_string(con),))
    kind = found.fetchone()
    # A table's rows have a place on disk (ctid); a view's have none and come in the server's order.
    order_by = sql.SQL(" ORDER BY ctid") if kind is not None and kind[0] in ("r", "m", "p") else sql.SQL("")
    return sql.SQL("{} AS {}").format(relation, sql.Identifier(ALIAS)), order_by


def _parsed(con: psycopg.Connection, query: str, name: str) -> str:
    """Return the query without a trailing ``;`` once the server has parsed it (parsing runs nothing).

    The server parses the query as the user wrote it, so that a syntax error is reported where
    the user made it, not inside custseg's SELECT around it.

    Raises
    ------
    InputFileError
        With the server's message: a syntax error, or more than one statement.
    """
    from psycopg import errors, pq

    text = query.rstrip().rstrip(";").rstrip()
    # The extended protocol's Parse message takes one statement and runs none.
    parsed = con.pgconn.prepare(b"", text.encode(con.info.encoding))
    if parsed.status == pq.ExecStatus.FATAL_ERROR:
        error = errors.error_from_result(parsed, encoding=con.info.encoding)
        hint = ONE_SELECT if error.sqlstate == _SYNTAX_ERROR else ""
        raise InputFileError(f"{name}: cannot read the query: {error.diag.message_primary}{hint}")
    return text


def _described(con: psycopg.Connection, orders: sql.Composable) -> list[psycopg.Column]:
    """Return the columns (names and types) of the orders, without fetching a row."""
    from psycopg import sql

    # A server-side cursor is declared and described; its rows are only fetched on FETCH.
    with con.cursor(name="custseg_columns") as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {}").format(orders))
        return list(cursor.description)


def _read_as(
    con: psycopg.Connection, described: list[psycopg.Column], kinds: dict[str, str], where: str
) -> dict[str, tuple[sql.Composable, pa.DataType]]:
    """Return, for each column read, the expression that reads it and its Arrow type.

    Raises
    ------
    InputFileError
        If a column read appears more than once in the result.
    InvalidValueError
        If an amount or timestamp column has a type that custseg cannot read as one.
    """
    from psycopg import sql

    names = [column.name for column in described]
    oids = {column.name: column.type_code for column in described}
    types = {oid: rest for oid, *rest in con.execute(_TYPES, (list(set(oids.values())),))}
    read_as = {}
    for column, kind in kinds.items():
        if names.count(column) > 1:
            places = ", ".join(str(i + 1) for i, other in enumerate(names) if other == column)
            raise InputFileError(
                f"{where}: column {column!r} appears more than once (columns {places}); give each column its own name"
            )
        type_name, base, category = types[oids[column]]
        value = sql.Identifier(ALIAS, column)
        if kind == "text" or category == "S":
            # Ids of any type (uuid, integer, numeric) and labels are read as their text.
            read_as[column] = (sql.SQL("{v}::text").format(v=value), pa.string())
        elif kind == "number" and base in NUMBER_TYPES:
            cast = "{v}::numeric::float8" if base == "money" else "{v}::float8"
            read_as[column] = (sql.SQL(cast).format(v=value), pa.float64())
        elif kind == "timestamp" and base in TIMESTAMP_TYPES:
            moment = "{v} AT TIME ZONE 'UTC'" if base == "timestamptz" else "{v}::timestamp"
            # Python holds the years 1 to 9999: a timestamp outside them (infinity) is invalid, as in a file.
            cast = f"CASE WHEN {moment} >= '0001-01-01' AND {moment} < '10000-01-01' THEN {moment} END"
            read_as[column] = (sql.SQL(cast).format(v=value), pa.timestamp("us"))
        else:
            wanted, target = ("a number", "numeric") if kind == "number" else ("a timestamp", "timestamp")
            raise InvalidValueError(
                f"{where}: column {column!r} is of type {type_name}, which custseg cannot read as {wanted}; "
                f'convert it in a --query (select ..., CAST("{column}" AS {target}) AS "{column}")'
            )
    return read_as


def _fetched(
    con: psycopg.Connection,
    orders: sql.Composable,
    order_by: sql.Composable,
    read_as: dict[str, tuple[sql.Composable, pa.DataType]],
) -> pa.Table:
    """Fetch the columns read, in batches of `BATCH_ROWS` rows, as an Arrow table."""
    from psycopg import sql

    schema = pa.schema([(column, arrow_type) for column, (_, arrow_type) in read_as.items()])
    selected = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(expression, sql.Identifier(column)) for column, (expression, _) in read_as.items()
    )
    rows_type = pa.struct(list(schema))
    batches = []
    with con.cursor(name="custseg_rows") as cursor:
        cursor.execute(sql.SQL("SELECT {} FROM {}{}").format(selected, orders, order_by))
        while rows := cursor.fetchmany(BATCH_ROWS):
            batches.append(pa.RecordBatch.from_struct_array(pa.array(rows, type=rows_type)))
    return pa.Table.from_batches(batches, schema=schema)


def _refusal(exc: psycopg.Error, query: str | None) -> str:
    """Say why the server refused to read the orders, in its words and custseg's."""
    if exc.sqlstate == _READ_ONLY_REFUSED:
        return f"{exc.diag.message_primary} (custseg never changes the database: nothing was changed)"
    if query is not None and exc.sqlstate in (_SYNTAX_ERROR, _NOT_SUPPORTED):
        # The query parsed on its own (`_parsed`): only custseg's SELECT around it refused it,
        # as it refuses a DELETE, COPY, SELECT INTO or a WITH that inserts.
        return "it is not a SELECT that only reads" + ONE_SELECT
    return exc.diag.message_primary or _reason(exc)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "password" in text.lower():
        text += " (give the password in PGPASSWORD or a .pgpass file)"
    return text or type(exc).__name__
