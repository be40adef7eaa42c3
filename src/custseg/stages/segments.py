"""Segments: the learned segments chosen by the backtest, profiled and named; or a stored model's."""

from __future__ import annotations

import functools

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from custseg.backtest import Outcomes, score_labels, segment_outcomes
from custseg.cluster import Segmentation, min_customers
from custseg.errors import ConfigError
from custseg.features import typical_gap_days, with_customer_columns
from custseg.model import NAMED_SEGMENT_COLUMNS, FittedModel, load_model
from custseg.profile import exact_sizes, profile_segments, rfm_segment_rows, segment_ids
from custseg.record import AssignedSegments, KeptSegments, SegmentsBacktest, SegmentsSection, Skipped, frozen
from custseg.rules import rule_records
from custseg.sampling import rows_at, sample_positions
from custseg.settings import Settings
from custseg.spaces import LEARNED_ON_OUTCOMES
from custseg.stages import Store
from custseg.stages.backtest import Backtest
from custseg.stages.customers import RFM
from custseg.stages.interests import Interests
from custseg.stages.products import Products
from custseg.stages.read import Read
from custseg.workspace import json_records


@frozen
class Segments:
    """Customers with their learned segment, name and action (``table``), and the segments' rows.

    ``rows`` are segments.csv's rows (the RFM segments and the learned ones); ``names`` maps a
    learned segment's id to its name; ``profiles`` are the learned rows (None without them).
    """

    table: ir.Table
    rows: pd.DataFrame
    names: dict[str, str]
    segments: SegmentsSection | Skipped | AssignedSegments
    segmentation: Segmentation | None = None
    profiles: pd.DataFrame | None = None


SEGMENT_SCHEMA = pa.schema([("customer_id", pa.string()), ("segment", pa.string())])
"""What the engine's batches of customers get back: each customer's learned segment."""


def segment_batch(customers: pd.DataFrame, segmentation: Segmentation) -> pd.DataFrame:
    """Return customer_id and learned segment id (`SEGMENT_SCHEMA`) of a batch of customers."""
    ids = segment_ids(segmentation.predict(customers)) if len(customers) else []
    return pd.DataFrame({"customer_id": customers.customer_id.to_numpy(), "segment": ids})


def assigned(store: Store, customers: ir.Table, segmentation: Segmentation) -> ir.Table:
    """Add each customer's learned segment; the engine assigns them batch by batch."""
    segments = store.engine.map_batches(
        "segment_assignment",
        customers.select("customer_id", *segmentation.columns_),
        functools.partial(segment_batch, segmentation=segmentation),
        SEGMENT_SCHEMA,
    )
    return with_customer_columns(customers, segments)


def _named(store: Store, segmented: ir.Table, profiles: pd.DataFrame) -> ir.Table:
    """Add segment_name, segment_rule and action from the profiles, in customer id order."""
    columns = {"segment": "segment", "name": "segment_name", "rule": "segment_rule", "action": "action"}
    table = pa.Table.from_pandas(profiles[list(columns)].rename(columns=columns), preserve_index=False)
    named = segmented.left_join(store.engine.register("segment_names", table), "segment").drop("segment_right")
    return named.order_by("customer_id")


def learn_segments(
    *,
    read: Read,
    rfm: RFM,
    interests: Interests,
    products: Products,
    backtest: Backtest,
    settings: Settings,
    store: Store,
) -> Segments:
    """Choose, fit, profile and name the learned segments; give every customer one.

    Amounts in their rules, names and actions are written in the input's currency (``read.input.currency``).
    """
    currency = read.input.currency
    customers, options, seed = interests.table, settings.cluster, settings.seed
    count = int(customers.count().execute())
    needed = min_customers(options)
    if count < needed:
        return Segments(
            table=customers,
            rows=rfm_segment_rows(rfm.segment_sizes),
            names={},
            segments=Skipped(reason=f"{count} customers; learned segments need {needed}"),
        )
    on_driver = count <= settings.engine.max_driver_customers
    positions = sample_positions(count, min(options.max_fit_customers, settings.engine.max_driver_customers), seed)
    if on_driver:
        sample = customers.order_by("customer_id").execute().iloc[positions].reset_index(drop=True)
    else:
        sample = rows_at(customers, positions)
    history = backtest.customers
    fresh = Segmentation(options=options, backtest_options=settings.backtest, random_state=seed)
    fresh.fit(sample, backtest=history)
    segmentation, kept_names = fresh, None
    if options.segments_from:
        earlier = load_model(options.segments_from)
        if earlier.segmentation is None or not earlier.manifest.get("segments"):
            raise ConfigError(f"--segments-from {options.segments_from}: that run has no learned segments to keep")
        segmentation, kept_names = earlier.segmentation, earlier.names()["segment"]
    learned = {"customer_id": sample.customer_id, "segment_noise": fresh.noise_ & (segmentation is fresh)}
    if fresh.embedding_ is not None:
        learned.update(tsne_x=fresh.embedding_[:, 0], tsne_y=fresh.embedding_[:, 1])
    learned = store.engine.register("segment_sample", pa.Table.from_pandas(pd.DataFrame(learned), preserve_index=False))
    segmented = with_customer_columns(assigned(store, customers, segmentation), learned)
    segmented = store.cache("segmented", segmented.mutate(segment_noise=segmented.segment_noise.fill_null(False)))
    worth = figures = kept = None
    if history is not None:
        # The final segments applied to the backtest customers: what a customer of each was worth next.
        then = segment_ids(segmentation.predict(history))
        outcomes = Outcomes.of(history)
        worth = segment_outcomes(then, outcomes)
        scores = score_labels(np.asarray(then), outcomes, backtest.folds, backtest.weights)
        if segmentation is not fresh:
            learned_on = f"kept from {options.segments_from}, fitted on an earlier log"
        elif fresh.chosen_["space"] in LEARNED_ON_OUTCOMES:
            learned_on = "their space was learned on these same outcomes"
        else:
            learned_on = "they were fitted without these outcomes"
        figures = SegmentsBacktest(
            **scores.summary(),
            note="the final segments (refitted as of the reference date) applied to the backtest customers; "
            + learned_on,
            per_segment=json_records(worth),
        )
        if segmentation is not fresh:
            kept = _kept(options, earlier.model_id, scores, fresh, history, outcomes, backtest)
    elif segmentation is not fresh:
        kept = KeptSegments(
            run=options.segments_from,
            model_id=earlier.model_id,
            validity=float("nan"),
            fresh_validity=float("nan"),
            fresh_segments=fresh.n_segments_,
            advice="no backtest to compare the kept segments with a fresh fit",
        )
    # Profiles describe every customer on the driver, else the sample (sizes and revenue exact).
    profiled = segmented.order_by("customer_id").execute() if on_driver else rows_at(segmented, positions)
    rules = segmentation.rules()
    profiles = profile_segments(
        profiled,
        products.labels,
        gap_days=typical_gap_days(profiled),
        worth=worth,
        horizon_days=settings.backtest.horizon_days,
        rules=rules,
        names=kept_names,
        interest_groups=interests.groups,
        currency=currency,
    )
    if not on_driver:
        profiles = exact_sizes(profiles, segmented)
    return Segments(
        table=_named(store, segmented, profiles),
        rows=pd.concat([rfm_segment_rows(rfm.segment_sizes), profiles], ignore_index=True),
        names=dict(zip(profiles.segment, profiles.name, strict=True)),
        segments=SegmentsSection(
            rule=fresh.rule_,
            reason=fresh.reason_ if kept is None else f"kept from {kept.run}: {kept.advice}",
            chosen_by="backtest" if history is not None else "silhouette",
            features=segmentation.columns_,
            typical_gap_days=round(typical_gap_days(profiled), 1),
            searched_on_customers=min(len(history if history is not None else sample), options.search_customers),
            fitted_on_customers=len(sample),
            profiled_on_customers=len(profiled),
            chosen=json_records(pd.DataFrame([fresh.chosen_]))[0],
            classifier_agreement=segmentation.classifier_agreement_,
            candidates=json_records(fresh.candidates_),
            profiles=json_records(profiles.drop(columns=["description", "action"])),
            rules=None if rules is None else rule_records(rules, currency),
            backtest=figures,
            kept=kept,
        ),
        segmentation=segmentation,
        profiles=profiles,
    )


def _kept(options, model_id, scores, fresh, history, outcomes, backtest) -> KeptSegments:
    """Compare kept segments with the fresh fit on the same backtest customers, and say which to use."""
    fresh_scores = score_labels(
        np.asarray(segment_ids(fresh.predict(history))), outcomes, backtest.folds, backtest.weights
    )
    # The choice's own margin: as good when within parsimony of the fresh fit, or within one standard error.
    margin = max(options.parsimony * fresh_scores.validity, fresh_scores.gap_standard_error(scores))
    shortfall = fresh_scores.validity - scores.validity
    if shortfall > margin:
        advice = (
            f"a fresh fit ({fresh.n_segments_} segments) predicts the backtest's months better: validity "
            f"{fresh_scores.validity:.3f} against {scores.validity:.3f} for the kept segments; run without "
            "--segments-from to refit"
        )
    else:
        advice = (
            f"the kept segments predict the backtest's months as well as a fresh fit (validity "
            f"{scores.validity:.3f} against {fresh_scores.validity:.3f}, within {margin:.3f}): keep them"
        )
    return KeptSegments(
        run=options.segments_from,
        model_id=model_id,
        validity=round(scores.validity, 4),
        fresh_validity=round(fresh_scores.validity, 4),
        fresh_segments=fresh.n_segments_,
        advice=advice,
    )


NAMED_SEGMENT_SCHEMA = pa.schema([("customer_id", pa.string()), *((c, pa.string()) for c in NAMED_SEGMENT_COLUMNS)])


def named_segment_batch(customers: pd.DataFrame, fitted: FittedModel) -> pd.DataFrame:
    """Return customer_id and a stored model's segment, name and action (`NAMED_SEGMENT_SCHEMA`)."""
    named = fitted.assign(customers).reset_index(drop=True)
    return pd.concat([customers[["customer_id"]].reset_index(drop=True), named], axis=1)


def stored_segments(*, interests: Interests, fitted: FittedModel, store: Store) -> Segments:
    """Give every customer a stored model's learned segment, name and action (null without one)."""
    customers = interests.table
    if fitted.segmentation is None or not fitted.manifest.get("segments"):
        segmented = customers.mutate(**{column: ibis.null(dt.string) for column in NAMED_SEGMENT_COLUMNS})
    else:
        named = store.engine.map_batches(
            "segment_assignment",
            customers.select("customer_id", *fitted.segmentation.columns_),
            functools.partial(named_segment_batch, fitted=fitted),
            NAMED_SEGMENT_SCHEMA,
        )
        segmented = with_customer_columns(customers, named).order_by("customer_id")
    segmented = store.cache("segmented", segmented)
    return Segments(
        table=segmented,
        rows=pd.DataFrame(fitted.manifest.get("segments") or []),
        names=fitted.names()["segment"],
        segments=AssignedSegments(assigned=int(segmented.segment.notnull().sum().execute())),
        segmentation=fitted.segmentation,
    )
