"""Segments for a few customers at a time, fast enough to answer an HTTP request.

`custseg assign` runs the pipeline's stages on a file through a DuckDB database on disk. The API
answers one customer at a time, where compiling the Ibis expressions (about 100 ms each) and
planning their SQL would dominate. `Scorer` builds the very same expressions once, over named
request tables, prepares their SQL in an in-memory DuckDB, and per request only loads the rows
and executes the prepared statements.
"""

from __future__ import annotations

import datetime
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn import config_context
from threadpoolctl import ThreadpoolController

from custseg.clean import allocate_returns, net_returns, return_events, screen
from custseg.early import EARLY_COLUMNS, predict_batch, usable_orders
from custseg.features import customer_table, lines_before, reference_date
from custseg.first_orders import early_rows
from custseg.interests import INTEREST_COLUMNS, interest_batch
from custseg.model import FittedModel
from custseg.schema import (
    CANONICAL_COLUMNS,
    FIRST_VALID_YEAR,
    LAST_VALID_YEAR,
    ROW_ID,
    ColumnMapping,
    customer_id_text,
    to_canonical,
)
from custseg.settings import settings_from_dict
from custseg.stages.segments import named_segment_batch
from custseg.stages.value import value_batch
from custseg.value import value_columns

REQUEST_ROW = "request_row"
"""The 1-based position of a transaction in the request, its lineage id."""


@dataclass
class Scored:
    """The answer for one batch of transactions.

    Attributes
    ----------
    customers : DataFrame of shape (n_customers, len(fitted.assigned_columns()))
        One row per customer with an order of positive net revenue before ``as_of``.
    rejected : DataFrame of shape (n_rejected, 3)
        request_row, customer_id and reason of every transaction that was not kept.
    unscored : list of str
        Customers of the request without such an order (nothing to score).
    as_of : datetime or None
        None when the request gave none and no timestamp in it is real (every row rejected).
    """

    customers: pd.DataFrame
    rejected: pd.DataFrame
    unscored: list[str]
    as_of: datetime.datetime | None


def _default_as_of(invoiced_at: pd.Series) -> datetime.datetime | None:
    """Return the default reference date, as `run` takes it: the day after the last real transaction.

    A placeholder year (9999) is a rejected row, not the last transaction; None when no timestamp is real.
    """
    real = invoiced_at[invoiced_at.dt.year.between(FIRST_VALID_YEAR, LAST_VALID_YEAR)]
    return reference_date(pd.Timestamp(real.max()).to_pydatetime()) if len(real) else None


class Scorer:
    """Apply a fitted model to small batches of canonical transactions.

    Parameters
    ----------
    fitted : FittedModel
        From `custseg.model.load_model`.

    Notes
    -----
    One in-memory DuckDB connection on one thread; scoring holds a lock, so concurrent callers
    take turns. One customer takes about 58 ms on the 2-core machine, a batch of ten about 100 ms
    (`Batcher` gathers concurrent requests into such batches).
    """

    def __init__(self, fitted: FittedModel) -> None:
        self.fitted = fitted
        self.settings = settings_from_dict(fitted.manifest["settings"])
        self.categories = fitted.manifest["products"]["category_order"]
        self.names = fitted.names()
        self._lock = threading.Lock()
        self._threads = ThreadpoolController()
        self._backend = ibis.duckdb.connect(threads=1)
        self._con = self._backend.con
        self._prepare()

    def _table(self, name: str, schema: dict) -> ibis.Table:
        self._backend.create_table(name, schema=ibis.schema(schema), overwrite=True)
        return ibis.table(schema, name=name)

    def _prepare(self) -> None:
        request = self._table("request_rows", {**CANONICAL_COLUMNS, ROW_ID: dt.int64})
        mapping = ColumnMapping(preset="canonical", columns={c: c for c in CANONICAL_COLUMNS if c != ROW_ID})
        screened_expr = screen(
            to_canonical(request, mapping, timestamp_format=None, row_id=ROW_ID), self.settings.clean
        )
        screened = self._table("request_screened", dict(screened_expr.schema().items()))
        allocation = self._table("request_allocation", {ROW_ID: dt.int64, "allocated_quantity": dt.float64})
        lines_expr, rejected_expr = net_returns(screened, allocation)
        lines = self._table("request_lines", dict(lines_expr.schema().items()))
        as_of = self._table("request_as_of", {"customer_id": dt.string, "as_of": dt.timestamp})
        model_products = pd.DataFrame(
            list(self.fitted.manifest["products"]["categories"].items()), columns=["product_id", "category"]
        )
        self._backend.create_table("model_products", model_products, overwrite=True)
        products = ibis.table({"product_id": dt.string, "category": dt.string}, name="model_products")

        given_ids = self._table("request_ids", {ROW_ID: dt.int64, "customer_id": dt.string})
        known = lines_before(lines, as_of).drop("as_of")
        features = customer_table(lines, products, self.categories, as_of)
        statements = {
            "ids": self._backend.compile(
                given_ids.select(ROW_ID, customer_id=customer_id_text(given_ids.customer_id)).order_by(ROW_ID)
            ),
            "screen": f"INSERT INTO request_screened {self._backend.compile(screened_expr)}",
            "events": self._backend.compile(return_events(screened.filter(screened.reason.isnull()))),
            "lines": f"INSERT INTO request_lines {self._backend.compile(lines_expr)}",
            "rejected": self._backend.compile(rejected_expr.select(ROW_ID, "customer_id", "reason")),
            "customers": self._backend.compile(self.fitted.scorer().transform(features).order_by("customer_id")),
        }
        usable = usable_orders(self.fitted.early)
        if usable:
            # Customers younger than the horizon get an early prediction, as in `custseg run`.
            young = features.filter(features.tenure_days < self.settings.early.horizon_days).select("customer_id")
            statements["early"] = self._backend.compile(
                early_rows(known, products, self.categories, young, usable).order_by("customer_id")
            )
        # Prepared once: parsing, binding and planning are most of the time on a few rows. The
        # plans are made while the request tables are empty, so the optimizers that read table
        # statistics must not conclude that results are empty.
        self._con.execute("SET disabled_optimizers = 'statistics_propagation,empty_result_pullup'")
        for name, sql in statements.items():
            self._con.execute(f"PREPARE {name} AS {sql}")
        self._statements = set(statements)

    def _load(self, table: str, frame: pd.DataFrame | pa.Table) -> None:
        self._con.execute(f"DELETE FROM {table}")
        if len(frame):
            self._con.register("incoming", frame)
            self._con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
            self._con.unregister("incoming")

    def score(self, transactions: pd.DataFrame, as_of: datetime.datetime | None = None) -> Scored:
        """Clean, describe and segment the customers of ``transactions``.

        Parameters
        ----------
        transactions : DataFrame of shape (n_rows, 8)
            The canonical columns (customer_id, invoice_id, invoiced_at, product_id,
            description, quantity, unit_price, country), in request order; a null invoice_id or
            product_id is read as in a file (`custseg.schema.to_canonical`).
        as_of : datetime, optional
            Reference date; default the day after the last transaction.

        Returns
        -------
        Scored
        """
        return self.score_many([(transactions, as_of)])[0]

    def score_many(self, requests: list[tuple[pd.DataFrame, datetime.datetime | None]]) -> list[Scored]:
        """Score several independent requests in one pass (as `score` does each).

        A customer id in two requests is two customers: ids are kept apart by request.
        """
        sizes = [len(transactions) for transactions, _ in requests]
        as_ofs = [as_of or _default_as_of(transactions.invoiced_at) for transactions, as_of in requests]
        rows = pd.concat([transactions for transactions, _ in requests], ignore_index=True)
        request = np.repeat(np.arange(len(requests)), sizes)
        rows["request"] = request
        rows["request_row"] = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1
        rows[ROW_ID] = np.arange(1, len(rows) + 1)
        rows["written_customer_id"] = rows.customer_id
        # The file's id rules (trimmed, 17850.0 is 17850, NULL is a guest) before the request key.
        rows["given_customer_id"] = self._canonical_ids(rows)
        rows["customer_id"] = pd.Series(request, dtype="string") + _SEPARATOR + rows.given_customer_id
        first_rows = rows.dropna(subset=["customer_id"]).drop_duplicates("customer_id").set_index("customer_id")
        cutoffs = pd.DataFrame({"customer_id": first_rows.index, "as_of": np.array(as_ofs)[first_rows.request]})
        customers, rejected = self._score(rows, cutoffs)
        # Back from the batch's keys to each request's own rows and ids.
        customers["request"] = customers.customer_id.map(first_rows.request).to_numpy()
        customers["customer_id"] = customers.customer_id.map(first_rows.given_customer_id).to_numpy()
        source = rows.iloc[rejected[ROW_ID].to_numpy() - 1]
        rejected = pd.DataFrame(
            {
                "request": source.request.to_numpy(),
                REQUEST_ROW: source.request_row.to_numpy(),
                "customer_id": source.written_customer_id.to_numpy(),
                "reason": rejected.reason.to_numpy(),
            }
        ).sort_values(["request", REQUEST_ROW], ignore_index=True)
        customers_of = dict(tuple(customers.groupby("request", sort=False)))
        rejected_of = dict(tuple(rejected.groupby("request", sort=False)))
        asked_of = rows.dropna(subset=["given_customer_id"]).groupby("request").given_customer_id.unique()
        empty_customers, empty_rejected = customers.iloc[:0], rejected.iloc[:0]
        results = []
        for number, as_of in enumerate(as_ofs):
            mine = customers_of.get(number, empty_customers).drop(columns="request").reset_index(drop=True)
            asked = set(asked_of.get(number, []))
            results.append(
                Scored(
                    customers=mine,
                    rejected=rejected_of.get(number, empty_rejected).drop(columns="request").reset_index(drop=True),
                    unscored=sorted(asked - set(mine.customer_id)),
                    as_of=as_of,
                )
            )
        return results

    def _canonical_ids(self, rows: pd.DataFrame) -> pd.Series:
        ids = pa.table(
            {ROW_ID: pa.array(rows[ROW_ID], pa.int64()), "customer_id": pa.array(rows.customer_id, pa.string())}
        )
        with self._lock:
            self._load("request_ids", ids)
            canonical = self._con.execute("EXECUTE ids").df()
        return pd.Series(canonical.customer_id.to_numpy(), index=rows.index, dtype="string")

    def _score(self, rows: pd.DataFrame, cutoffs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        # One thread for the models: on a few rows, OpenMP's threads (gradient boosting starts
        # them for every tree) wait for a core that the web server or a client holds, which took
        # a loaded server's latency from 60 ms to hundreds. The limit is process-wide: hold the lock.
        # Inputs come from the engine's own queries: scikit-learn's checks of them (finite
        # values, parameters) cost more than the models on a few rows.
        with (
            self._lock,
            self._threads.limit(limits=1),
            config_context(assume_finite=True, skip_parameter_validation=True),
        ):
            return self._score_locked(rows, cutoffs)

    def _score_locked(self, rows: pd.DataFrame, cutoffs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        self._load("request_rows", rows[list(CANONICAL_COLUMNS)])
        self._con.execute("DELETE FROM request_screened; EXECUTE screen")
        events = self._con.execute("EXECUTE events").df() if (rows.quantity < 0).any() else pd.DataFrame()
        self._load("request_allocation", allocate_returns(events))
        self._con.execute("DELETE FROM request_lines; EXECUTE lines")
        rejected = self._con.execute("EXECUTE rejected").df()
        self._load("request_as_of", cutoffs)
        customers = self._con.execute("EXECUTE customers").df()
        # The customer-level steps of `custseg assign` (`custseg.pipeline.ASSIGN`), on a DataFrame.
        named = named_segment_batch(customers, self.fitted).drop(columns="customer_id")
        assigned = pd.concat([customers, named], axis=1)
        if self.fitted.value is not None:
            valued = value_batch(customers, self.fitted.value, value_columns(self.fitted.horizon_days))
            assigned = pd.concat([assigned, valued.drop(columns="customer_id")], axis=1)
        else:
            assigned = assigned.assign(**dict.fromkeys(value_columns(self.fitted.horizon_days).values(), np.nan))
        groups, group_names = self.fitted.interest_groups()
        if groups is not None:
            grouped = interest_batch(customers, groups, group_names)
            assigned = assigned.merge(grouped, on="customer_id", how="left")
        else:
            assigned = assigned.assign(**dict.fromkeys(INTEREST_COLUMNS))
        if "early" in self._statements:
            described = self._con.execute("EXECUTE early").df()
            predicted = predict_batch(
                described,
                models=self.fitted.early,
                categories=self.categories,
                names=self.names,
                segmentation=self.fitted.segmentation,
            )
            assigned = assigned.merge(predicted, on="customer_id", how="left")
        else:
            assigned = assigned.assign(**dict.fromkeys(EARLY_COLUMNS))
        return assigned[list(self.fitted.assigned_columns())], rejected


_SEPARATOR = "\x1f"
"""Joins a request's number to its customer ids inside a batch (a character ids do not contain)."""


class Batcher:
    """Score concurrent requests together: while one batch is scored, the next one gathers.

    On a few rows the cost of a batch hardly depends on its size, so under load this keeps
    the throughput up and the waiting short, where one request at a time would queue up.

    Parameters
    ----------
    scorer : Scorer
    max_batch : int
        The most requests scored in one pass.
    """

    def __init__(self, scorer: Scorer, *, max_batch: int = 32) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="custseg-scorer", daemon=True)
        self._worker.start()

    def submit(self, transactions: pd.DataFrame, as_of: datetime.datetime | None = None) -> Future:
        """Queue one request; the future's result is its `Scored`."""
        future: Future = Future()
        self._queue.put((transactions, as_of, future))
        return future

    def close(self) -> None:
        """Stop the worker after the queued requests."""
        self._queue.put(None)
        self._worker.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                results = self.scorer.score_many([(transactions, as_of) for transactions, as_of, _ in batch])
            except Exception as error:  # handed to every waiting caller, who reports it
                for *_, future in batch:
                    future.set_exception(error)
                continue
            for (*_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
