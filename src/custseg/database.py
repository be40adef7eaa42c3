"""Read orders from a PostgreSQL database, through Ibis's PostgreSQL backend.

Larger shops keep their orders in a database; exporting them to a file first loses types and
time. A table or a query is read in batches into the engine, numbered like a file's rows, and then
mapped with the same presets and ``--map`` as a file. The password never passes through custseg:
libpq reads it from ``PGPASSWORD`` or a ``.pgpass`` file (``PGPASSFILE``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from custseg.errors import ConfigError, EmptyInputError, InputFileError
from custseg.io import Source, read_frame

SCHEMES = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL database: ``postgresql://user@host:5432/shop``."""

BATCH_ROWS = 100_000
"""Rows fetched from the server per batch."""


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


def _quoted(table: str) -> str:
    """Quote a table name, optionally schema-qualified, as an SQL identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


def read_database(url: str, engine, *, table: str | None, query: str | None) -> Source:
    """Read a table or a query's result from PostgreSQL into the engine, in batches.

    A table's rows are numbered in their order on disk (``ORDER BY ctid``), which does not
    change between reads of an unchanged table; give a query with ``ORDER BY`` for another order.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/database``, without a password.
    engine : DuckDBEngine or SparkEngine
        Where the rows go (`custseg.engine`).
    table, query : str or None
        Exactly one: the table (``schema.table`` allowed) or a SELECT statement.

    Raises
    ------
    ConfigError, InputFileError, EmptyInputError
        With one line naming the database and what went wrong.
    """
    import ibis

    name = redacted(url)
    if (table is None) == (query is None):
        raise ConfigError(f"{name}: give the orders as --table NAME or --query \"SELECT ...\" (one of them)")
    settings = connection_settings(url)
    try:
        con = ibis.postgres.connect(**settings)
    except Exception as exc:  # psycopg's errors name the cause (refused, password, unknown database)
        raise InputFileError(f"{name}: cannot connect: {_reason(exc)}") from None
    what = f"table {table!r}" if table is not None else "the query"
    try:
        if table is not None:
            try:
                expression = con.sql(f"SELECT * FROM {_quoted(table)} ORDER BY ctid")
            except Exception:  # a view has no ctid: its rows come in the server's order
                expression = con.sql(f"SELECT * FROM {_quoted(table)}")
        else:
            expression = con.sql(query)
        batches = expression.to_pyarrow_batches(chunk_size=BATCH_ROWS)
        arrow = pa.Table.from_batches(list(batches), schema=batches.schema)
    except Exception as exc:  # the server's message names the missing table, column or syntax error
        raise InputFileError(f"{name}: cannot read {what}: {_reason(exc)}") from None
    finally:
        con.disconnect()
    if arrow.num_rows == 0:
        raise EmptyInputError(f"{name}: {what} has no rows")
    where = f"{name} {what}" if table is None else f"{name} table {table}"
    return read_frame(arrow, engine, name=where, file_format="postgresql")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "password" in text.lower():
        text += " (give the password in PGPASSWORD or a .pgpass file)"
    return text or type(exc).__name__
