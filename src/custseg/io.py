"""Read a shop's export (CSV, gzip CSV, Parquet, Excel) into a table, and write tables out.

Users bring files from many systems: this module finds out how a file is encoded and delimited
and how its timestamps are written, so that nobody has to convert it by hand first, and it turns
every reading failure into one line naming the file and, where known, the row.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import gzip
import hashlib
import io as _io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from custseg.errors import EmptyInputError, EncodingError, InputFileError, InvalidValueError
from custseg.schema import TIMESTAMP_FORMATS, WALL_CLOCK, timestamp_format_counts

SOURCE_ROW = "__custseg_row"
"""Name of the 1-based row-position column added to every source table."""
RAW_TIMESTAMP = "__custseg_raw_timestamp"
"""The original text of a timestamp column that `parse_text_timestamps` turned into timestamps."""

_CHUNK = 1 << 24
_DELIMITERS = (",", ";", "\t", "|")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Source:
    """A source file read into the backend.

    Attributes
    ----------
    path : Path or str
        The file, with Spark a URL or table name, or `FRAME` for a table given in memory.
    file_format : str
        ``csv``, ``parquet``, ``xlsx``, ``table`` (a Spark table), ``dataframe`` (in memory) or
        ``postgresql`` (`custseg.database`).
    columns : list of str
        The file's own column names, in order.
    encoding, delimiter : str or None
        What a CSV was read with (None for other formats).
    arrow : pyarrow.Table or None
        The data a CSV, Excel file, table in memory or database was read into (with `SOURCE_ROW`);
        held so that its buffers outlive every query of ``table`` (the backend may scan them
        without copying).
    engine : DuckDBEngine or SparkEngine or None
        Where ``arrow`` goes when ``table`` is first used.
    registered : ibis.Table or None
        The table the engine read itself (Parquet, a Spark table).
    """

    path: Path | str
    file_format: str
    columns: list[str]
    encoding: str | None = None
    delimiter: str | None = None
    arrow: pa.Table | None = field(default=None, repr=False)
    engine: Any = field(default=None, repr=False)
    registered: ir.Table | None = field(default=None, repr=False)

    @functools.cached_property
    def table(self) -> ir.Table:
        """The source in the engine, of shape (n_rows, n_columns + 1): its columns plus `SOURCE_ROW`.

        A table read in this process goes to the engine on first use, so that only the columns a
        mapping uses (`narrowed`) travel to Spark.
        """
        if self.registered is not None:
            return self.registered
        return self.engine.register("source", self.arrow)


def narrowed(source: Source, keep: Iterable[str]) -> Source:
    """Return the source with only the columns ``keep`` (and `SOURCE_ROW`), for one read in this process.

    ``columns`` still lists every column of the file, for messages and run.json.
    """
    if source.arrow is None:
        return source
    wanted = set(keep) | {SOURCE_ROW}
    return dataclasses.replace(source, arrow=source.arrow.select([c for c in source.arrow.column_names if c in wanted]))


def file_format_of(path: Path) -> str:
    """Return ``parquet``, ``xlsx`` or ``csv`` from the file name (``.gz`` is CSV, compressed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and suffixes[-1] in (".xlsx", ".xlsm"):
        return "xlsx"
    return "csv"


def read_source(
    path: str | Path | pd.DataFrame | pa.Table,
    engine,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Source:
    """Read a file into the engine as a table with a row-position column.

    Parameters
    ----------
    path : str, Path, DataFrame or pyarrow.Table
        A ``.csv`` (any delimiter, UTF-8 with or without BOM, UTF-16 with BOM, or ISO-8859-1),
        ``.csv.gz``, ``.parquet`` or ``.xlsx`` file; or a table in memory (`read_frame`).
    engine : DuckDBEngine or SparkEngine
        Where the table lives (`custseg.engine`).
    encoding, delimiter : str, optional
        Force a CSV encoding or delimiter instead of detecting it.

    Raises
    ------
    InputFileError, EmptyInputError, EncodingError, InvalidValueError
        With a message naming the file and, where known, the row.
    """
    if isinstance(path, pd.DataFrame | pa.Table):
        return read_frame(path, engine)
    if engine.name == "spark" and "://" in str(path):
        if file_format_of(Path(str(path).rsplit("/", 1)[-1])) != "parquet":
            raise InputFileError(f"{path}: Spark reads Parquet from URLs; give a .parquet file or folder")
        return _read_parquet(str(path), engine)
    path = Path(path)
    if not path.exists():
        if engine.name == "spark" and engine.has_table(str(path)):
            return _positioned(engine.read_table(str(path)), str(path), "table")
        raise InputFileError(f"{path}: no such file" + (" or Spark table" if engine.name == "spark" else ""))
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise EmptyInputError(f"{path}: the file is empty")
    file_format = file_format_of(path)
    if file_format == "parquet":
        return _read_parquet(path, engine)
    if file_format == "xlsx":
        table = _read_xlsx(path)
        return _register(path, engine, table, "xlsx")
    encoding = check_encoding(path, encoding, delimiter)
    header = _header_line(path, encoding)
    if not header.strip():
        raise EmptyInputError(f"{path}: the file is empty")
    delimiter = delimiter or detect_delimiter(header)
    table = _read_csv(path, encoding, delimiter, header)
    return _register(path, engine, table, "csv", encoding=encoding, delimiter=delimiter)


FRAME = "DataFrame"
"""How messages and run.json name a table given in memory (its rows are numbered from 1)."""


def read_frame(frame: pd.DataFrame | pa.Table, engine, *, name: str = FRAME, file_format: str = "dataframe") -> Source:
    """Read a pandas DataFrame or Arrow table in memory as a Parquet file's columns are read.

    The index of a DataFrame is not a column. Timestamps with a time zone keep the shop's wall
    clock in that zone, as in a Parquet file. ``name`` and ``file_format`` say where the table
    came from (a database's rows are read this way).

    Raises
    ------
    InputFileError
        If two columns have the same name, or a column cannot be held by Arrow (values of mixed types).
    """
    if isinstance(frame, pd.DataFrame):
        frame = frame.rename(columns=str)
        # Arrow refuses repeated names with a message of its own: say it as for a file.
        _check_unique_names(name, list(frame.columns))
        try:
            frame = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputFileError(f"{name}: cannot be read: {_first_line(exc)}") from None
    zoned = [i for i, f in enumerate(frame.schema) if pa.types.is_timestamp(f.type) and f.type.tz]
    for i in zoned:
        frame = frame.set_column(i, frame.field(i).name, pc.local_timestamp(frame.column(i)))
    return _register(name, engine, frame, file_format)


def frame_sha256(source: Source) -> str:
    """SHA-256 of a table given in memory (its Arrow IPC stream), to fingerprint it like a file."""
    sink = pa.BufferOutputStream()
    table = source.arrow.drop_columns([SOURCE_ROW])
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _register(path: Path | str, engine, table: pa.Table, file_format: str, **kwargs) -> Source:
    if table.num_rows == 0:
        raise EmptyInputError(f"{path}: the file has a header but no data rows")
    columns = list(table.column_names)
    _check_unique_names(path, columns)
    table = table.append_column(SOURCE_ROW, pa.array(range(1, table.num_rows + 1), pa.int64()))
    return Source(path=path, file_format=file_format, columns=columns, arrow=table, engine=engine, **kwargs)


def _check_unique_names(path: Path | str, columns: list[str]) -> None:
    """Refuse a header that names a column twice: a mapping could not say which one it means.

    Raises
    ------
    InputFileError
        Naming the first repeated column and its positions.
    """
    repeated = [name for name in dict.fromkeys(columns) if columns.count(name) > 1]
    if repeated:
        places = ", ".join(str(i + 1) for i, name in enumerate(columns) if name == repeated[0])
        raise InputFileError(
            f"{path}: column {repeated[0]!r} appears more than once in the header (columns {places}); "
            "give each column its own name"
        )


def _read_parquet(path: str | Path, engine) -> Source:
    try:
        table = engine.read_parquet(path)
    except Exception as exc:  # the backend's own errors vary by engine and version
        raise InputFileError(f"{path}: cannot be read as Parquet: {_first_line(exc)}") from None
    # Instants written with the shop's time zone: the engines read them as UTC, the shop meant its clock.
    zones = _parquet_time_zones(path)
    if zones:
        table = table.mutate(**{column: engine.local_time(table[column], zone) for column, zone in zones.items()})
    return _positioned(table, path, "parquet")


def _parquet_time_zones(path: str | Path) -> dict[str, str]:
    """Timestamp columns of a Parquet file, folder or URL that carry a time zone other than UTC, and the zone."""
    import pyarrow.dataset as ds

    try:
        schema = ds.dataset(str(path), format="parquet").schema
    except (OSError, ValueError, pa.ArrowException):
        # A store this process cannot list (HDFS without its client library): the engine's reading stands.
        return {}
    return {
        f.name: f.type.tz
        for f in schema
        if pa.types.is_timestamp(f.type) and f.type.tz and f.type.tz.upper() not in ("UTC", "Z", "+00:00", "ETC/UTC")
    }


def _positioned(table: ir.Table, path: str | Path, file_format: str) -> Source:
    """Wrap a table read by the engine as a Source, ``file_row_number`` turned into `SOURCE_ROW`."""
    columns = [c for c in table.columns if c != "file_row_number"]
    if table.count().execute() == 0:
        raise EmptyInputError(f"{path}: the file has a header but no data rows")
    table = table.mutate(**{SOURCE_ROW: table.file_row_number + 1}).drop("file_row_number")
    return Source(path=path, file_format=file_format, columns=columns, registered=table)


def _read_xlsx(path: Path) -> pa.Table:

    try:
        # The header is read as a row: pandas would rename a repeated name (Quantity.1) silently.
        sheet = pd.read_excel(path, dtype=str, header=None, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise InputFileError(f"{path}: cannot be read as an Excel workbook: {_first_line(exc)}") from None
    if sheet.empty:
        return pa.table({})
    names = [
        str(name).strip() if pd.notna(name) and str(name).strip() else f"Unnamed: {i}"
        for i, name in enumerate(sheet.iloc[0])
    ]
    body = sheet.iloc[1:].astype("object")
    body = body.where(body.notna(), None)
    return pa.Table.from_arrays([pa.array(body[c].tolist(), pa.string()) for c in body.columns], names=names)


def _open_bytes(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _chunks(path: Path) -> Iterator[bytes]:
    try:
        with _open_bytes(path) as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk
    except (OSError, EOFError) as exc:
        raise InputFileError(f"{path}: cannot be read: {_first_line(exc)}") from None


def check_encoding(path: Path, encoding: str | None = None, delimiter: str | None = None) -> str:
    """Return the text encoding of a CSV file, checking every byte of it.

    Without ``encoding``: a byte-order mark decides; else UTF-8 if the whole file decodes as
    UTF-8; else Windows-1252 if the file holds its curly quotes, dashes or euro sign (bytes
    0x80-0x9F, control codes in ISO-8859-1) and decodes with it; else ISO-8859-1. With
    ``encoding``: the whole file must decode with it. ``delimiter`` (default: detected) serves
    to name the row of a byte that does not decode.

    Raises
    ------
    EncodingError
        If the encoding is unknown, the file holds NUL bytes (a binary file, or UTF-16 without a
        byte-order mark), or it does not decode with the given encoding (the message names the row).
    """
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise EncodingError(f"{path}: unknown encoding {encoding!r}") from None
    chunks = _chunks(path)
    first = next(chunks, b"")
    detected = next((name for bom, name in _BOMS if first.startswith(bom)), None)
    chosen = encoding or detected or "utf-8"
    decoder = codecs.getincrementaldecoder(chosen)()
    read = 0  # bytes of the file before ``chunk``
    chunk = first
    while chunk:
        if b"\x00" in chunk and not chosen.startswith("utf-16"):
            raise EncodingError(
                f"{path}: cannot be read as text: it holds NUL bytes "
                "(a binary file, or UTF-16 without a byte-order mark; give --encoding)"
            )
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            if encoding is None and chosen == "utf-8":
                return _single_byte_encoding(itertools.chain([chunk], chunks))
            # The decoder holds back an incomplete character from the chunk before: it starts ``exc.object``.
            offset = read - (len(exc.object) - len(chunk)) + exc.start
            raise EncodingError(
                f"{path}: {_row_at(path, chosen, delimiter, offset)} is not valid {chosen} "
                f"(byte 0x{exc.object[exc.start]:02x}); give the right --encoding"
            ) from None
        read += len(chunk)
        chunk = next(chunks, b"")
    return chosen


_C1_BYTES = re.compile(rb"[\x80-\x9f]")


def _single_byte_encoding(chunks: Iterator[bytes]) -> str:
    """Return cp1252 if bytes 0x80-0x9F occur and all decode in it, else iso-8859-1."""
    seen_c1 = False
    for chunk in chunks:
        if _C1_BYTES.search(chunk):
            seen_c1 = True
            try:
                chunk.decode("cp1252")
            except UnicodeDecodeError:
                return "iso-8859-1"
    return "cp1252" if seen_c1 else "iso-8859-1"


def _header_line(path: Path, encoding: str) -> str:
    with _open_bytes(path) as raw:
        text = _io.TextIOWrapper(raw, encoding=encoding, newline="")
        return text.readline()


def detect_delimiter(header: str) -> str:
    """Return the delimiter among ``, ; TAB |`` that splits the header line most often."""
    counts = {d: len(next(csv.reader([header], delimiter=d))) for d in _DELIMITERS}
    return max(_DELIMITERS, key=lambda d: counts[d])


def _read_csv(path: Path, encoding: str, delimiter: str, header: str) -> pa.Table:
    names = [name.strip() for name in next(csv.reader([header.lstrip("\ufeff")], delimiter=delimiter))]
    malformed: list[pa_csv.InvalidRow] = []

    def keep_malformed(row: pa_csv.InvalidRow) -> str:
        malformed.append(row)
        return "skip"

    read_options = pa_csv.ReadOptions(
        encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
        column_names=names,
        skip_rows=1,
        block_size=1 << 24,
    )
    # Quoted values may hold line breaks (a Shopify order's notes, a billing address).
    parse_options = pa_csv.ParseOptions(
        delimiter=delimiter, invalid_row_handler=keep_malformed, newlines_in_values=True
    )
    convert_options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=False
    )
    # The header line, byte-order mark included, is skipped: the names come from `header`.
    with _open_bytes(path) as stream:
        try:
            table = pa_csv.read_csv(
                stream, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
        except pa.ArrowInvalid as exc:
            raise InvalidValueError(f"{path}: cannot be read as CSV: {_first_line(exc)}") from None
    if malformed:
        # pyarrow does not number the rows it skips, and may meet them out of order (blocks are parsed in threads).
        first = _first_row_of_width_not(path, encoding, delimiter, len(names))
        row, width = (f"row {first[0]}", first[1]) if first else ("a row", malformed[0].actual_columns)
        raise InvalidValueError(
            f"{path}: {row} has {width} fields, the header has {len(names)} "
            f"({len(malformed)} such row(s)); check the delimiter (--delimiter) and quoting"
        )
    return table


def _numbered_rows(text: _io.TextIOBase, delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    """Give the rows of a CSV the numbers `SOURCE_ROW` gives them, for messages: ``(row, fields)`` from 1.

    A row is a record, not a line: a quoted value may hold line breaks. The header is the first
    line, and a blank line is no row, as when the file is read. ``delimiter`` None: detected from
    the header.

    Raises
    ------
    csv.Error
        For a value longer than the csv module reads (131,072 characters).
    """
    header = text.readline()
    records = csv.reader(text, delimiter=delimiter or detect_delimiter(header))
    return enumerate((fields for fields in records if fields), start=1)


def _first_row_of_width_not(path: Path, encoding: str, delimiter: str, width: int) -> tuple[int, int] | None:
    """Return the first row of a CSV whose number of fields is not ``width``, and its number of fields."""
    with _open_bytes(path) as raw:
        rows = _numbered_rows(_io.TextIOWrapper(raw, encoding=encoding, newline=""), delimiter)
        try:
            return next(((number, len(fields)) for number, fields in rows if len(fields) != width), None)
        except csv.Error:
            return None


def _row_at(path: Path, encoding: str, delimiter: str | None, offset: int) -> str:
    """Return ``row N`` for the row of a CSV that holds byte ``offset``, or ``the header``."""
    with _open_bytes(path) as raw:
        text = raw.read(offset).decode(encoding, errors="replace")
    # One character more puts the row that holds the offset among those read, even at the start of a line.
    rows = _numbered_rows(_io.StringIO(text + "x", newline=""), delimiter)
    try:
        number = max((number for number, _ in rows), default=0)
    except csv.Error:
        return "a row"
    return f"row {number}" if number else "the header"


def detect_timestamp_format(table: ir.Table, column: str) -> tuple[str | None, list[str]]:
    """Find the strptime format that parses the most values of a text timestamp column.

    Returns
    -------
    fmt : str or None
        The best format, or None when the column is already typed or no format parses a value.
    tied : list of str
        Other formats that parse as many values (e.g. day-first and month-first on dates whose
        day is never above 12): the choice is ambiguous and the user may want ``--date-format``.
    """
    if not table[column].type().is_string():
        return None, []
    counts = timestamp_format_counts(table, column).execute().iloc[0]
    best = int(counts.max())
    if best == 0:
        return None, []
    winners = [fmt for i, fmt in enumerate(TIMESTAMP_FORMATS) if int(counts[f"f{i}"]) == best]
    return winners[0], winners[1:]


def _without_fraction(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Drop fractional seconds and a UTC offset after a time (`WALL_CLOCK`): the shop's own clock is kept."""
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return pc.replace_substring_regex(text, pattern=WALL_CLOCK, replacement=r"\1")


def detect_text_timestamp_format(values: pa.ChunkedArray | pa.Array) -> tuple[str | None, list[str]]:
    """Find the strptime format that parses the most distinct values of a text column (in Arrow).

    Fractional seconds are ignored. Returns the best format (None when no format parses a value)
    and the other formats that parse as many, as `detect_timestamp_format` does.
    """
    distinct = _without_fraction(pc.unique(values.cast(pa.string())))
    counts = [
        int(pc.count(pc.strptime(distinct, format=fmt, unit="us", error_is_null=True)).as_py())
        for fmt in TIMESTAMP_FORMATS
    ]
    best = max(counts)
    if best == 0:
        return None, []
    winners = [fmt for fmt, count in zip(TIMESTAMP_FORMATS, counts, strict=True) if count == best]
    return winners[0], winners[1:]


def parse_text_timestamps(source: Source, column: str, fmt: str | None) -> Source:
    """Turn a text timestamp column of a source read in this process into timestamps, in Arrow.

    The original text is kept in `RAW_TIMESTAMP`, so that a value that does not parse can be
    reported as it was written. Values that do not parse become null.
    """
    text = source.arrow.column(column)
    parsed = pc.strptime(_without_fraction(text), format=fmt or "%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
    table = source.arrow.set_column(source.arrow.column_names.index(column), column, parsed)
    return dataclasses.replace(source, arrow=table.append_column(RAW_TIMESTAMP, text))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
