"""The stages of a run as functions: each takes the earlier stages' results, the settings and a date.

A run (`custseg.pipeline.run`), an assignment with a stored model (`custseg.pipeline.assign`) and a
notebook compose the same functions; each stores its tables in the workspace and returns a small
frozen dataclass whose ``summary`` is its section of run.json. Computing the customers as of
another date is one call of `customer_features`, not a second pipeline.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from custseg.backtest import (
    Outcomes,
    backtest_customers,
    backtest_date,
    bootstrap_weights,
    calibration,
    ceilings,
    fold_ids,
    history_reason,
    score_labels,
    segment_outcomes,
    value_scores,
)
from custseg.clean import check_partition, clean, reason_counts, reconcile
from custseg.cluster import FeatureSpace, Segmentation, min_customers
from custseg.database import is_database_url, read_database
from custseg.early import (
    EARLY_COLUMNS,
    EARLY_SCHEMA,
    early_rows,
    evaluate_early,
    first_orders,
    horizon_features,
    predict_batch,
    usable_orders,
)
from custseg.errors import ConfigError, InvalidValueError, NoRowsLeftError
from custseg.features import (
    customer_table,
    fully_returned_customers,
    lines_before,
    reference_date,
    typical_gap_days,
    with_customer_columns,
)
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
from custseg.model import FittedModel
from custseg.movement import MOVE_COLUMNS, NO_SEGMENT, migration, migration_summary
from custseg.orders import ORDER_COLUMNS, SPREAD_BY_PRESET, currency_counts, spread_order_fields
from custseg.products import categorize, category_table, product_summary
from custseg.profile import (
    exact_sizes,
    profile_segments,
    rfm_segment_rows,
    segment_ids,
    segment_table_with_value,
    segment_value,
)
from custseg.rfm import RFMScorer, segment_summary
from custseg.sampling import rows_at, rows_at_most, sample_positions
from custseg.schema import ColumnMapping, problem_summary, resolve_mapping, to_canonical
from custseg.settings import Settings
from custseg.value import TARGETS, ValueModel, choose_model, value_columns
from custseg.workspace import Workspace, file_sha256, json_records

# -- read ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """The input as canonical transactions (`custseg.schema.CANONICAL_COLUMNS` and row_id, one row per input row).

    ``summary`` (run.json ``input``): path, format, encoding, delimiter, columns, layout, column map,
    timestamp format and ties, bytes and SHA-256.
    """

    transactions: ir.Table
    summary: dict[str, Any]


def load_transactions(source: Source, settings: Settings) -> tuple[ir.Table, ColumnMapping, dict[str, Any]]:
    """Map a read source to the canonical transactions table and describe how it was read.

    Raises
    ------
    MissingColumnsError
        If required columns are missing.
    InvalidValueError
        If a column's share of unparseable values is above ``settings.input.max_invalid_share``.
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
    spread = SPREAD_BY_PRESET.get(mapping.layout or "", ())
    if "invoice_id" in mapping.columns and (spread or set(ORDER_COLUMNS) & set(mapping.columns)):
        table = spread_order_fields(table, mapping.columns, SOURCE_ROW, spread)
    currency = None
    if "currency" in mapping.columns:
        currency = _one_currency(table, mapping.columns["currency"], str(source.path))
    transactions = to_canonical(table, mapping, timestamp_format=parse_format, row_id=SOURCE_ROW)
    described = {
        "path": str(source.path),
        "format": source.file_format,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "columns": source.columns,
        "preset": mapping.preset,
        "column_map": mapping.columns,
        "timestamp_format": timestamp_format,
        "timestamp_format_ties": tied,
        "currency": currency,
    }
    return transactions, mapping, described


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


def read(data: Path | str | pd.DataFrame | pa.Table, settings: Settings, workspace: Workspace) -> Read:
    """Read a file or table and map it to custseg's columns (stored as ``transactions``)."""
    options = settings.input
    if is_database_url(data):
        source = read_database(data, workspace.engine, table=options.table, query=options.query)
    elif options.table is not None or options.query is not None:
        raise ConfigError(f"{data}: --table and --query read a database (postgresql://...), not a file")
    else:
        source = read_source(data, workspace.engine, encoding=options.encoding, delimiter=options.delimiter)
    canonical, _, described = load_transactions(source, settings)
    transactions = workspace.save("transactions", canonical)
    check_problems(transactions, source, options.max_invalid_share)
    if isinstance(data, Path) and data.is_file():
        described.update(bytes=data.stat().st_size, sha256=file_sha256(data))
    elif source.file_format in ("dataframe", "postgresql"):
        # The rows as read (a database's, or a table in memory): the same rows give the same hash.
        described.update(bytes=None, sha256=frame_sha256(source))
    else:
        # A Spark table, URL or folder: no one file to fingerprint.
        described.update(bytes=None, sha256=None)
    return Read(transactions=transactions, summary=described)


# -- clean --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleaned:
    """Kept purchase lines and rejected rows (stored as ``lines`` and ``rejected``).

    ``rows`` (run.json ``rows``): input, kept and rejected rows, rejected by reason; ``span``
    (``lines``): customers, orders, products, first and last timestamp; ``reconciliation``: the
    input amount to net revenue, balanced to the cent.
    """

    lines: ir.Table
    rejected: ir.Table
    rows: dict[str, Any]
    span: dict[str, Any]
    reconciliation: dict[str, Any]


def clean_lines(transactions: ir.Table, settings: Settings, workspace: Workspace, name: str) -> Cleaned:
    """Apply the cleaning rules and match returns; check that every row is kept or rejected.

    Raises
    ------
    NoRowsLeftError
        When no row is left, naming the input ``name`` and the rejections by reason.
    """
    result = clean(transactions, settings.clean, allocate_with=workspace.engine.allocate)
    lines = workspace.save("lines", result.lines)
    rejected = workspace.save("rejected", result.rejected.order_by("row_id"))
    result.release()
    rows = check_partition(transactions, lines, rejected)
    rows["rejected_by_reason"] = reason_counts(rejected)
    if rows["kept_rows"] == 0:
        raise NoRowsLeftError(
            f"{name}: no rows left after cleaning; rejected by reason: "
            + ", ".join(f"{k} {v}" for k, v in rows["rejected_by_reason"].items() if v)
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
    described = {
        "customers": int(span.customers),
        "orders": int(span.orders),
        "products": int(span.products),
        "first_invoiced_at": str(span["first"]),
        "last_invoiced_at": str(span["last"]),
    }
    return Cleaned(
        lines=lines,
        rejected=rejected,
        rows=rows,
        span=described,
        reconciliation=reconcile(transactions, lines, rejected),
    )


# -- products -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Products:
    """Each product's category (stored as ``products``).

    ``frame`` is the products table in memory and ``categories`` the per-category table
    (categories.csv) when they were learned here; ``order`` every category id and ``labels`` their
    names; ``summary`` is run.json ``products``.
    """

    products: ir.Table
    order: list[str]
    labels: dict[str, str]
    summary: dict[str, Any]
    frame: pd.DataFrame | None = None
    categories: pd.DataFrame | None = None


def learn_products(lines: ir.Table, settings: Settings, workspace: Workspace) -> Products:
    """Learn product categories from the descriptions (or take the user's map)."""
    summary = product_summary(lines).execute()
    products, described = categorize(summary, settings.products, seed=settings.seed)
    categories = category_table(products, {c["category"]: c["top_words"].split(", ") for c in described["categories"]})
    return Products(
        products=workspace.save("products", products),
        order=sorted(categories.category),
        labels=dict(zip(categories.category, categories.label, strict=True)),
        summary={"products": len(products), **described},
        frame=products,
        categories=categories,
    )


def stored_products(lines: ir.Table, fitted: FittedModel, workspace: Workspace) -> Products:
    """Put products in a stored model's categories; products it never saw are ``unknown``."""
    summary = product_summary(lines).execute()
    products = fitted.categorize(summary)
    stored = fitted.manifest["products"]
    unknown = int((~summary.product_id.isin(stored["categories"])).sum())
    return Products(
        products=workspace.save("products", products),
        order=stored["category_order"],
        labels=stored["labels"],
        summary={"products": len(products), "unknown_to_the_model": unknown},
    )


# -- customer features --------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """One row per customer as of ``as_of`` (stored as ``customer_features``); ``summary`` is run.json ``customers``."""

    customers: ir.Table
    as_of: datetime.datetime
    summary: dict[str, Any]


def default_as_of(settings: Settings, transactions: ir.Table) -> datetime.datetime:
    """Return the reference date: the settings' ``as_of``, else the day after the last transaction."""
    if settings.as_of:
        return datetime.datetime.combine(settings.as_of, datetime.time())
    return reference_date(transactions.invoiced_at.max().execute())


def customer_features(
    lines: ir.Table, products: Products, as_of: datetime.datetime, workspace: Workspace, name: str
) -> Features:
    """Compute every customer's features and interests as of ``as_of``.

    Raises
    ------
    NoRowsLeftError
        When no customer has an order of positive net revenue before ``as_of``.
    """
    joined = customer_table(lines, products.products, products.order, as_of)
    features = workspace.save("customer_features", joined, temp=True)
    count = int(features.count().execute())
    if count == 0:
        raise NoRowsLeftError(f"{name}: no customer has an order with positive net revenue before {as_of}")
    all_returned = fully_returned_customers(lines, as_of).order_by("customer_id").execute()
    return Features(
        customers=features,
        as_of=as_of,
        summary={
            "as_of": as_of.isoformat(sep=" "),
            "count": count,
            "fully_returned": {"count": len(all_returned), "customer_ids": all_returned.customer_id.tolist()},
        },
    )


# -- RFM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFM:
    """Customers with their RFM scores and segment (stored as ``customers``), the scorer and the segment sizes."""

    customers: ir.Table
    scorer: RFMScorer
    segments: pd.DataFrame
    summary: dict[str, Any]


def score_rfm(features: Features, scorer: RFMScorer, segment_map: str, workspace: Workspace) -> RFM:
    """Score every customer with a fitted `RFMScorer` (fitted here or stored in a model)."""
    customers = workspace.save("customers", scorer.transform(features.customers).order_by("customer_id"))
    segments = segment_summary(customers, scorer.segment_rules())
    return RFM(
        customers=customers,
        scorer=scorer,
        segments=segments,
        summary={
            "bins": scorer.bins,
            "cut_points": scorer.cut_points_,
            "segment_map": segment_map,
            "segments": segments.drop(columns=["description", "action"]).to_dict(orient="records"),
        },
    )


# -- backtest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """The customers as of T - H with what they did in the last H days, and the RFM map scored on them.

    ``customers`` is None when there is no backtest (``summary`` says why); it is every backtest
    customer or a sample of them, and ``table`` all of them in the engine (None when the log is too
    short). ``folds`` and ``weights`` are the out-of-fold and bootstrap plan every segmentation is
    scored with.
    """

    summary: dict[str, Any]
    customers: pd.DataFrame | None = None
    folds: np.ndarray | None = None
    weights: np.ndarray | None = None
    table: ir.Table | None = None


def backtest(
    lines: ir.Table, products: Products, as_of: datetime.datetime, first_at: str, settings: Settings, workspace
) -> Backtest:
    """Build the customers as of T - H with what they did in the last H days; score the RFM map on them."""
    options = settings.backtest
    if not options.enabled:
        return Backtest(summary={"skipped": "[backtest] enabled = false"})
    reason = history_reason(pd.Timestamp(first_at).to_pydatetime(), as_of, options.horizon_days)
    if reason:
        return Backtest(summary={"skipped": reason})
    table = backtest_customers(lines, products.products, products.order, as_of, options.horizon_days)
    stored = workspace.save("backtest_customers", table, temp=True)
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    customers, count = rows_at_most(stored, most, settings.seed)
    start = backtest_date(as_of, options.horizon_days)
    described = {
        "horizon_days": options.horizon_days,
        "as_of": start.isoformat(sep=" "),
        "window": [start.isoformat(sep=" "), as_of.isoformat(sep=" ")],
        "customers": count,
        "scored_on_customers": len(customers),
    }
    outcomes = Outcomes.of(customers)
    reason = outcomes.degenerate()
    if reason is None and len(customers) < options.min_customers:
        reason = f"{len(customers)} backtest customers; a backtest needs {options.min_customers}"
    if reason:
        return Backtest(summary={**described, "skipped": reason}, table=stored)
    scorer = RFMScorer.from_options(settings.rfm).fit(customers)
    rfm_columns = ["customer_id", "recency_days", "frequency", "monetary"]
    rfm_labels = (
        scorer.transform(ibis.memtable(customers[rfm_columns])).order_by("customer_id").execute().rfm_segment.to_numpy()
    )
    folds = fold_ids(len(customers), options.folds, settings.seed)
    weights = bootstrap_weights(len(customers), options.bootstrap, settings.seed)
    points = FeatureSpace(features=settings.cluster.features, interests=settings.cluster.interests)
    described.update(
        returned_share=round(float(outcomes.returned.mean()), 4),
        mean_revenue=round(float(outcomes.revenue.mean()), 2),
        protocol=(
            f"customers as of {start.date()} (T - {options.horizon_days} days), described by the same stages and "
            f"rules; what they did from then to {as_of.date()}: ordered again (an order of positive net revenue) "
            f"and their net revenue. Segment rates are out of fold ({options.folds} folds): each customer is scored "
            f"by the other folds' customers of the same segment; standard errors from {options.bootstrap} bootstrap "
            f"resamples of the customers"
        ),
        rfm={
            **score_labels(rfm_labels, outcomes, folds, weights).summary(),
            "cut_points": scorer.cut_points_,
            "segments": json_records(segment_outcomes(rfm_labels, outcomes)),
        },
        ceilings=ceilings(points.fit_transform(customers), outcomes, folds),
    )
    return Backtest(summary=described, customers=customers, folds=folds, weights=weights, table=stored)


# -- segments -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """Customers with their learned segment, name and action (stored as ``customers``).

    ``table`` is segments.csv (RFM and learned segments); ``names`` maps segment id to name;
    ``summary`` is run.json ``segments`` and ``backtest`` the final segments' figures on the
    backtest (run.json ``validation.segments``), None without one.
    """

    customers: ir.Table
    table: pd.DataFrame
    names: dict[str, str]
    summary: dict[str, Any]
    segmentation: Segmentation | None = None
    profiles: pd.DataFrame | None = None
    backtest: dict[str, Any] | None = None


SEGMENT_SCHEMA = pa.schema([("customer_id", pa.string()), ("segment", pa.string())])
"""What the engine's batches of customers get back: each customer's learned segment."""


def segment_batch(customers: pd.DataFrame, segmentation: Segmentation) -> pd.DataFrame:
    """Return customer_id and learned segment id (`SEGMENT_SCHEMA`) of a batch of customers."""
    ids = segment_ids(segmentation.predict(customers)) if len(customers) else []
    return pd.DataFrame({"customer_id": customers.customer_id.to_numpy(), "segment": ids})


def _assigned(engine, customers: ir.Table, segmentation: Segmentation) -> ir.Table:
    """Add each customer's learned segment; the engine assigns them batch by batch."""
    assigned = engine.map_batches(
        "segment_assignment",
        customers.select("customer_id", *segmentation.columns_),
        functools.partial(segment_batch, segmentation=segmentation),
        SEGMENT_SCHEMA,
    )
    return with_customer_columns(customers, assigned)


def _named(engine, segmented: ir.Table, names: pd.DataFrame) -> ir.Table:
    """Add segment_name and action from the profiles (segment, name, action), in customer id order."""
    table = pa.Table.from_pandas(
        names[["segment", "name", "action"]].rename(columns={"name": "segment_name"}), preserve_index=False
    )
    named = segmented.left_join(engine.register("segment_names", table), "segment").drop("segment_right")
    return named.order_by("customer_id")


def stored_segments(rfm: RFM, fitted: FittedModel, workspace: Workspace) -> Segments:
    """Give every customer a stored model's learned segment, name and action (null without one)."""
    customers = rfm.customers
    names = pd.DataFrame(fitted.manifest.get("segments") or [], columns=["segment", "name", "action"])
    if fitted.segmentation is None or names.empty:
        segmented = customers.mutate(
            segment=ibis.null(dt.string), segment_name=ibis.null(dt.string), action=ibis.null(dt.string)
        )
    else:
        segmented = _named(workspace.engine, _assigned(workspace.engine, customers, fitted.segmentation), names)
    saved = workspace.save("customers", segmented)
    return Segments(
        customers=saved,
        table=pd.DataFrame(fitted.manifest.get("segments") or []),
        names=fitted.names()["segment"],
        summary={"assigned": int(saved.segment.notnull().sum().execute())},
        segmentation=fitted.segmentation,
    )


def learn_segments(
    rfm: RFM, products: Products, backtested: Backtest, settings: Settings, workspace: Workspace
) -> Segments:
    """Choose, fit, profile and name the learned segments; give every customer one."""
    engine, customers = workspace.engine, rfm.customers
    options, seed = settings.cluster, settings.seed
    count = int(customers.count().execute())
    needed = min_customers(options)
    if count < needed:
        return Segments(
            customers=customers,
            table=rfm_segment_rows(rfm.segments),
            names={},
            summary={"skipped": f"{count} customers; learned segments need {needed}"},
        )
    on_driver = count <= settings.engine.max_driver_customers
    positions = sample_positions(count, min(options.max_fit_customers, settings.engine.max_driver_customers), seed)
    if on_driver:
        sample = customers.order_by("customer_id").execute().iloc[positions].reset_index(drop=True)
    else:
        sample = rows_at(customers, positions)
    history = backtested.customers
    segmentation = Segmentation(options=options, backtest_options=settings.backtest, random_state=seed)
    segmentation.fit(sample, backtest=history)
    learned = {"customer_id": sample.customer_id, "segment_noise": segmentation.noise_}
    if segmentation.embedding_ is not None:
        learned.update(tsne_x=segmentation.embedding_[:, 0], tsne_y=segmentation.embedding_[:, 1])
    learned = engine.register("segment_sample", pa.Table.from_pandas(pd.DataFrame(learned), preserve_index=False))
    segmented = with_customer_columns(_assigned(engine, customers, segmentation), learned)
    segmented = workspace.save(
        "segmented", segmented.mutate(segment_noise=segmented.segment_noise.fill_null(False)), temp=True
    )
    worth = backtest_figures = None
    if history is not None:
        # The final segments applied to the backtest customers: what a customer of each was worth next.
        then = segment_ids(segmentation.predict(history))
        outcomes = Outcomes.of(history)
        worth = segment_outcomes(then, outcomes)
        backtest_figures = {
            **score_labels(np.asarray(then), outcomes, backtested.folds, backtested.weights).summary(),
            "note": (
                "the final segments (refitted as of the reference date) applied to the backtest customers; "
                + (
                    "their predicted space was learned on these same outcomes"
                    if segmentation.chosen_["space"] == "predicted"
                    else "they were fitted without these outcomes"
                )
            ),
            "per_segment": json_records(worth),
        }
    # Profiles describe every customer on the driver, else the sample (sizes and revenue exact).
    profiled = segmented.order_by("customer_id").execute() if on_driver else rows_at(segmented, positions)
    profiles = profile_segments(
        profiled,
        products.labels,
        gap_days=typical_gap_days(profiled),
        worth=worth,
        horizon_days=settings.backtest.horizon_days,
    )
    if not on_driver:
        profiles = exact_sizes(profiles, segmented)
    chosen = json_records(pd.DataFrame([segmentation.chosen_]))[0]
    return Segments(
        customers=workspace.save("customers", _named(engine, segmented, profiles)),
        table=pd.concat([rfm_segment_rows(rfm.segments), profiles], ignore_index=True),
        names=dict(zip(profiles.segment, profiles.name, strict=True)),
        summary={
            "rule": segmentation.rule_,
            "reason": segmentation.reason_,
            "chosen_by": "backtest" if history is not None else "silhouette",
            "features": segmentation.columns_,
            "typical_gap_days": round(typical_gap_days(profiled), 1),
            "searched_on_customers": min(len(history if history is not None else sample), options.search_customers),
            "fitted_on_customers": len(sample),
            "profiled_on_customers": len(profiled),
            "chosen": chosen,
            "classifier_agreement": segmentation.classifier_agreement_,
            "candidates": json_records(segmentation.candidates_),
            "profiles": json_records(profiles.drop(columns=["description", "action"])),
        },
        segmentation=segmentation,
        profiles=profiles,
        backtest=backtest_figures,
    )


# -- movement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """The customers as of T - H in the final segments (stored as ``customers_then``) and who moved where by T.

    ``then`` (customer_id, segment, rfm_segment, monetary, revenue_90d) is None without customers
    as of T - H; ``summary`` is run.json ``migration``: per segmentation (``learned``, ``rfm``)
    `custseg.movement.migration_summary`, or ``skipped`` with the reason.
    """

    summary: dict[str, Any]
    then: ir.Table | None = None


def segment_movement(
    backtested: Backtest, rfm: RFM, segments: Segments, as_of: datetime.datetime, settings: Settings, workspace
) -> Movement:
    """Apply the final segmentations (learned and RFM) to the customers as of T - H; count who moved where by T."""
    if backtested.table is None:
        return Movement(summary={"skipped": f"no customers as of T - H: {backtested.summary['skipped']}"})
    horizon = settings.backtest.horizon_days
    then = rfm.scorer.transform(backtested.table)
    if segments.segmentation is not None:
        then = _assigned(workspace.engine, then, segments.segmentation)
    else:
        then = then.mutate(segment=ibis.null(dt.string))
    then = workspace.save("customers_then", then.select("customer_id", "segment", "rfm_segment", *MOVE_COLUMNS[1:]))
    first, second = backtest_date(as_of, horizon).date().isoformat(), as_of.date().isoformat()
    summary: dict[str, Any] = {"horizon_days": horizon}
    kinds = [("rfm", "rfm_segment", {})]
    if segments.segmentation is not None:
        kinds.insert(0, ("learned", "segment", segments.names))
    for kind, column, names in kinds:
        flows = migration(then, segments.customers, column).execute()
        summary[kind] = migration_summary(flows, names, first, second)
    return Movement(summary=summary, then=then)


# -- value --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """Customers with their expected orders and revenue over the next H days (stored as ``customers``).

    ``table`` is segments.csv with each segment's expected value and its backtest check; ``model``
    the fitted `ValueModel` (None when skipped; the columns are then null); ``summary`` is run.json
    ``value``.
    """

    customers: ir.Table
    table: pd.DataFrame
    summary: dict[str, Any]
    model: ValueModel | None = None


def value_batch(customers: pd.DataFrame, model: ValueModel, columns: dict[str, str]) -> pd.DataFrame:
    """Return customer_id and the value columns (`value_columns`) of a batch of customers."""
    predicted = model.predict(customers) if len(customers) else pd.DataFrame(columns=list(TARGETS), dtype=float)
    return pd.DataFrame(
        {"customer_id": customers.customer_id.to_numpy(), **{columns[t]: predicted[t].to_numpy() for t in TARGETS}}
    )


def with_value(customers: ir.Table, model: ValueModel | None, horizon_days: int, workspace) -> ir.Table:
    """Add each customer's value columns (`custseg.value.value_columns`), null without a model."""
    columns = value_columns(horizon_days)
    if model is None:
        return customers.mutate(**{column: ibis.null(dt.float64) for column in columns.values()})
    schema = pa.schema([("customer_id", pa.string()), *((column, pa.float64()) for column in columns.values())])
    valued = workspace.engine.map_batches(
        "customer_value",
        customers.select("customer_id", *model.columns_),
        functools.partial(value_batch, model=model, columns=columns),
        schema,
    )
    return with_customer_columns(customers, valued).order_by("customer_id")


def _forward_check(
    lines: ir.Table,
    products: Products,
    as_of: datetime.datetime,
    first_at: str,
    chosen: str,
    history,
    settings,
    workspace,
) -> dict[str, Any]:
    """Fit the chosen learner one horizon earlier (as of T - 2H) and score it on the last H days, as it is used now."""
    horizon = settings.backtest.horizon_days
    start = backtest_date(as_of, horizon)
    reason = history_reason(pd.Timestamp(first_at).to_pydatetime(), start, horizon)
    if reason:
        return {"skipped": f"{reason.replace('the reference date', 'T - H')} (a forward check needs {3 * horizon})"}
    earlier = workspace.save(
        "backtest_earlier", backtest_customers(lines, products.products, products.order, start, horizon), temp=True
    )
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    frame, _ = rows_at_most(earlier, most, settings.seed)
    options = settings.value
    model = ValueModel(model=chosen, features=options.features, interests=options.interests, random_state=settings.seed)
    try:
        model.fit(frame, frame[["next_orders", "next_revenue"]])
    except ConfigError as exc:
        return {"skipped": f"as of {backtest_date(start, horizon).date()}: {exc}"}
    return {
        "trained_as_of": backtest_date(start, horizon).isoformat(sep=" "),
        "trained_on_customers": len(frame),
        "scored_as_of": start.isoformat(sep=" "),
        **value_scores(model.predict(history), history[["next_orders", "next_revenue"]]),
    }


def _without_value(customers: ir.Table, table: pd.DataFrame, reason: str, horizon: int, workspace) -> Value:
    """Return the customers and segments with empty value columns, and why."""
    saved = workspace.save("customers", with_value(customers, None, horizon, workspace))
    empty = segment_table_with_value(table, None, None, value_columns(horizon))
    return Value(customers=saved, table=empty, summary={"skipped": reason})


def _expected_totals(valued: ir.Table, columns: dict[str, str]) -> dict[str, Any]:
    """Return the customers, their expected orders and revenue in all, and how many are expected to order again."""
    totals = (
        valued.aggregate(
            customers=valued.count(),
            expected_orders=valued[columns["expected_orders"]].sum(),
            expected_revenue=valued[columns["expected_revenue"]].sum(),
            returning_customers=valued[columns["p_order_again"]].sum(),
        )
        .execute()
        .iloc[0]
    )
    return {
        "customers": int(totals.customers),
        "expected_orders": round(float(totals.expected_orders), 2),
        "expected_revenue": round(float(totals.expected_revenue), 2),
        "returning_customers": round(float(totals.returning_customers), 1),
    }


def learn_value(
    customers: ir.Table,
    table: pd.DataFrame,
    backtested: Backtest,
    movement: Movement,
    lines: ir.Table,
    products: Products,
    as_of: datetime.datetime,
    first_at: str,
    settings: Settings,
    workspace: Workspace,
) -> Value:
    """Choose and fit the value model on the backtest, check it, and give every customer their expected value."""
    horizon, options = settings.backtest.horizon_days, settings.value
    columns = value_columns(horizon)
    reason = None
    if not options.enabled:
        reason = "[value] enabled = false"
    elif backtested.customers is None:
        reason = f"no backtest: {backtested.summary['skipped']}"
    if reason:
        return _without_value(customers, table, reason, horizon, workspace)
    history = backtested.customers
    actual = history[["next_orders", "next_revenue"]]
    try:
        model, candidates, chosen = choose_model(history, options, backtested.folds, backtested.weights, settings.seed)
    except ConfigError as exc:
        return _without_value(customers, table, f"the backtest's customers: {exc}", horizon, workspace)
    calibrated = {"deciles": calibration(chosen.predicted, actual)}
    if movement.then is not None:
        ids = workspace.engine.register("value_backtest_ids", pa.table({"customer_id": pa.array(history.customer_id)}))
        labels = history[["customer_id"]].merge(
            movement.then.semi_join(ids, "customer_id").select("customer_id", "segment", "rfm_segment").execute(),
            on="customer_id",
            how="left",
        )
        for kind, column in (("learned", "segment"), ("rfm", "rfm_segment")):
            if labels[column].notna().any():
                calibrated[kind] = calibration(chosen.predicted, actual, labels[column].fillna(NO_SEGMENT))
    valued = workspace.save("customers", with_value(customers, model, horizon, workspace))
    at_t = {}
    for kind, column in (("learned", "segment"), ("rfm", "rfm_segment")):
        if column in valued.columns:
            at_t[kind] = segment_value(valued, column, columns).execute()
    start = backtest_date(as_of, horizon)
    summary = {
        "horizon_days": horizon,
        "columns": columns,
        "protocol": (
            f"learned on the customers as of {start.date()} (T - {horizon} days) and what they did in the next "
            f"{horizon} days; applied to every customer as of {as_of.date()}. Candidates scored out of fold on the "
            "backtest's folds by validity = (return Gini of p_order_again + R squared of the expected log revenue) "
            "/ 2, the segments' own score; the highest wins"
        ),
        "chosen": chosen.model,
        "candidates": [candidate.row() for candidate in candidates],
        "backtest": chosen.figures,
        "calibration": {kind: json_records(frame) for kind, frame in calibrated.items()},
        "forward": _forward_check(lines, products, as_of, first_at, chosen.model, history, settings, workspace),
        "expected": _expected_totals(valued, columns),
    }
    return Value(
        customers=valued,
        table=segment_table_with_value(table, at_t, calibrated, columns),
        summary=summary,
        model=model,
    )


# -- early prediction ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyModels:
    """The early models, ``models[target][str(n_orders)]`` (empty when none); ``summary`` is run.json ``early``."""

    models: dict[str, dict[str, Any]]
    summary: dict[str, Any]


def learn_early(
    lines: ir.Table,
    products: Products,
    as_of: datetime.datetime,
    segmentation: Segmentation | None,
    settings: Settings,
    workspace: Workspace,
) -> EarlyModels:
    """Fit and measure the early models on the customers old enough to have reached the horizon."""
    options = settings.early
    if not options.enabled:
        return EarlyModels(models={}, summary={"skipped": "[early] enabled = false"})
    known = lines_before(lines, as_of).drop("as_of")
    eligible = horizon_features(known, products.products, products.order, options.horizon_days, as_of)
    most = min(options.max_train_customers, settings.engine.max_driver_customers)
    horizon, _ = rows_at_most(eligible, most, settings.seed)
    if horizon.empty:
        return EarlyModels(
            models={},
            summary={
                "skipped": f"no customer's first order is at least {options.horizon_days} days before the "
                "reference date: there is nobody to learn from what new customers become"
            },
        )
    learners = workspace.engine.register(
        "early_learners", pa.table({"customer_id": pa.array(horizon.customer_id, pa.string())})
    )
    early = first_orders(
        known.semi_join(learners, "customer_id"), products.products, products.order, options.max_orders, segmentation
    )
    targets = pd.DataFrame(
        {
            "customer_id": horizon.customer_id,
            "joined_at": horizon.joined_at,
            "segment": segment_ids(segmentation.predict(horizon)) if segmentation is not None else None,
            "category": horizon.dominant_category,
        }
    )
    summary, models = evaluate_early(early, targets, products.order, options=options, seed=settings.seed)
    return EarlyModels(models=models, summary={**summary, "learned_from_customers": len(horizon)})


@dataclass(frozen=True)
class Early:
    """Customers with the early prediction's columns (stored as ``customers``); ``predicted`` how many got one."""

    customers: ir.Table
    predicted: int


def predict_early(
    customers: ir.Table,
    lines: ir.Table,
    products: Products,
    as_of: datetime.datetime,
    early: EarlyModels,
    names: dict[str, str],
    segmentation: Segmentation | None,
    settings: Settings,
    workspace: Workspace,
) -> Early:
    """Predict what customers younger than the horizon will become, from their first orders.

    What they are now is not yet what they will be; the engine predicts them batch by batch.
    """
    usable = usable_orders(early.models)
    if usable:
        known = lines_before(lines, as_of).drop("as_of")
        young = customers.filter(customers.tenure_days < settings.early.horizon_days).select("customer_id")
        predicted = workspace.engine.map_batches(
            "early_predictions",
            early_rows(known, products.products, products.order, young, usable),
            functools.partial(
                predict_batch,
                models=early.models,
                categories=products.order,
                names={"segment": names, "category": products.labels},
                segmentation=segmentation,
            ),
            EARLY_SCHEMA,
        )
        customers = with_customer_columns(customers, predicted)
    else:
        early_types = ibis.Schema.from_pyarrow(EARLY_SCHEMA)
        customers = customers.mutate(**{name: ibis.null(early_types[name]) for name in EARLY_COLUMNS})
    saved = workspace.save("customers", customers.order_by("customer_id"))
    return Early(customers=saved, predicted=int(saved.early_orders.notnull().sum().execute()))
