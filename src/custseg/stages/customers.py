"""Customers: one row per customer as of a date (features and interests), and their RFM scores."""

from __future__ import annotations

import datetime

import ibis.expr.types as ir
import pandas as pd

from custseg.errors import NoRowsLeftError
from custseg.features import customer_table, fully_returned_customers, reference_date
from custseg.model import FittedModel
from custseg.record import CustomersSection, FullyReturned, RFMSection, RFMSegment, frozen
from custseg.rfm import RFMScorer, segment_summary
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.clean import Cleaned
from custseg.stages.products import Products
from custseg.stages.read import Read


@frozen
class Features:
    """One row per customer as of ``as_of`` (``table``), and the record's ``customers`` section."""

    table: ir.Table
    as_of: datetime.datetime
    customers: CustomersSection


def default_as_of(settings: Settings, transactions: ir.Table) -> datetime.datetime:
    """Return the reference date: the settings' ``as_of``, else the day after the last transaction."""
    if settings.as_of:
        return datetime.datetime.combine(settings.as_of, datetime.time())
    return reference_date(transactions.invoiced_at.max().execute())


def customer_features(
    *,
    read: Read,
    clean: Cleaned,
    products: Products,
    settings: Settings,
    store: Store,
    as_of: datetime.datetime | None = None,
) -> Features:
    """Compute every customer's features and interests as of ``as_of`` (default: `default_as_of`).

    Raises
    ------
    NoRowsLeftError
        When no customer has an order of positive net revenue before ``as_of``.
    """
    as_of = as_of or default_as_of(settings, read.transactions)
    joined = customer_table(clean.lines, products.table, products.order, as_of)
    features = store.cache("customer_features", joined)
    count = int(features.count().execute())
    if count == 0:
        raise NoRowsLeftError(f"{read.input.path}: no customer has an order with positive net revenue before {as_of}")
    returned = fully_returned_customers(clean.lines, as_of).order_by("customer_id").execute()
    return Features(
        table=features,
        as_of=as_of,
        customers=CustomersSection(
            as_of=as_of,
            count=count,
            fully_returned=FullyReturned(count=len(returned), customer_ids=returned.customer_id.tolist()),
        ),
    )


@frozen
class RFM:
    """Customers with their RFM scores and segment (``table``), the scorer and the segment sizes."""

    table: ir.Table
    scorer: RFMScorer
    segment_sizes: pd.DataFrame
    rfm: RFMSection


def score_rfm(*, features: Features, settings: Settings, store: Store, scorer: RFMScorer | None = None) -> RFM:
    """Score every customer, with cut points learned on them unless a fitted ``scorer`` is given."""
    scorer = scorer or RFMScorer.from_options(settings.rfm).fit(features.table)
    customers = store.cache("rfm_customers", scorer.transform(features.table).order_by("customer_id"))
    sizes = segment_summary(customers, scorer.segment_rules())
    rows = sizes.drop(columns=["description", "action"]).astype(object).where(sizes.notna(), None)
    return RFM(
        table=customers,
        scorer=scorer,
        segment_sizes=sizes,
        rfm=RFMSection(
            bins=scorer.bins,
            cut_points=scorer.cut_points_,
            segment_map=settings.rfm.segment_map,
            segments=[RFMSegment(**row) for row in rows.to_dict(orient="records")],
        ),
    )


def stored_rfm(*, features: Features, fitted: FittedModel, settings: Settings, store: Store) -> RFM:
    """Score every customer with a stored model's cut points and segment map."""
    return score_rfm(features=features, settings=settings, store=store, scorer=fitted.scorer())
