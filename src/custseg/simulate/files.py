"""Which files does a simulation write, and where? The log and its two truth tables.

The log is Parquet or CSV (by the file's extension), in the UCI layout or as Shopify's orders
export; beside it go the planted segment of every customer and the planted kind of every product.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from custseg.errors import ConfigError
from custseg.simulate.catalogue import catalogue_table
from custseg.simulate.shopify import as_shopify_export, emails
from custseg.simulate.transactions import iter_simulation


@dataclass(frozen=True)
class SimulatedFiles:
    """Paths written by `simulate_to_files`, and how many log rows and customers they hold."""

    log: Path
    customers: Path
    products: Path
    rows: int
    customers_with_id: int


def companion_paths(out: Path) -> tuple[Path, Path]:
    """Where the planted segments and products of a log file go: ``NAME.customers.EXT`` etc."""
    suffix = "".join(out.suffixes[-2:]) if out.name.endswith(".csv.gz") else out.suffix
    stem = out.name[: -len(suffix)] if suffix else out.name
    return out.with_name(f"{stem}.customers{suffix}"), out.with_name(f"{stem}.products{suffix}")


LAYOUTS = ("uci", "shopify")
"""Layouts `simulate_to_files` writes: the UCI Online Retail log, or Shopify's orders export (CSV)."""


def simulate_to_files(out: str | Path, n_customers: int, seed: int = 0, layout: str = "uci") -> SimulatedFiles:
    """Write a simulated log (Parquet, or CSV by extension) and its two truth tables.

    The CSV is the common export: ``InvoiceDate`` as ``12/01/2010 08:26`` and ``CustomerID`` as
    an integer or empty. The truth tables are ``NAME.customers.EXT`` (customer_id,
    planted_segment) and ``NAME.products.EXT`` (product_id, description, planted_kind, unit_price).
    With ``layout="shopify"`` the log is Shopify's orders export (`as_shopify_export`, CSV only) and
    the planted customers are known by their email.
    """
    out = Path(out)
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout}: unknown layout; known: {', '.join(LAYOUTS)}")
    if out.suffix.lower() not in (".parquet", ".csv", ".gz"):
        raise ConfigError(f"--out {out}: the file name must end in .parquet, .csv or .csv.gz")
    if layout == "shopify" and out.suffix.lower() == ".parquet":
        raise ConfigError(f"--out {out}: Shopify's export is a CSV file; give a .csv or .csv.gz name")
    out.parent.mkdir(parents=True, exist_ok=True)
    customers_path, products_path = companion_paths(out)
    parquet = out.suffix.lower() == ".parquet"
    rows = customers = 0
    log_writer = planted_writer = None
    try:
        for chunk, (log, planted) in enumerate(iter_simulation(n_customers, seed)):
            if layout == "shopify":
                log = as_shopify_export(log, np.random.default_rng([seed, chunk, 3]))
                planted = planted.set_column(0, "customer_id", pa.array(emails(planted["customer_id"].to_numpy())))
            rows += log.num_rows
            customers += planted.num_rows
            if parquet:
                log_writer = log_writer or pq.ParquetWriter(out, log.schema, compression="zstd")
                planted_writer = planted_writer or pq.ParquetWriter(customers_path, planted.schema)
            else:
                log = _as_export(log) if layout == "uci" else log
                log_writer = log_writer or pa_csv.CSVWriter(_open_text_out(out), log.schema)
                planted_writer = planted_writer or pa_csv.CSVWriter(_open_text_out(customers_path), planted.schema)
            log_writer.write_table(log)
            planted_writer.write_table(planted)
    finally:
        for writer in (log_writer, planted_writer):
            if writer is not None:
                writer.close()
    products = catalogue_table(seed)
    if parquet:
        pq.write_table(products, products_path)
    else:
        with _open_text_out(products_path) as sink:
            pa_csv.write_csv(products, sink)
    return SimulatedFiles(out, customers_path, products_path, rows, customers)


def _open_text_out(path: Path) -> pa.NativeFile:
    compression = "gzip" if path.name.endswith(".gz") else None
    return pa.output_stream(path, compression=compression)


def _as_export(log: pa.Table) -> pa.Table:
    dates = pc.strftime(log["InvoiceDate"], format="%m/%d/%Y %H:%M")
    customer = pc.cast(log["CustomerID"], pa.int64())
    return log.set_column(4, "InvoiceDate", dates).set_column(6, "CustomerID", customer)
