"""Early: what customers younger than the horizon will become, predicted from their first orders."""

from __future__ import annotations

import functools

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from custseg.early import EARLY_COLUMNS, EARLY_SCHEMA, EarlyClassifier, evaluate_early, predict_batch, usable_orders
from custseg.features import lines_before, with_customer_columns
from custseg.first_orders import early_rows, first_orders, horizon_features, old_enough
from custseg.model import FittedModel
from custseg.profile import segment_ids
from custseg.record import AssignedEarly, EarlySection, Skipped, frozen
from custseg.sampling import lines_of_at_most
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.clean import Cleaned
from custseg.stages.customers import Features
from custseg.stages.products import Products
from custseg.stages.segments import Segments
from custseg.stages.value import Value

EarlyModels = dict[str, dict[str, EarlyClassifier]]
"""The early models, ``models[target][str(n_orders)]`` (empty when none)."""


@frozen
class Early:
    """Customers with the early prediction's columns (``table``), the models and the record's section."""

    table: ir.Table
    models: EarlyModels
    early: EarlySection | Skipped | AssignedEarly


def learn_early(
    *,
    value: Value,
    clean: Cleaned,
    products: Products,
    features: Features,
    segments: Segments,
    settings: Settings,
    store: Store,
) -> Early:
    """Fit and measure the early models on customers old enough to have reached the horizon; predict the young."""
    options = settings.early
    if not options.enabled:
        return Early(table=value.table, models={}, early=Skipped(reason="[early] enabled = false"))
    known = lines_before(clean.lines, features.as_of).drop("as_of")
    most = min(options.max_train_customers, settings.engine.max_driver_customers)
    drawn = lines_of_at_most(known, old_enough(known, options.horizon_days, features.as_of), most, settings.seed)
    eligible = horizon_features(drawn, products.table, products.order, options.horizon_days, features.as_of)
    horizon = eligible.order_by("customer_id").execute()
    if horizon.empty:
        reason = (
            f"no customer's first order is at least {options.horizon_days} days before the reference date: there "
            "is nobody to learn from what new customers become"
        )
        predicted = _predicted(value.table, {}, clean, products, features, segments, settings, store)
        return Early(table=predicted, models={}, early=Skipped(reason=reason))
    learners = store.engine.register(
        "early_learners", pa.table({"customer_id": pa.array(horizon.customer_id, pa.string())})
    )
    segmentation = segments.segmentation
    early = first_orders(
        known.semi_join(learners, "customer_id"), products.table, products.order, options.max_orders, segmentation
    )
    targets = pd.DataFrame(
        {
            "customer_id": horizon.customer_id,
            "joined_at": horizon.joined_at,
            "segment": segment_ids(segmentation.predict(horizon)) if segmentation is not None else None,
            "category": horizon.dominant_category,
        }
    )
    holdout = evaluate_early(early, targets, products.order, options=options, seed=settings.seed)
    predicted = _predicted(value.table, holdout.models, clean, products, features, segments, settings, store)
    section = EarlySection(
        horizon_days=options.horizon_days,
        test_share=options.test_share,
        eligible_customers=len(targets),
        test_joined_from=holdout.test_joined_from,
        protocol=(
            f"customers whose first order is at least {options.horizon_days} days before the end of the data; "
            f"the latest-joining {options.test_share:.0%} are the test set; models are chosen by "
            f"{options.cv_folds}-fold cross-validation on the others only; inputs are each customer's first N orders "
            f"as placed (later returns not netted), for customers whose N-th order came within the horizon"
        ),
        results=holdout.results,
        learned_from_customers=len(horizon),
        predicted_customers=_count_predicted(predicted),
    )
    return Early(table=predicted, models=holdout.models, early=section)


def stored_early(
    *,
    value: Value,
    clean: Cleaned,
    products: Products,
    features: Features,
    segments: Segments,
    fitted: FittedModel,
    settings: Settings,
    store: Store,
) -> Early:
    """Predict the young customers with a stored model's early models (null columns without them)."""
    models = fitted.early if settings.early.enabled else {}
    predicted = _predicted(value.table, models, clean, products, features, segments, settings, store)
    return Early(table=predicted, models=models, early=AssignedEarly(predicted_customers=_count_predicted(predicted)))


def _predicted(
    customers: ir.Table,
    models: EarlyModels,
    clean: Cleaned,
    products: Products,
    features: Features,
    segments: Segments,
    settings: Settings,
    store: Store,
) -> ir.Table:
    """Add the early prediction's columns (`EARLY_COLUMNS`) to customers younger than the horizon.

    What they are now is not yet what they will be; the engine predicts them batch by batch. The
    columns are there, null, for everyone else, and for everyone when there is no model.
    """
    usable = usable_orders(models)
    if usable:
        known = lines_before(clean.lines, features.as_of).drop("as_of")
        young = customers.filter(customers.tenure_days < settings.early.horizon_days).select("customer_id")
        predicted = store.engine.map_batches(
            "early_predictions",
            early_rows(known, products.table, products.order, young, usable),
            functools.partial(
                predict_batch,
                models=models,
                categories=products.order,
                names={"segment": segments.names, "category": products.labels},
                segmentation=segments.segmentation,
            ),
            EARLY_SCHEMA,
        )
        customers = with_customer_columns(customers, predicted)
    else:
        early_types = ibis.Schema.from_pyarrow(EARLY_SCHEMA)
        customers = customers.mutate(**{name: ibis.null(early_types[name]) for name in EARLY_COLUMNS})
    return store.cache("early_customers", customers.order_by("customer_id"))


def _count_predicted(customers: ir.Table) -> int:
    return int(customers.early_orders.notnull().sum().execute())
