"""Interests: customer interest groups, learned as of T - H, certified on the last H days, applied as of T."""

from __future__ import annotations

import datetime
import functools

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from custseg.features import interest_columns, with_customer_columns
from custseg.interests import (
    ENOUGH_GAIN,
    GROUP_RANGE,
    INTEREST_COLUMNS,
    InterestGroups,
    buying_habits,
    choose_groups,
    describe_groups,
    interest_batch,
    next_mix,
)
from custseg.model import FittedModel
from custseg.products import UNKNOWN
from custseg.record import BacktestSection, Skipped, frozen
from custseg.record.interests import InterestsSection, MixPrediction
from custseg.sampling import rows_at_most
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.backtest import Backtest
from custseg.stages.clean import Cleaned
from custseg.stages.customers import RFM, Features
from custseg.stages.products import Products
from custseg.workspace import json_records

INTEREST_SCHEMA = pa.schema([("customer_id", pa.string()), *((c, pa.string()) for c in INTEREST_COLUMNS)])


@frozen
class Interests:
    """Customers with their interest group (``table``), the groups (interest_groups.csv) and what the model keeps.

    ``groups`` and ``state`` are None when the groups were skipped (and, for ``state``, when they
    come from a stored model).
    """

    table: ir.Table
    interests: InterestsSection | Skipped | None
    groups: pd.DataFrame | None = None
    state: dict | None = None


def with_interests(customers: ir.Table, model: InterestGroups | None, names: dict[str, str], store: Store) -> ir.Table:
    """Add each customer's interest group (`INTEREST_COLUMNS`), null without a model."""
    if model is None:
        customers = customers.mutate(**{c: ibis.null(dt.string) for c in INTEREST_COLUMNS})
    else:
        grouped = store.engine.map_batches(
            "interest_groups",
            customers.select("customer_id", *(c for c in model.share_columns_ if c in customers.columns)),
            functools.partial(interest_batch, model=model, names=names),
            INTEREST_SCHEMA,
        )
        customers = with_customer_columns(customers, grouped)
    return store.cache("interest_customers", customers.order_by("customer_id"))


def learn_interests(
    *,
    clean: Cleaned,
    products: Products,
    features: Features,
    rfm: RFM,
    backtest: Backtest,
    settings: Settings,
    store: Store,
) -> Interests:
    """Learn the interest groups on the backtest customers as of T - H; group every customer as of T."""
    reason = _reason(products, backtest)
    if reason:
        return Interests(table=with_interests(rfm.table, None, {}, store), interests=Skipped(reason=reason))
    section: BacktestSection = backtest.backtest
    then = backtest.customers
    columns = list(interest_columns(products.order).values())
    following = next_mix(clean.lines, products.table, products.order, section.as_of, features.as_of).execute()
    following = following.set_index("customer_id")
    scored = then.customer_id.isin(following.index).to_numpy().nonzero()[0]
    actual = following.loc[then.customer_id.iloc[scored], columns].astype(float).fillna(0.0).to_numpy()
    choice = choose_groups(then, actual, scored, backtest.folds[scored], seed=settings.seed)
    model = choice.model
    if model is None:
        best = choice.candidates.reduction.max()
        reason = (
            f"no number of groups from {GROUP_RANGE[0]} to {GROUP_RANGE[1]} predicted the category mix of the next "
            f"{section.horizon_days} days better than the shop's average mix (at best {best:+.1%}, out of fold): "
            "what customers bought does not tell what they buy next here"
        )
        return Interests(table=with_interests(rfm.table, None, {}, store), interests=Skipped(reason=reason))
    # Named by today's members, who get the names (a sample of them on a large log).
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    habits = buying_habits(clean.lines, features.as_of)
    today, _ = rows_at_most(
        with_customer_columns(rfm.table.select("customer_id", *columns), habits), most, settings.seed
    )
    full_year = features.as_of - clean.span.first_invoiced_at >= datetime.timedelta(days=365)
    groups = describe_groups(today, model.predict(today), products.labels, model.n_groups, full_year=full_year)
    names = dict(zip(groups.interest_group, groups.interest_group_name, strict=True))
    table = with_interests(rfm.table, model, names, store)
    now = table.group_by("interest_group").aggregate(customers_now=table.count()).execute()
    then_counts = np.bincount(model.predict(then), minlength=model.n_groups)
    groups = groups.drop(columns=["customers", "share"]).merge(now, on="interest_group", how="left")
    groups.insert(2, "customers_then", then_counts)
    groups.insert(3, "share_then", np.round(then_counts / max(len(then), 1), 4))
    groups["customers_now"] = groups.customers_now.fillna(0).astype(int)
    scores = choice.scores
    return Interests(
        table=table,
        interests=InterestsSection(
            as_of=section.as_of,
            method=(
                "k-means on the square roots of each customer's category shares (Hellinger distance), each "
                "customer weighted by log(1 + their lines)"
            ),
            criterion=(
                f"{GROUP_RANGE[0]} to {GROUP_RANGE[1]} groups; the fewest that reach {ENOUGH_GAIN:.0%} of the largest "
                f"reduction in the out-of-fold cross-entropy of the next {section.horizon_days} days' category mix"
            ),
            chosen=model.n_groups,
            candidates=json_records(choice.candidates),
            backtest=MixPrediction(
                customers=len(scored),
                groups=round(scores.groups, 4),
                shop=round(scores.shop, 4),
                own_past=round(scores.own_past, 4),
                reduction=round(scores.gain, 4),
                own_past_reduction=round((scores.shop - scores.own_past) / scores.shop, 4) if scores.shop else 0.0,
            ),
            groups=json_records(groups),
        ),
        groups=groups,
        state={**model.state(), "names": names},
    )


def _reason(products: Products, backtest: Backtest) -> str | None:
    """Why the interest groups cannot be learned, or None."""
    if len([c for c in products.order if c != UNKNOWN]) < 2:
        return "fewer than 2 product categories (none without product text): interests cannot be told apart"
    if not isinstance(backtest.backtest, BacktestSection) or backtest.customers is None:
        reason = backtest.backtest.reason if isinstance(backtest.backtest, Skipped) else "no backtest"
        return f"interest groups are certified on the backtest, which was skipped: {reason}"
    return None


def stored_interests(*, rfm: RFM, fitted: FittedModel, store: Store) -> Interests:
    """Group customers with a stored model's interest groups (null when the model has none)."""
    model, names = fitted.interest_groups()
    return Interests(table=with_interests(rfm.table, model, names, store), interests=None)
