"""Bring a reproducible sample of a customer table from the engine to this process.

Models learn from at most a few thousand customers; a shop may have millions, held by DuckDB or
Spark. These helpers draw the positions with a seed and fetch only those rows.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa


def rows_at(customers: ir.Table, positions) -> pd.DataFrame:
    """Fetch the customers at 0-based ``positions`` in customer id order (ascending ints), ordered so.

    How a sample of a customer table too large for this process reaches it: only those rows
    leave the engine.

    Returns
    -------
    DataFrame of shape (len(positions), n_columns)
    """
    wanted = ibis.memtable(pa.table({"position": pa.array(positions, pa.int64())}))
    ranked = customers.mutate(position=ibis.row_number().over(order_by=customers.customer_id))
    return ranked.semi_join(wanted, "position").drop("position").order_by("customer_id").execute()


def rows_at_most(customers: ir.Table, size: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Fetch every customer in customer id order, or a random `sample_positions` of ``size`` when there are more.

    Returns
    -------
    rows : DataFrame of shape (min(n_customers, size), n_columns)
    n_customers : int
        How many customers the table holds.
    """
    count = int(customers.count().execute())
    if count > size:
        return rows_at(customers, sample_positions(count, size, seed)), count
    return customers.order_by("customer_id").execute(), count


def lines_of_at_most(lines: ir.Table, customers: ir.Table, size: int, seed: int) -> ir.Table:
    """Return ``lines``, or when ``customers`` holds more than ``size``, the lines of a `rows_at_most` sample of them.

    A stage that learns from a sample of customers draws it before it describes them, so that the
    engine reads only the sample's lines.
    """
    drawn, count = rows_at_most(customers.select("customer_id"), size, seed)
    if count <= size:
        return lines
    return lines.semi_join(ibis.memtable(pa.table({"customer_id": drawn.customer_id.astype(str)})), "customer_id")


def sample_positions(n: int, size: int, seed: int) -> np.ndarray:
    """Return ascending 0-based positions of ``size`` of ``n`` rows drawn at random (all when fewer).

    Returns
    -------
    ndarray of shape (min(n, size),)
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
