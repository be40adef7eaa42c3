"""Value: every customer's expected orders and revenue over the next H days, learned on the backtest."""

from __future__ import annotations

import datetime
import functools

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from custseg.backtest import backtest_customers, backtest_date, calibration, history_reason, value_scores
from custseg.errors import ConfigError
from custseg.features import lines_before, with_customer_columns
from custseg.forward import FEWEST_CUTS, LEVEL, coverage, cut_dates, ratio_interval, ratios
from custseg.model import FittedModel
from custseg.movement import NO_SEGMENT
from custseg.profile import segment_ids, segment_table_with_value, segment_value
from custseg.record import (
    Coverage,
    ExpectedTotals,
    ForwardCheck,
    ForwardChecks,
    Interval,
    Skipped,
    ValueFigures,
    ValueSection,
    frozen,
)
from custseg.sampling import lines_of_at_most, sample_positions
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.backtest import Backtest
from custseg.stages.clean import Cleaned
from custseg.stages.customers import Features
from custseg.stages.movement import Movement
from custseg.stages.products import Products
from custseg.stages.segments import Segments
from custseg.value import TARGETS, ValueModel, choose_model, value_columns
from custseg.workspace import json_records


@frozen
class Value:
    """Customers with their expected value over the next H days (``table``; null columns without a model).

    ``rows`` are segments.csv's rows with each segment's expected value and its backtest check;
    ``model`` the fitted `ValueModel` (None when skipped).
    """

    table: ir.Table
    rows: pd.DataFrame
    value: ValueSection | Skipped | None
    model: ValueModel | None = None


def value_batch(customers: pd.DataFrame, model: ValueModel, columns: dict[str, str]) -> pd.DataFrame:
    """Return customer_id and the value columns (`value_columns`) of a batch of customers."""
    predicted = model.predict(customers) if len(customers) else pd.DataFrame(columns=list(TARGETS), dtype=float)
    return pd.DataFrame(
        {"customer_id": customers.customer_id.to_numpy(), **{columns[t]: predicted[t].to_numpy() for t in TARGETS}}
    )


def with_value(customers: ir.Table, model: ValueModel | None, horizon_days: int, store: Store) -> ir.Table:
    """Add each customer's value columns (`custseg.value.value_columns`), null without a model."""
    columns = value_columns(horizon_days)
    if model is None:
        return customers.mutate(**{column: ibis.null(dt.float64) for column in columns.values()})
    schema = pa.schema([("customer_id", pa.string()), *((column, pa.float64()) for column in columns.values())])
    valued = store.engine.map_batches(
        "customer_value",
        customers.select("customer_id", *model.columns_),
        functools.partial(value_batch, model=model, columns=columns),
        schema,
    )
    return with_customer_columns(customers, valued).order_by("customer_id")


def _described(lines: ir.Table, products: Products, at: datetime.datetime, horizon: int) -> pd.DataFrame:
    """Describe the customers of ``lines`` as of ``at``, with what they did in the H days from it."""
    later = at + datetime.timedelta(days=horizon)
    return backtest_customers(lines, products.table, products.order, later, horizon).order_by("customer_id").execute()


def _segment_totals(frame: pd.DataFrame, predicted: pd.DataFrame, segments: Segments) -> list[dict]:
    """Per learned segment of the customers in ``frame``: customers, predicted and actual revenue."""
    if segments.segmentation is None or frame.empty:
        return []
    totals = pd.DataFrame(
        {
            "segment": segment_ids(segments.segmentation.predict(frame)),
            "predicted_revenue": predicted.expected_revenue.to_numpy(),
            "actual_revenue": frame.next_revenue.clip(lower=0).to_numpy(),
        }
    )
    grouped = totals.groupby("segment").agg(
        customers=("segment", "size"), predicted_revenue=("predicted_revenue", "sum"), actual=("actual_revenue", "sum")
    )
    grouped = grouped.rename(columns={"actual": "actual_revenue"}).round(2).reset_index()
    return json_records(grouped)


def _forward_checks(
    clean: Cleaned,
    products: Products,
    features: Features,
    segments: Segments,
    chosen: str,
    history: pd.DataFrame,
    settings: Settings,
    store: Store,
) -> ForwardChecks | Skipped:
    """Judge the chosen learner as it is used at every cut the log allows (`custseg.forward.cut_dates`).

    At a cut C it learns on the customers as of C - H and what they did up to C, and is scored on
    the H days from C. ``history`` are the customers as of T - H (the backtest's), the newest cut.
    """
    horizon, options = settings.backtest.horizon_days, settings.value
    cuts = cut_dates(
        clean.span.first_invoiced_at,
        features.as_of,
        horizon,
        step_days=options.forward_step_days,
        most=options.forward_cuts,
    )
    if not cuts:
        start = backtest_date(features.as_of, horizon)
        reason = history_reason(clean.span.first_invoiced_at, start, horizon)
        return Skipped(reason=f"{reason.replace('the reference date', 'T - H')} (a forward check needs {3 * horizon})")
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    # One sample of the customers as of the newest date to describe serves every date: those of
    # them already customers at an earlier date are a sample of that date's customers.
    dates = sorted({at for cut in cuts for at in (cut - datetime.timedelta(days=horizon), cut)} - {cuts[0]})
    known = lines_before(clean.lines, dates[-1]).select("customer_id").distinct()
    lines = lines_of_at_most(clean.lines, known, most, settings.seed)
    if lines is not clean.lines:
        lines = store.cache("forward_lines", lines)
    frames = {cuts[0]: history} | {at: _described(lines, products, at, horizon) for at in dates}
    checks = []
    for cut in cuts:
        trained_as_of = cut - datetime.timedelta(days=horizon)
        train, scored = frames[trained_as_of], frames[cut]
        model = ValueModel(
            model=chosen, features=options.features, interests=options.interests, random_state=settings.seed
        )
        try:
            model.fit(train, train[["next_orders", "next_revenue"]])
        except ConfigError:
            continue
        predicted = model.predict(scored)
        checks.append(
            ForwardCheck(
                trained_as_of=trained_as_of,
                trained_on_customers=len(train),
                scored_as_of=cut,
                segments=_segment_totals(scored, predicted, segments),
                **value_scores(predicted, scored[["next_orders", "next_revenue"]]),
            )
        )
    if not checks:
        return Skipped(reason="at every cut, the customers as of C - H all did the same in the H days to C")
    shop = coverage(_shop_ratios(checks))
    per_segment = [coverage(past) for past in _segment_ratios(checks).values()]
    held, tried = sum(h for h, _ in per_segment), sum(t for _, t in per_segment)
    return ForwardChecks(
        step_days=options.forward_step_days,
        level=LEVEL,
        cuts=checks,
        shop=Coverage(held=shop[0], tried=shop[1]) if shop[1] else None,
        segments=Coverage(held=held, tried=tried) if tried else None,
    )


def _shop_ratios(checks: list[ForwardCheck]) -> np.ndarray:
    return ratios([c.actual_revenue for c in checks], [c.predicted_revenue for c in checks])


def _segment_ratios(checks: list[ForwardCheck]) -> dict[str, np.ndarray]:
    """Each learned segment's actual over predicted revenue at the cuts where it had customers."""
    rows = pd.DataFrame([row for check in checks for row in check.segments])
    if rows.empty:
        return {}
    return {
        segment: ratios(group.actual_revenue, group.predicted_revenue) for segment, group in rows.groupby("segment")
    }


def _interval(total: float, past: np.ndarray, cuts: int) -> Interval | Skipped:
    """Return the interval of a forecast ``total`` from the forward checks' ratios ``past``."""
    multipliers = ratio_interval(past)
    if multipliers is None:
        return Skipped(reason=f"{cuts} forward check{'s' if cuts != 1 else ''}; an interval needs {FEWEST_CUTS}")
    return Interval(level=LEVEL, low=round(total * multipliers[0], 2), high=round(total * multipliers[1], 2))


def _without_value(segments: Segments, reason: str, horizon: int, store: Store) -> Value:
    """Return the customers and segments with empty value columns, and why."""
    empty = segment_table_with_value(segments.rows, None, None, value_columns(horizon))
    return Value(table=with_value(segments.table, None, horizon, store), rows=empty, value=Skipped(reason=reason))


def _expected_totals(valued: ir.Table, columns: dict[str, str], forward: ForwardChecks | Skipped) -> ExpectedTotals:
    """Return the customers, their expected orders and revenue in all (with its interval), and how many return."""
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
    return ExpectedTotals(
        customers=int(totals.customers),
        expected_orders=round(float(totals.expected_orders), 2),
        expected_revenue=round(float(totals.expected_revenue), 2),
        returning_customers=round(float(totals.returning_customers), 1),
        revenue_interval=(
            Skipped(reason=f"no forward check: {forward.reason}")
            if isinstance(forward, Skipped)
            else _interval(float(totals.expected_revenue), _shop_ratios(forward.cuts), len(forward.cuts))
        ),
    )


def _with_intervals(expected: pd.DataFrame, forward: ForwardChecks | Skipped, columns: dict[str, str]) -> pd.DataFrame:
    """Add each learned segment's interval of its expected revenue (``<total>_low``, ``_high``; NaN without)."""
    total = f"{columns['expected_revenue']}_total"
    past = _segment_ratios(forward.cuts) if isinstance(forward, ForwardChecks) else {}
    multipliers = [ratio_interval(past[s]) if s in past else None for s in expected.segment]
    low = [np.nan if m is None else m[0] for m in multipliers]
    high = [np.nan if m is None else m[1] for m in multipliers]
    return expected.assign(
        **{f"{total}_low": (expected[total] * low).round(2), f"{total}_high": (expected[total] * high).round(2)}
    )


def learn_value(
    *,
    segments: Segments,
    backtest: Backtest,
    movement: Movement,
    clean: Cleaned,
    products: Products,
    features: Features,
    settings: Settings,
    store: Store,
) -> Value:
    """Choose and fit the value model on the backtest, check it, and give every customer their expected value."""
    horizon, options = settings.backtest.horizon_days, settings.value
    columns = value_columns(horizon)
    if not options.enabled:
        return _without_value(segments, "[value] enabled = false", horizon, store)
    if backtest.customers is None:
        return _without_value(segments, f"no backtest: {backtest.backtest.reason}", horizon, store)
    # The candidates are scored on a sample (every figure below is of those customers); the winner learns from all.
    rows = sample_positions(len(backtest.customers), options.search_customers, settings.seed)
    history = backtest.customers.iloc[rows].reset_index(drop=True)
    actual = history[["next_orders", "next_revenue"]]
    try:
        model, candidates, chosen = choose_model(
            history,
            options,
            backtest.folds[rows],
            backtest.weights[:, rows],
            settings.seed,
            refit_on=backtest.customers,
        )
    except ConfigError as exc:
        return _without_value(segments, f"the backtest's customers: {exc}", horizon, store)
    calibrated = {"deciles": calibration(chosen.predicted, actual)}
    if movement.then is not None:
        ids = store.engine.register("value_backtest_ids", pa.table({"customer_id": pa.array(history.customer_id)}))
        labels = history[["customer_id"]].merge(
            movement.then.semi_join(ids, "customer_id").select("customer_id", "segment", "rfm_segment").execute(),
            on="customer_id",
            how="left",
        )
        for kind, column in (("learned", "segment"), ("rfm", "rfm_segment")):
            if labels[column].notna().any():
                calibrated[kind] = calibration(chosen.predicted, actual, labels[column].fillna(NO_SEGMENT))
    valued = store.cache("valued", with_value(segments.table, model, horizon, store))
    forward = _forward_checks(clean, products, features, segments, chosen.model, backtest.customers, settings, store)
    at_t = {}
    for kind, column in (("learned", "segment"), ("rfm", "rfm_segment")):
        if column in valued.columns:
            at_t[kind] = segment_value(valued, column, columns).execute()
    if "learned" in at_t:
        at_t["learned"] = _with_intervals(at_t["learned"], forward, columns)
    start = backtest_date(features.as_of, horizon)
    section = ValueSection(
        horizon_days=horizon,
        window=(features.as_of, features.as_of + datetime.timedelta(days=horizon)),
        columns=columns,
        protocol=(
            f"learned on the customers as of {start.date()} (T - {horizon} days) and what they did in the next "
            f"{horizon} days; applied to every customer as of {features.as_of.date()}. Candidates scored out of "
            f"fold on the backtest's folds (on at most {options.search_customers:,} of its customers) by validity = "
            "(return Gini of p_order_again + R squared of the expected log revenue) / 2, the segments' own score; "
            "the highest wins and learns from every backtest customer"
        ),
        chosen=chosen.model,
        candidates=[candidate.row() for candidate in candidates],
        backtest=ValueFigures(**chosen.figures),
        calibration={kind: json_records(frame) for kind, frame in calibrated.items()},
        forward=forward,
        expected=_expected_totals(valued, columns, forward),
    )
    return Value(
        table=valued,
        rows=segment_table_with_value(segments.rows, at_t, calibrated, columns),
        value=section,
        model=model,
    )


def stored_value(*, segments: Segments, fitted: FittedModel, store: Store) -> Value:
    """Give every customer a stored model's expected value over its horizon (null columns without one)."""
    valued = with_value(segments.table, fitted.value, fitted.horizon_days, store)
    return Value(table=store.cache("valued", valued), rows=segments.rows, value=None, model=fitted.value)
