"""Where the transaction-level stages run: DuckDB on this machine, or Apache Spark.

Both engines run the same Ibis expressions of every stage. An engine supplies only what cannot
be a table expression: the connection, reading a Parquet file with its row positions, taking a
small table from Python, storing a computed table, writing Parquet, the newest-first return
allocation, which is sequential within a (customer, product) group, and running a Python
function (a fitted model) over a table batch by batch.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from custseg.errors import ConfigError, InputFileError

ENGINES = ("duckdb", "spark")
DATABASE_FILE = "custseg.duckdb"
SPARK_TABLES = "tables"
"""Folder of a Spark run's stored tables, one Parquet dataset per table."""
ALLOCATION_SCHEMA = "row_id long, allocated_quantity double"
BATCH_ROWS = 100_000
"""Rows per batch when a Python function runs over a table in this process."""


MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
"""A memory size as DuckDB reads it."""


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs the transaction-level stages, and how.

    Attributes
    ----------
    name : str
        ``duckdb`` (default, in-process) or ``spark``.
    memory_limit : str or None
        DuckDB's memory limit (e.g. ``"3GB"``); beyond it, DuckDB spills to the output folder.
    spark_master : str
        Spark master URL: ``local[*]`` (default), ``local[2]``, ``spark://host:7077``, ``yarn``,
        or a Spark Connect URL ``sc://host:15002``.
    spark_conf : dict of str to str
        Spark settings passed through as given (e.g. ``spark.driver.memory``).
    max_driver_customers : int
        The most customers whose rows come into custseg's own process (the driver) for the
        customer-level stages. Above it, models learn from a sample, the engine assigns every
        customer batch by batch, and profiles are read from the sample with exact sizes.
    """

    name: str = "duckdb"
    memory_limit: str | None = None
    spark_master: str = "local[*]"
    spark_conf: dict[str, str] = field(default_factory=dict)
    max_driver_customers: int = 1_000_000

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ConfigError(f"engine {self.name!r} is not one of {', '.join(ENGINES)}")
        if self.max_driver_customers < 1:
            raise ConfigError(f"[engine] max_driver_customers={self.max_driver_customers} must be at least 1")
        if self.memory_limit is not None and not MEMORY_SIZE.fullmatch(str(self.memory_limit)):
            raise ConfigError(f"memory_limit={self.memory_limit!r} must be a size such as 3GB, 500MB or 2.5GiB")


def allocate_in_python(events: ir.Table, allocate: Callable[[pd.DataFrame], pd.DataFrame]) -> ir.Table:
    """Run ``allocate`` on all ``events`` at once in this process; the result as a memtable."""
    return ibis.memtable(allocate(events.to_pandas()))


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_timezone(zone: str, value: datetime.datetime) -> datetime.datetime:
    """DuckDB's timezone(zone, timestamptz): the local time in the zone."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_from_utc_timestamp(value: datetime.datetime, zone: str) -> datetime.datetime:
    """Spark's from_utc_timestamp(timestamp, zone): the local time in the zone."""


class DuckDBEngine:
    """DuckDB in this process, every table in ``custseg.duckdb`` of the output folder."""

    name = "duckdb"

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.backend = None

    def open(self, folder: Path) -> ibis.BaseBackend:
        """Start a fresh ``custseg.duckdb`` in ``folder`` and return its connection."""
        import duckdb

        database = folder / DATABASE_FILE
        for stale in (database, database.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        config = {"temp_directory": str(folder / "spill")}
        if self.options.memory_limit:
            config["memory_limit"] = self.options.memory_limit
        self.folder = folder
        self.backend = ibis.duckdb.connect(database, **config)
        # DuckDB draws its own progress bar on long queries, through custseg's output. In Jupyter
        # without ipywidgets it refuses to change the setting; it draws no bar there either.
        with contextlib.suppress(duckdb.InvalidInputException):
            self.backend.raw_sql("SET enable_progress_bar = false")
        return self.backend

    def read_parquet(self, path: Path) -> ir.Table:
        """Read the file as a table with its 0-based row positions in ``file_row_number``."""
        return self.backend.read_parquet(path, file_row_number=True)

    @staticmethod
    def local_time(value: ir.TimestampValue, zone: str) -> ir.TimestampValue:
        """Return the wall-clock time in ``zone`` of an instant (a timestamp with a time zone)."""
        return _duckdb_timezone(zone, value)

    def register(self, name: str, table: pa.Table) -> ir.Table:
        """Make an Arrow table from this process a (temporary) table ``name``."""
        return self.backend.create_table(name, table, temp=True, overwrite=True)

    def allocate(self, events: ir.Table, allocate: Callable[[pd.DataFrame], pd.DataFrame]) -> ir.Table:
        """Run ``allocate`` on the events in this process (`allocate_in_python`)."""
        return allocate_in_python(events, allocate)

    def map_batches(
        self, name: str, table: ir.Table, function: Callable[[pd.DataFrame], pd.DataFrame], schema: pa.Schema
    ) -> ir.Table:
        """Store ``function`` applied to ``table`` batch by batch (`BATCH_ROWS`) as the temporary ``name``.

        ``function`` maps a DataFrame of rows to a DataFrame with ``schema``'s columns; its results
        go through a Parquet file in the output folder, so that neither side is held whole.
        """
        import pyarrow.parquet as pq

        staging = self.folder / f"{name}.batches.parquet"
        try:
            with pq.ParquetWriter(staging, schema) as writer:
                for batch in table.to_pyarrow_batches(chunk_size=BATCH_ROWS):
                    result = function(batch.to_pandas())
                    writer.write_table(pa.Table.from_pandas(result, schema=schema, preserve_index=False))
            return self.backend.create_table(name, self.backend.read_parquet(staging), overwrite=True, temp=True)
        finally:
            staging.unlink(missing_ok=True)

    def save(self, name: str, table: ir.Table | pd.DataFrame, *, temp: bool = False) -> ir.Table:
        """Compute ``table`` into the database as ``name`` (replacing it) and return the stored table."""
        return self.backend.create_table(name, table, overwrite=True, temp=temp)

    def write_parquet(self, table: ir.Table, target: Path) -> None:
        """Write one Parquet file (zstd)."""
        table.to_parquet(target, compression="zstd")

    def close(self) -> None:
        """Close the connection (the database file stays)."""
        if self.backend is not None:
            self.backend.disconnect()
            self.backend = None


class SparkEngine:
    """Apache Spark through Ibis's PySpark backend; stored tables are Parquet datasets in ``tables/``.

    The session is created with the options' master and settings, or reused if this process
    already has one (its static settings then stay as they were).
    """

    name = "spark"

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.backend = None
        self._stored: dict[str, Path] = {}
        self._temporary: set[str] = set()
        self._versions = itertools.count()

    def open(self, folder: Path) -> ibis.BaseBackend:
        """Start (or join) the Spark session, clear ``folder/tables`` and return the connection."""
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise ConfigError(
                "--engine spark needs pyspark: pip install 'custseg[spark]' (and Java 17 or 21)"
            ) from None
        self.folder = folder
        shutil.rmtree(folder / SPARK_TABLES, ignore_errors=True)
        master = self.options.spark_master
        builder = SparkSession.builder.appName("custseg")
        builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
        settings = {
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # Pandas writes nanosecond timestamps that Spark reads only as integers (see read_parquet).
            "spark.sql.legacy.parquet.nanosAsLong": "true",
        }
        if master.startswith("local"):
            # Python workers (the return allocation) must import custseg: run them with this
            # interpreter, not whatever python3 is first on the PATH (PySpark reads only the
            # environment for local workers). On a cluster, executors need custseg in their Python.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        settings.update(self.options.spark_conf)
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # Java missing or the cluster unreachable: Spark's own errors vary
            raise ConfigError(f"cannot start Spark at {master}: {str(exc).strip().splitlines()[0]}") from None
        for key in ("spark.sql.session.timeZone", "spark.sql.legacy.parquet.nanosAsLong"):
            session.conf.set(key, settings[key])
        if master.startswith("local"):
            # Spark's per-task warnings would scroll through custseg's own output.
            session.sparkContext.setLogLevel("ERROR")
        self.session = session
        self.backend = ibis.pyspark.connect(session)
        return self.backend

    def read_parquet(self, path: str | Path) -> ir.Table:
        """Read Parquet (a file, folder or URL) with 0-based row positions in ``file_row_number``."""
        return self._with_row_positions(self.session.read.parquet(str(path)))

    @staticmethod
    def local_time(value: ir.TimestampValue, zone: str) -> ir.TimestampValue:
        """Return the wall-clock time in ``zone`` of an instant (the session's time zone is UTC)."""
        return _spark_from_utc_timestamp(value, zone)

    def has_table(self, name: str) -> bool:
        """Whether ``name`` is a table or view of the Spark session's catalog."""
        try:
            return bool(self.session.catalog.tableExists(name))
        except Exception:  # a name Spark cannot parse is no table
            return False

    def read_table(self, name: str) -> ir.Table:
        """Read a catalog table backed by files, with 0-based row positions in ``file_row_number``.

        Raises
        ------
        InputFileError
            If the table's rows have no file position (not a file-based table).
        """
        try:
            return self._with_row_positions(self.session.table(name))
        except Exception as exc:  # Spark's analysis errors vary by source and version
            raise InputFileError(
                f"{name}: Spark table without file row positions ({str(exc).strip().splitlines()[0]}); "
                "write it to Parquet and give that path"
            ) from None

    def _with_row_positions(self, frame):
        """Add 0-based row positions across the files in name order, as ``file_row_number``.

        From Spark's per-file row index and per-file row counts: no global sort, no single
        partition. Nanosecond timestamps, which Spark reads as integers, become timestamps again.
        """
        from pyspark.sql import functions as F

        files = sorted(frame.inputFiles())
        for column in _nanosecond_columns(files[0]) if files else []:
            frame = frame.withColumn(column, F.timestamp_micros(F.floor(F.col(column) / 1000)).cast("timestamp_ntz"))
        frame = frame.withColumn("__file", F.col("_metadata.file_path")).withColumn(
            "__row", F.col("_metadata.row_index")
        )
        sizes = frame.groupBy("__file").count().orderBy("__file").toPandas()
        offsets = sizes.assign(__offset=sizes["count"].cumsum() - sizes["count"])[["__file", "__offset"]]
        offsets = self.session.createDataFrame(offsets)
        frame = frame.join(F.broadcast(offsets), "__file").withColumn(
            "file_row_number", F.col("__offset") + F.col("__row")
        )
        frame.drop("__file", "__row", "__offset").createOrReplaceTempView("source")
        return self.backend.table("source")

    def register(self, name: str, table: pa.Table) -> ir.Table:
        """Make an Arrow table from this process a temporary view ``name``."""
        self.session.createDataFrame(table).createOrReplaceTempView(name)
        return self.backend.table(name)

    def allocate(self, events: ir.Table, allocate: Callable[[pd.DataFrame], pd.DataFrame]) -> ir.Table:
        """Run ``allocate`` inside Spark, once per partition of whole (customer, product) groups.

        The events are hash-partitioned by (customer, product), so every group sits in one
        partition; one call per partition, not one per group (a grouped pandas UDF pays a pandas
        call for each of hundreds of thousands of small groups).
        """
        frame = self._frame(events)
        partitions = int(self.session.conf.get("spark.sql.shuffle.partitions"))

        def per_partition(batches):
            batches = list(batches)
            if batches:
                yield allocate(pd.concat(batches, ignore_index=True))

        grouped = frame.repartition(partitions, "customer_id", "product_key")
        allocated = grouped.mapInPandas(per_partition, schema=ALLOCATION_SCHEMA)
        return self.save("return_allocation", allocated, temp=True)

    def map_batches(
        self, name: str, table: ir.Table, function: Callable[[pd.DataFrame], pd.DataFrame], schema: pa.Schema
    ) -> ir.Table:
        """Store ``function`` applied to ``table`` inside Spark, batch by batch, as the temporary ``name``.

        ``function`` (pickled to the executors with what it holds, e.g. a fitted model) maps a
        DataFrame of rows to a DataFrame with ``schema``'s columns; Spark hands it Arrow batches
        (``spark.sql.execution.arrow.maxRecordsPerBatch``) of each partition.
        """
        from pyspark.sql.pandas.types import from_arrow_schema

        def per_batch(batches):
            for batch in batches:
                yield function(batch)

        mapped = self._frame(table).mapInPandas(per_batch, schema=from_arrow_schema(schema))
        return self.save(name, mapped, temp=True)

    def save(self, name: str, table, *, temp: bool = False) -> ir.Table:
        """Compute ``table`` into a new Parquet dataset and point the view ``name`` at it."""
        from pyspark.sql import DataFrame

        if isinstance(table, DataFrame):
            frame = table
        elif isinstance(table, pd.DataFrame):
            frame = self.session.createDataFrame(pa.Table.from_pandas(table, preserve_index=False))
        else:
            frame = self._frame(table)
        # A new folder per version: the table being replaced may be read by the new one.
        target = self.folder / SPARK_TABLES / f"{name}.{next(self._versions)}"
        frame.write.parquet(str(target), compression="zstd")
        self.session.read.parquet(str(target)).createOrReplaceTempView(name)
        previous = self._stored.get(name)
        self._stored[name] = target
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        if temp:
            self._temporary.add(name)
        else:
            # A table first cached under its name and then kept (`custseg.pipeline.Step.keeps`) is kept.
            self._temporary.discard(name)
        return self.backend.table(name)

    def write_parquet(self, table: ir.Table, target: Path) -> None:
        """Write a Parquet dataset (a folder of part files) named ``target``."""
        shutil.rmtree(target, ignore_errors=True)
        target.unlink(missing_ok=True)
        self._frame(table).write.parquet(str(target), compression="zstd")

    def _frame(self, table: ir.Table):
        """Return the Spark DataFrame of an Ibis expression (its in-memory tables registered first)."""
        self.backend._run_pre_execute_hooks(table)
        return self.session.sql(self.backend.compile(table))

    def close(self) -> None:
        """Give stored tables their final names (``tables/<name>``) and drop temporary ones."""
        if self.backend is None:
            return
        for name, path in self._stored.items():
            self.session.catalog.dropTempView(name)
            if name in self._temporary:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.rename(path.with_name(name))
        self._stored.clear()
        self.backend = None


def _nanosecond_columns(parquet_file: str) -> list[str]:
    """Columns stored as nanosecond timestamps (read by Spark as integers), from a file's footer.

    Local files and URLs that pyarrow can open (file:, s3://, hdfs://, gs://); in others (e.g.
    s3a://) none are found.
    """
    import urllib.parse

    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    location = urllib.parse.urlparse(parquet_file)
    try:
        if location.scheme in ("", "file"):
            schema = pq.read_schema(urllib.parse.unquote(location.path))
        else:
            filesystem, where = pafs.FileSystem.from_uri(parquet_file)
            schema = pq.read_schema(where, filesystem=filesystem)
    except (pa.ArrowException, OSError, ValueError):
        return []
    return [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]


def make_engine(options: EngineOptions) -> DuckDBEngine | SparkEngine:
    """Return the engine named by ``options.name``."""
    return SparkEngine(options) if options.name == "spark" else DuckDBEngine(options)


def stored_tables(folder: Path) -> dict[str, Path]:
    """List the Parquet datasets a Spark run left in ``folder/tables``, by table name."""
    tables = folder / SPARK_TABLES
    return {p.name: p for p in sorted(tables.iterdir()) if p.is_dir()} if tables.is_dir() else {}
