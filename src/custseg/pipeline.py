"""Run the stages in order, from a file to a finished output folder, with a record of the run.

A user wants one command that does everything and leaves behind how it was done: inputs and
their checksum, settings, row counts per rule, the revenue reconciliation, timings and versions.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from custseg import __version__
from custseg.clean import check_partition, clean, reason_counts, reconcile
from custseg.cluster import FeatureSpace, Segmentation, min_customers
from custseg.course import run_course
from custseg.errors import InputFileError, InvalidValueError, NoRowsLeftError
from custseg.features import (
    fully_returned_customers,
    lines_before,
    reference_date,
    rows_at,
    rows_at_most,
    sample_positions,
    typical_gap_days,
)
from custseg.io import (
    SOURCE_ROW,
    Source,
    detect_text_timestamp_format,
    detect_timestamp_format,
    frame_sha256,
    parse_text_timestamps,
    read_source,
)
from custseg.predict import (
    ASSIGNED_COLUMNS,
    EARLY_COLUMNS,
    EARLY_SCHEMA,
    FittedModel,
    early_rows,
    evaluate_early,
    first_orders,
    horizon_features,
    model_manifest,
    predict_batch,
    usable_orders,
)
from custseg.products import categorize, category_table, customer_table, product_summary
from custseg.profile import exact_sizes, profile_segments, rfm_segment_rows, segment_ids
from custseg.report import write_report
from custseg.rfm import RFMScorer, segment_summary
from custseg.schema import ColumnMapping, problem_summary, resolve_mapping, to_canonical
from custseg.settings import Settings
from custseg.validation import (
    Outcomes,
    backtest_customers,
    backtest_date,
    bootstrap_weights,
    ceilings,
    fold_ids,
    history_reason,
    score_labels,
    segment_outcomes,
)
from custseg.workspace import Workspace, file_sha256, json_records

STAGES = ("read", "clean", "products", "features", "rfm", "backtest", "segments", "predict", "write", "report")
"""Stage names in run order, as reported to the progress callback and in run.json timings."""
COURSE_STAGES = ("read", "course")
"""Stages of ``--recipe course``: the published course pipeline instead of custseg's."""


@dataclass
class RunResult:
    """What a finished run leaves: the output folder and the manifest written to run.json."""

    out_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)


class _Timings:
    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def load_transactions(source: Source, settings: Settings, engine) -> tuple[ir.Table, ColumnMapping, dict[str, Any]]:
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
    column = mapping.columns["invoiced_at"]
    timestamp_format, tied = options.timestamp_format, []
    if source.arrow is not None and pa.types.is_string(source.arrow.schema.field(column).type):
        # Text timestamps of a CSV or Excel file are parsed in Arrow, where the file already is.
        if timestamp_format is None:
            timestamp_format, tied = detect_text_timestamp_format(source.arrow.column(column))
        source = parse_text_timestamps(source, column, timestamp_format, engine)
        parse_format = None
    else:
        if timestamp_format is None:
            timestamp_format, tied = detect_timestamp_format(source.table, column)
        parse_format = timestamp_format
    transactions = to_canonical(source.table, mapping, timestamp_format=parse_format, row_id=SOURCE_ROW)
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
    }
    return transactions, mapping, described


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


def package_versions() -> dict[str, str]:
    """Versions of custseg, Python and the packages that decide its results."""
    versions = {"custseg": __version__, "python": platform.python_version()}
    for package in ("ibis-framework", "duckdb", "pyarrow", "pandas", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class _State:
    """What the stages of one run share: inputs, the workspace, stored tables and the manifest."""

    data: Path | str | pd.DataFrame | pa.Table
    settings: Settings
    workspace: Workspace
    tables: dict[str, ir.Table] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    fitted: FittedModel | None = None
    assign_out: Path | None = None


def _read(state: _State) -> None:
    data, settings, workspace = state.data, state.settings, state.workspace
    source = read_source(data, workspace.engine, encoding=settings.input.encoding, delimiter=settings.input.delimiter)
    canonical, _, described = load_transactions(source, settings, workspace.engine)
    transactions = workspace.save("transactions", canonical)
    check_problems(transactions, source, settings.input.max_invalid_share)
    if isinstance(data, Path) and data.is_file():
        described.update(bytes=data.stat().st_size, sha256=file_sha256(data))
    elif source.file_format == "dataframe":
        described.update(bytes=None, sha256=frame_sha256(source))
    else:
        # A Spark table, URL or folder: no one file to fingerprint.
        described.update(bytes=None, sha256=None)
    state.tables["transactions"] = transactions
    state.manifest["input"] = described


def _clean(state: _State) -> None:
    transactions, workspace = state.tables["transactions"], state.workspace
    result = clean(transactions, state.settings.clean, allocate_with=workspace.engine.allocate)
    lines = workspace.save("lines", result.lines)
    rejected = workspace.save("rejected", result.rejected.order_by("row_id"))
    result.release()
    rows = check_partition(transactions, lines, rejected)
    rows["rejected_by_reason"] = reason_counts(rejected)
    if rows["kept_rows"] == 0:
        raise NoRowsLeftError(
            f"{state.manifest['input']['path']}: no rows left after cleaning; rejected by reason: "
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
    state.tables.update(lines=lines, rejected=rejected)
    state.manifest["rows"] = rows
    state.manifest["lines"] = {
        "customers": int(span.customers),
        "orders": int(span.orders),
        "products": int(span.products),
        "first_invoiced_at": str(span["first"]),
        "last_invoiced_at": str(span["last"]),
    }
    state.manifest["reconciliation"] = reconcile(transactions, lines, rejected)


def _products(state: _State) -> None:
    summary = product_summary(state.tables["lines"]).execute()
    if state.fitted is not None:
        products = state.fitted.categorize(summary)
        state.tables["products"] = state.workspace.save("products", products)
        state.frames["category_order"] = state.fitted.manifest["products"]["category_order"]
        state.frames["category_labels"] = state.fitted.manifest["products"]["labels"]
        state.manifest["products"] = {
            "products": len(products),
            "unknown_to_the_model": int(
                (~summary.product_id.isin(state.fitted.manifest["products"]["categories"])).sum()
            ),
        }
        return
    products, described = categorize(summary, state.settings.products, seed=state.settings.seed)
    state.tables["products"] = state.workspace.save("products", products)
    state.frames["products"] = products
    state.frames["categories"] = category_table(
        products, {c["category"]: c["top_words"].split(", ") for c in described["categories"]}
    )
    state.frames["category_order"] = sorted(state.frames["categories"].category)
    state.frames["category_labels"] = dict(
        zip(state.frames["categories"].category, state.frames["categories"].label, strict=True)
    )
    state.manifest["products"] = {"products": len(products), **described}


def _features(state: _State) -> None:
    lines, settings = state.tables["lines"], state.settings
    if settings.as_of:
        as_of = datetime.datetime.combine(settings.as_of, datetime.time())
    else:
        as_of = reference_date(state.tables["transactions"].invoiced_at.max().execute())
    joined = customer_table(lines, state.tables["products"], state.frames["category_order"], as_of)
    features = state.workspace.save("customer_features", joined, temp=True)
    customers = int(features.count().execute())
    if customers == 0:
        raise NoRowsLeftError(
            f"{state.manifest['input']['path']}: no customer has an order with positive net revenue before {as_of}"
        )
    all_returned = fully_returned_customers(lines, as_of).order_by("customer_id").execute()
    state.tables["features"] = features
    state.frames["as_of"] = as_of
    state.manifest["customers"] = {
        "as_of": as_of.isoformat(sep=" "),
        "count": customers,
        "fully_returned": {"count": len(all_returned), "customer_ids": all_returned.customer_id.tolist()},
    }


def _rfm(state: _State) -> None:
    features, settings = state.tables["features"], state.settings
    if state.fitted is not None:
        scorer = state.fitted.scorer()
    else:
        scorer = RFMScorer.from_options(settings.rfm)
        scorer.fit(features)
    state.frames["scorer"] = scorer
    customers = state.workspace.save("customers", scorer.transform(features).order_by("customer_id"))
    segments = segment_summary(customers, scorer.segment_rules())
    state.tables["customers"] = customers
    state.frames["rfm_segments"] = segments
    state.manifest["rfm"] = {
        "bins": scorer.bins,
        "cut_points": scorer.cut_points_,
        "segment_map": settings.rfm.segment_map,
        "segments": segments.drop(columns=["description", "action"]).to_dict(orient="records"),
    }


def _backtest(state: _State) -> None:
    """Build the customers as of T - H with what they did in the last H days; score the RFM map on them."""
    if state.fitted is not None:
        return
    options, settings = state.settings.validation, state.settings
    as_of = state.frames["as_of"]
    if not options.enabled:
        state.manifest["validation"] = {"skipped": "[validation] enabled = false"}
        return
    first_at = pd.Timestamp(state.manifest["lines"]["first_invoiced_at"]).to_pydatetime()
    reason = history_reason(first_at, as_of, options.horizon_days)
    if reason:
        state.manifest["validation"] = {"skipped": reason}
        return
    table = backtest_customers(
        state.tables["lines"], state.tables["products"], state.frames["category_order"], as_of, options.horizon_days
    )
    stored = state.workspace.save("backtest_customers", table, temp=True)
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
        state.manifest["validation"] = {**described, "skipped": reason}
        return
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
    state.frames["backtest"] = customers
    state.frames["backtest_scoring"] = (folds, weights)
    state.manifest["validation"] = described


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
    return customers.left_join(assigned, "customer_id").drop("customer_id_right")


def _with_segments(engine, customers: ir.Table, segmentation: Segmentation | None, names: pd.DataFrame) -> ir.Table:
    """Add segment, segment_name and action of a stored model (null without learned segments)."""
    if segmentation is None or names.empty:
        return customers.mutate(
            segment=ibis.null(dt.string), segment_name=ibis.null(dt.string), action=ibis.null(dt.string)
        )
    return _named(engine, _assigned(engine, customers, segmentation), names)


def _named(engine, segmented: ir.Table, names: pd.DataFrame) -> ir.Table:
    """Add segment_name and action from the profiles (segment, name, action), in customer id order."""
    table = pa.Table.from_pandas(
        names[["segment", "name", "action"]].rename(columns={"name": "segment_name"}), preserve_index=False
    )
    named = segmented.left_join(engine.register("segment_names", table), "segment").drop("segment_right")
    return named.order_by("customer_id")


def _segments(state: _State) -> None:
    engine, customers = state.workspace.engine, state.tables["customers"]
    if state.fitted is not None:
        names = pd.DataFrame(state.fitted.manifest.get("segments") or [], columns=["segment", "name", "action"])
        saved = state.workspace.save("customers", _with_segments(engine, customers, state.fitted.segmentation, names))
        state.tables["customers"] = saved
        state.frames["segment_names"] = state.fitted.names()["segment"]
        state.manifest["segments"] = {"assigned": int(saved.segment.notnull().sum().execute())}
        return
    options, seed = state.settings.cluster, state.settings.seed
    count = int(customers.count().execute())
    needed = min_customers(options)
    if count < needed:
        state.frames["segments"] = rfm_segment_rows(state.frames["rfm_segments"])
        state.manifest["segments"] = {"skipped": f"{count} customers; learned segments need {needed}"}
        return
    on_driver = count <= state.settings.engine.max_driver_customers
    positions = sample_positions(
        count, min(options.max_fit_customers, state.settings.engine.max_driver_customers), seed
    )
    if on_driver:
        sample = customers.order_by("customer_id").execute().iloc[positions].reset_index(drop=True)
    else:
        sample = rows_at(customers, positions)
    backtest = state.frames.get("backtest")
    segmentation = Segmentation(options=options, validation=state.settings.validation, random_state=seed)
    segmentation.fit(sample, backtest=backtest)
    learned = {"customer_id": sample.customer_id, "segment_noise": segmentation.noise_}
    if segmentation.embedding_ is not None:
        learned.update(tsne_x=segmentation.embedding_[:, 0], tsne_y=segmentation.embedding_[:, 1])
    learned = engine.register("segment_sample", pa.Table.from_pandas(pd.DataFrame(learned), preserve_index=False))
    segmented = _assigned(engine, customers, segmentation).left_join(learned, "customer_id")
    segmented = segmented.drop("customer_id_right")
    segmented = state.workspace.save(
        "segmented", segmented.mutate(segment_noise=segmented.segment_noise.fill_null(False)), temp=True
    )
    worth = None
    horizon = state.settings.validation.horizon_days
    if backtest is not None:
        # The final segments applied to the backtest customers: what a customer of each was worth next.
        then = segment_ids(segmentation.predict(backtest))
        outcomes = Outcomes.of(backtest)
        worth = segment_outcomes(then, outcomes)
        folds, weights = state.frames["backtest_scoring"]
        state.manifest["validation"]["segments"] = {
            **score_labels(np.asarray(then), outcomes, folds, weights).summary(),
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
        state.frames["category_labels"],
        gap_days=typical_gap_days(profiled),
        worth=worth,
        horizon_days=horizon,
    )
    if not on_driver:
        profiles = exact_sizes(profiles, segmented)
    state.tables["customers"] = state.workspace.save("customers", _named(engine, segmented, profiles))
    state.frames["segment_names"] = dict(zip(profiles.segment, profiles.name, strict=True))
    state.frames["segments"] = pd.concat([rfm_segment_rows(state.frames["rfm_segments"]), profiles], ignore_index=True)
    state.frames["segmentation"] = segmentation
    state.frames["profiles"] = profiles
    chosen = json_records(pd.DataFrame([segmentation.chosen_]))[0]
    state.manifest["segments"] = {
        "rule": segmentation.rule_,
        "reason": segmentation.reason_,
        "chosen_by": "backtest" if backtest is not None else "silhouette",
        "features": segmentation.columns_,
        "typical_gap_days": round(typical_gap_days(profiled), 1),
        "searched_on_customers": min(len(backtest if backtest is not None else sample), options.search_customers),
        "fitted_on_customers": len(sample),
        "profiled_on_customers": len(profiled),
        "chosen": chosen,
        "classifier_agreement": segmentation.classifier_agreement_,
        "candidates": json_records(segmentation.candidates_),
        "profiles": json_records(profiles.drop(columns=["description", "action"])),
    }


def _learn_early(state: _State, lines: ir.Table, segmentation: Segmentation | None) -> dict:
    """Fit and measure the early models on the customers old enough to have reached the horizon."""
    options, engine = state.settings.predict, state.workspace.engine
    products, categories = state.tables["products"], state.frames["category_order"]
    eligible = horizon_features(lines, products, categories, options.horizon_days, state.frames["as_of"])
    most = min(options.max_train_customers, state.settings.engine.max_driver_customers)
    horizon, _ = rows_at_most(eligible, most, state.settings.seed)
    if horizon.empty:
        state.manifest["early"] = {
            "skipped": f"no customer's first order is at least {options.horizon_days} days before the reference "
            "date: there is nobody to learn from what new customers become"
        }
        return {}
    learners = engine.register("early_learners", pa.table({"customer_id": pa.array(horizon.customer_id, pa.string())}))
    early = first_orders(
        lines.semi_join(learners, "customer_id"), products, categories, options.max_orders, segmentation
    )
    targets = pd.DataFrame(
        {
            "customer_id": horizon.customer_id,
            "joined_at": horizon.joined_at,
            "segment": segment_ids(segmentation.predict(horizon)) if segmentation is not None else None,
            "category": horizon.dominant_category,
        }
    )
    state.manifest["early"], models = evaluate_early(
        early, targets, categories, options=options, seed=state.settings.seed
    )
    state.manifest["early"]["learned_from_customers"] = len(horizon)
    state.frames["early_models"] = models
    return models


def _predict(state: _State) -> None:
    options = state.settings.predict
    if not options.enabled:
        state.manifest["early"] = {"skipped": "[predict] enabled = false"}
        return
    engine = state.workspace.engine
    products, categories = state.tables["products"], state.frames["category_order"]
    lines = lines_before(state.tables["lines"], state.frames["as_of"]).drop("as_of")
    segmentation = state.fitted.segmentation if state.fitted is not None else state.frames.get("segmentation")
    models = state.fitted.early if state.fitted is not None else _learn_early(state, lines, segmentation)
    # Customers younger than the horizon: what they are now is not yet what they will be. The
    # engine predicts them batch by batch.
    customers = state.tables["customers"]
    usable = usable_orders(models)
    if usable:
        young = customers.filter(customers.tenure_days < options.horizon_days).select("customer_id")
        names = {"segment": state.frames.get("segment_names", {}), "category": state.frames["category_labels"]}
        predicted = engine.map_batches(
            "early_predictions",
            early_rows(lines, products, categories, young, usable),
            functools.partial(
                predict_batch, models=models, categories=categories, names=names, segmentation=segmentation
            ),
            EARLY_SCHEMA,
        )
        customers = customers.left_join(predicted, "customer_id").drop("customer_id_right")
    else:
        early_types = ibis.Schema.from_pyarrow(EARLY_SCHEMA)
        customers = customers.mutate(**{name: ibis.null(early_types[name]) for name in EARLY_COLUMNS})
    state.tables["customers"] = state.workspace.save("customers", customers.order_by("customer_id"))
    predicted_customers = state.tables["customers"].early_orders.notnull().sum().execute()
    state.manifest.setdefault("early", {})["predicted_customers"] = int(predicted_customers)


def _report(state: _State) -> None:
    if state.fitted is None:
        written = write_report(state.workspace.path, state.workspace.backend, state.manifest)
        state.manifest["report"] = str(state.workspace.final / written.name)


def _course(state: _State) -> None:
    customers, report = run_course(state.tables["transactions"].execute())
    saved = state.workspace.save("course_customers", customers.reset_index())
    state.workspace.write_parquet(saved, "course_customers.parquet")
    state.manifest["course"] = report


def _write(state: _State) -> None:
    workspace = state.workspace
    if state.fitted is not None:
        assigned = state.tables["customers"].select(*ASSIGNED_COLUMNS).order_by("customer_id").execute()
        assigned["as_of"] = state.manifest["customers"]["as_of"]
        out = state.assign_out
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written beside and moved into place: a failed write never leaves half a file.
        partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
        if out.suffix.lower() == ".parquet":
            assigned.to_parquet(partial, index=False)
        else:
            assigned.to_csv(partial, index=False)
        partial.replace(out)
        return
    workspace.write_parquet(state.tables["rejected"], "rejected.parquet")
    workspace.write_parquet(state.tables["customers"], "customers.parquet")
    workspace.write_csv(state.frames["segments"], "segments.csv")
    workspace.write_csv(state.frames["categories"], "categories.csv")
    workspace.save("segments", state.frames["segments"])
    segmentation = state.frames.get("segmentation")
    manifest = model_manifest(
        version=__version__,
        trained_on={k: state.manifest["input"][k] for k in ("path", "sha256", "bytes")},
        settings=state.settings.to_dict(),
        as_of=state.manifest["customers"]["as_of"],
        scorer=state.frames["scorer"],
        products=state.frames["products"],
        profiles=state.frames.get("profiles"),
        features=segmentation.columns_ if segmentation is not None else None,
    )
    workspace.write_model(manifest, segmentation, state.frames.get("early_models"))


_STAGE_FUNCTIONS: dict[str, Callable[[_State], None]] = {
    "read": _read,
    "clean": _clean,
    "products": _products,
    "features": _features,
    "rfm": _rfm,
    "backtest": _backtest,
    "segments": _segments,
    "predict": _predict,
    "write": _write,
    "report": _report,
    "course": _course,
}


def run(
    data: str | Path | pd.DataFrame | pa.Table,
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    until: str | None = None,
    fitted: FittedModel | None = None,
    assign_out: Path | None = None,
) -> RunResult:
    """Run the stages on ``data`` and fill ``out_dir``.

    Parameters
    ----------
    data : str, Path, DataFrame or pyarrow.Table
        The transaction log (CSV, gzip CSV, Parquet or Excel, or a table in memory); with the Spark
        engine also a Parquet URL or a Spark table name.
    out_dir : str or Path
        The output folder (created; its previous database is replaced).
    settings : Settings, optional
        Defaults to `Settings()`.
    on_stage : callable, optional
        Called with each stage's name (`STAGES`) as it starts, for progress display.
    until : str, optional
        Stop after this stage (for benchmarks and debugging); run.json then covers the stages run.
    fitted : FittedModel, optional
        Apply this model instead of learning (`assign`); the result goes to ``assign_out``.
    assign_out : Path, optional
        With ``fitted``: the Parquet or CSV file of assigned customers.

    Returns
    -------
    RunResult

    Raises
    ------
    CustsegError
        For any problem with the input or the settings.
    """
    settings = settings or Settings()
    stages = COURSE_STAGES if settings.recipe == "course" else STAGES
    if until is not None and until not in stages:
        raise ValueError(f"until={until!r} must be one of {', '.join(stages)}")
    timings = _Timings(on_stage)
    workspace = Workspace(out_dir, settings.engine)
    workspace.open()
    # A URL stays text: Path would fold its "//".
    if not isinstance(data, pd.DataFrame | pa.Table) and "://" not in str(data):
        data = Path(data)
    state = _State(data=data, settings=settings, workspace=workspace, fitted=fitted, assign_out=assign_out)
    state.manifest.update(custseg_version=__version__, settings=settings.to_dict())
    try:
        for name in stages:
            with timings.stage(name):
                _STAGE_FUNCTIONS[name](state)
            if name == until:
                break
        state.manifest["timings_s"] = timings.seconds
        state.manifest["versions"] = package_versions()
        workspace.write_json(state.manifest)
    except BaseException:
        workspace.abort()
        raise
    workspace.commit()
    return RunResult(out_dir=Path(out_dir), manifest=state.manifest)


def assign(
    data: str | Path | pd.DataFrame | pa.Table,
    model: str | Path | FittedModel,
    out: str | Path,
    *,
    input_options=None,
    as_of: datetime.date | None = None,
) -> RunResult:
    """Assign RFM and learned segments to the customers of ``data`` with a stored model.

    ``model`` is a run's output folder, its ``model/`` folder or a model loaded from one.

    The transactions are cleaned with the model's rules, products get the model's categories,
    features are computed as of ``as_of`` (default: the day after the data's last transaction),
    RFM is scored with the stored cut points and the learned segment comes from the stored
    segmentation. Writes ``out`` (Parquet, or CSV for any other extension).

    Raises
    ------
    CustsegError
        For a bad input file, a missing or untrusted model.
    """
    import dataclasses
    import tempfile

    from custseg.settings import settings_from_dict
    from custseg.workspace import load_model

    out = Path(out)
    if out.is_dir():
        raise InputFileError(f"--out {out}: is a folder; give a file name ending in .parquet (or .csv)")
    fitted = model if isinstance(model, FittedModel) else load_model(model)
    settings = settings_from_dict(fitted.manifest["settings"])
    settings = dataclasses.replace(settings, as_of=as_of, input=input_options or settings.input)
    with tempfile.TemporaryDirectory(prefix="custseg-assign-") as folder:
        result = run(data, folder, settings, fitted=fitted, assign_out=Path(out))
    return RunResult(out_dir=Path(out), manifest=result.manifest)
