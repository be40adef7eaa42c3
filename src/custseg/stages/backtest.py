"""Backtest: the customers as of T - H, what they did in the last H days, and the RFM map scored on them."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custseg.backtest import (
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
from custseg.record import BacktestSection, Ceilings, RFMBacktest, Skipped, frozen
from custseg.rfm import RFMScorer
from custseg.sampling import rows_at_most
from custseg.settings import Settings
from custseg.spaces import FeatureSpace
from custseg.stages import Store
from custseg.stages.clean import Cleaned
from custseg.stages.customers import Features
from custseg.stages.products import Products
from custseg.workspace import json_records


@frozen
class Backtest:
    """The backtest customers and the plan every segmentation is scored with.

    ``customers`` (every backtest customer, or a sample of them, with their outcomes), ``folds``
    and ``weights`` (the out-of-fold and bootstrap plan) are None when the backtest is skipped;
    ``table`` holds all of them in the engine whenever the log reaches back to T - H, even when
    their outcomes cannot score anything (the movement from T - H still needs them).
    """

    backtest: BacktestSection | Skipped
    customers: pd.DataFrame | None = None
    folds: np.ndarray | None = None
    weights: np.ndarray | None = None
    table: ir.Table | None = None


def build_backtest(
    *, clean: Cleaned, products: Products, features: Features, settings: Settings, store: Store
) -> Backtest:
    """Build the customers as of T - H with what they did in the last H days; score the RFM map on them."""
    options, as_of = settings.backtest, features.as_of
    if not options.enabled:
        return Backtest(backtest=Skipped(reason="[backtest] enabled = false"))
    reason = history_reason(clean.span.first_invoiced_at, as_of, options.horizon_days)
    if reason:
        return Backtest(backtest=Skipped(reason=reason))
    table = backtest_customers(clean.lines, products.table, products.order, as_of, options.horizon_days)
    stored = store.cache("backtest_customers", table)
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    customers, count = rows_at_most(stored, most, settings.seed)
    outcomes = Outcomes.of(customers)
    reason = outcomes.degenerate()
    if reason is None and len(customers) < options.min_customers:
        reason = f"{len(customers)} backtest customers; a backtest needs {options.min_customers}"
    if reason:
        return Backtest(backtest=Skipped(reason=reason), table=stored)
    start = backtest_date(as_of, options.horizon_days)
    scorer = RFMScorer.from_options(settings.rfm).fit(customers)
    rfm_columns = ["customer_id", "recency_days", "frequency", "monetary"]
    rfm_labels = (
        scorer.transform(ibis.memtable(customers[rfm_columns])).order_by("customer_id").execute().rfm_segment.to_numpy()
    )
    folds = fold_ids(len(customers), options.folds, settings.seed)
    weights = bootstrap_weights(len(customers), options.bootstrap, settings.seed)
    points = FeatureSpace(features=settings.cluster.features, interests=settings.cluster.interests)
    section = BacktestSection(
        horizon_days=options.horizon_days,
        as_of=start,
        window=(start, as_of),
        customers=count,
        scored_on_customers=len(customers),
        returned_share=round(float(outcomes.returned.mean()), 4),
        mean_revenue=round(float(outcomes.revenue.mean()), 2),
        protocol=(
            f"customers as of {start.date()} (T - {options.horizon_days} days), described by the same stages and "
            f"rules; what they did from then to {as_of.date()}: ordered again (an order of positive net revenue) "
            f"and their net revenue. Segment rates are out of fold ({options.folds} folds): each customer is scored "
            f"by the other folds' customers of the same segment; standard errors from {options.bootstrap} bootstrap "
            f"resamples of the customers"
        ),
        rfm=RFMBacktest(
            **score_labels(rfm_labels, outcomes, folds, weights).summary(),
            cut_points=scorer.cut_points_,
            segments=json_records(segment_outcomes(rfm_labels, outcomes)),
        ),
        ceilings=Ceilings(**ceilings(points.fit_transform(customers), outcomes, folds)),
    )
    return Backtest(backtest=section, customers=customers, folds=folds, weights=weights, table=stored)
