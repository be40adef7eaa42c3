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
from joblib import delayed
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from custseg.backtest import backtest_customers, backtest_date, calibration, history_reason, value_scores
from custseg.errors import ConfigError
from custseg.features import SHARE_PREFIX, lines_before, with_customer_columns
from custseg.forward import (
    FEWEST_CUTS,
    LEVEL,
    SEASON_CHECKS,
    coverage,
    cut_dates,
    ratio_interval,
    ratios,
    season_factors,
)
from custseg.model import FittedModel
from custseg.movement import NO_SEGMENT
from custseg.profile import segment_ids, segment_table_with_value, segment_value
from custseg.record import Skipped, frozen
from custseg.record.value import (
    Coverage,
    ExpectedTotals,
    ForwardCheck,
    ForwardChecks,
    Interval,
    Season,
    ValueFigures,
    ValueSection,
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
from custseg.workers import parallel
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


def _described(
    lines: ir.Table, products: Products, categories: list[str], at: datetime.datetime, horizon: int
) -> pd.DataFrame:
    """Describe the customers of ``lines`` as of ``at`` (interests in ``categories``), with their next H days."""
    later = at + datetime.timedelta(days=horizon)
    return backtest_customers(lines, products.table, categories, later, horizon).order_by("customer_id").execute()


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


YEAR = datetime.timedelta(days=365)


def _year_earlier(at: datetime.datetime, first_at: datetime.datetime, horizon: int) -> datetime.datetime | None:
    """Return the same date a year before ``at``, if its customers have H days of history (as the backtest's)."""
    earlier = at - YEAR
    return earlier if earlier - first_at >= datetime.timedelta(days=horizon) else None


def _snapshots(
    clean: Cleaned,
    products: Products,
    dates: set[datetime.datetime],
    reads: list[str],
    settings: Settings,
    store: Store,
) -> dict[datetime.datetime, pd.DataFrame]:
    """Describe the customers as of each of ``dates``, with what they did in the H days from it.

    One sample of the customers as of the newest date serves every date: those of them already
    customers at an earlier date are a sample of that date's customers. Their interests are
    described only when a model ``reads`` a category share (a share per category costs a sum).
    """
    if not dates:
        return {}
    most = min(settings.cluster.max_fit_customers, settings.engine.max_driver_customers)
    known = lines_before(clean.lines, max(dates)).select("customer_id").distinct()
    lines = lines_of_at_most(clean.lines, known, most, settings.seed)
    if lines is not clean.lines:
        lines = store.cache("forward_lines", lines)
    categories = products.order if any(c.startswith(SHARE_PREFIX) for c in reads) else []
    return {at: _described(lines, products, categories, at, settings.backtest.horizon_days) for at in sorted(dates)}


def _learned_then(
    model: ValueModel, train: pd.DataFrame, scored: pd.DataFrame, earlier: pd.DataFrame | None
) -> tuple[pd.DataFrame, float | None] | None:
    """Fit ``model`` on ``train``; predict ``scored``, and its season factor on ``earlier`` (None: not reached).

    None when the customers of ``train`` all did the same.
    """
    try:
        model.fit(train, train[["next_orders", "next_revenue"]])
    except ConfigError:
        return None
    factor = None
    if earlier is not None and len(earlier):
        factor = round(season_factors(model.predict(earlier), earlier)["expected_revenue"], 4)
    return model.predict(scored), factor


def _forward_checks(
    cuts: list[datetime.datetime],
    frames: dict[datetime.datetime, pd.DataFrame],
    first_at: datetime.datetime,
    segments: Segments,
    chosen: str,
    settings: Settings,
) -> list[ForwardCheck]:
    """Judge the chosen learner as it is used at each cut C (`custseg.forward.cut_dates`), the cuts on every core.

    At a cut it learns on the customers as of C - H and what they did up to C, and is scored on
    the H days from C; where the log reaches a year before C, the same model is also scored there
    (`custseg.forward.season_factors`). A cut whose customers as of C - H all did the same is left out.
    """
    horizon, options = settings.backtest.horizon_days, settings.value
    step = datetime.timedelta(days=horizon)
    model = ValueModel(model=chosen, features=options.features, interests=options.interests, random_state=settings.seed)
    with threadpool_limits(limits=1):
        learned = parallel()(
            delayed(_learned_then)(
                clone(model), frames[cut - step], frames[cut], frames.get(_year_earlier(cut, first_at, horizon))
            )
            for cut in cuts
        )
    checks = []
    for cut, found in zip(cuts, learned, strict=True):
        if found is None:
            continue
        predicted, factor = found
        scored = frames[cut]
        checks.append(
            ForwardCheck(
                trained_as_of=cut - step,
                trained_on_customers=len(frames[cut - step]),
                scored_as_of=cut,
                segments=_segment_totals(scored, predicted, segments),
                season_factor=factor,
                **value_scores(predicted, scored[["next_orders", "next_revenue"]]),
            )
        )
    return checks


def _season(
    model: ValueModel, frames: dict, checks: list[ForwardCheck], as_of: datetime.datetime, first_at, horizon: int
) -> Season | Skipped:
    """Score the fitted model a year before T, and decide by the forward checks whether to correct the forecast by it.

    The correction is applied when at least `custseg.forward.SEASON_CHECKS` forward checks reach a
    year before their cut, and correcting them by their own year-earlier scores brings their totals
    closer to the actual (the mean absolute log of actual over predicted).
    """
    earlier = _year_earlier(as_of, first_at, horizon)
    if earlier is None:
        return Skipped(
            reason=f"the log does not reach {(as_of - YEAR).date()} with {horizon} days of history before it "
            f"(a year and {horizon} days before the reference date)"
        )
    frame = frames[earlier]
    predicted = model.predict(frame)
    factors = season_factors(predicted, frame)
    corrected = [check for check in checks if check.season_factor is not None]
    raw_error = with_error = None
    if len(corrected) < SEASON_CHECKS:
        applied = False
        reason = (
            f"{len(corrected)} of {len(checks)} forward checks reach a year before their cut; the correction is "
            f"applied when at least {SEASON_CHECKS} do and it brings their totals closer to the actual"
        )
    else:
        raw_error = round(float(np.abs(np.log(_shop_ratios(corrected, seasonal=False))).mean()), 4)
        with_error = round(float(np.abs(np.log(_shop_ratios(corrected, seasonal=True))).mean()), 4)
        applied = with_error < raw_error
        reason = (
            f"corrected by their own year-earlier scores, the {len(corrected)} forward checks that reach a year "
            f"before their cut came "
            f"{'closer to' if applied else 'no closer to'} the actual (mean absolute log of actual over predicted "
            f"{with_error:.3f} against {raw_error:.3f})"
        )
    return Season(
        as_of=earlier,
        customers=len(frame),
        predicted_revenue=round(float(predicted.expected_revenue.sum()), 2),
        actual_revenue=round(float(frame.next_revenue.clip(lower=0).sum()), 2),
        factors={target: round(factor, 4) for target, factor in factors.items()},
        applied=applied,
        reason=reason,
        forward_error=raw_error,
        forward_error_corrected=with_error,
    )


def _checked_forward(
    clean: Cleaned,
    products: Products,
    features: Features,
    segments: Segments,
    model: ValueModel,
    chosen: str,
    backtest: Backtest,
    settings: Settings,
    store: Store,
) -> tuple[ForwardChecks | Skipped, Season | Skipped]:
    """Run the forward checks at every cut the log allows, and score the fitted model a year before T."""
    horizon, options, first_at = settings.backtest.horizon_days, settings.value, clean.span.first_invoiced_at
    cuts = cut_dates(first_at, features.as_of, horizon, step_days=options.forward_step_days, most=options.forward_cuts)
    step = datetime.timedelta(days=horizon)
    dates = {at for cut in cuts for at in (cut - step, cut, _year_earlier(cut, first_at, horizon))}
    dates |= {_year_earlier(features.as_of, first_at, horizon)}
    start = backtest_date(features.as_of, horizon)
    reads = [*model.columns_, *(segments.segmentation.columns_ if segments.segmentation is not None else [])]
    frames = {start: backtest.customers} | _snapshots(clean, products, dates - {None, start}, reads, settings, store)
    checks = _forward_checks(cuts, frames, first_at, segments, chosen, settings)
    season = _season(model, frames, checks, features.as_of, first_at, horizon)
    if not cuts:
        reason = history_reason(first_at, start, horizon)
        forward = Skipped(
            reason=f"{reason.replace('the reference date', 'T - H')} (a forward check needs {3 * horizon})"
        )
    elif not checks:
        forward = Skipped(reason="at every cut, the customers as of C - H all did the same in the H days to C")
    else:
        forward = _forward(checks, isinstance(season, Season) and season.applied, options.forward_step_days)
    return forward, season


def _forward(checks: list[ForwardCheck], seasonal: bool, step_days: int) -> ForwardChecks:
    """Return the forward checks and how often their intervals held (on the corrected totals, ``seasonal``)."""
    shop = coverage(_shop_ratios(checks, seasonal))
    per_segment = [coverage(past) for past in _segment_ratios(checks, seasonal).values()]
    held, tried = sum(h for h, _ in per_segment), sum(t for _, t in per_segment)
    return ForwardChecks(
        step_days=step_days,
        level=LEVEL,
        seasonal=seasonal,
        cuts=checks,
        shop=Coverage(held=shop[0], tried=shop[1]) if shop[1] else None,
        segments=Coverage(held=held, tried=tried) if tried else None,
    )


def _seasonal(checks: list[ForwardCheck], seasonal: bool) -> list[ForwardCheck]:
    """Return the checks whose totals are judged: with ``seasonal``, those with a season factor, as the forecast."""
    return [check for check in checks if check.season_factor is not None] if seasonal else checks


def _shop_ratios(checks: list[ForwardCheck], seasonal: bool) -> np.ndarray:
    """Actual over predicted totals of the checks (predictions corrected by their season factors, ``seasonal``)."""
    checks = _seasonal(checks, seasonal)
    factor = np.array([c.season_factor if seasonal else 1.0 for c in checks], dtype=float)
    return ratios([c.actual_revenue for c in checks], np.array([c.predicted_revenue for c in checks]) * factor)


def _segment_ratios(checks: list[ForwardCheck], seasonal: bool) -> dict[str, np.ndarray]:
    """Each learned segment's actual over predicted revenue at the cuts where it had customers."""
    rows = pd.DataFrame(
        [
            {**row, "factor": check.season_factor if seasonal else 1.0}
            for check in _seasonal(checks, seasonal)
            for row in check.segments
        ]
    )
    if rows.empty:
        return {}
    return {
        segment: ratios(group.actual_revenue, group.predicted_revenue * group.factor)
        for segment, group in rows.groupby("segment")
    }


def _interval(total: float, forward: ForwardChecks) -> Interval | Skipped:
    """Return the interval of a forecast ``total`` from the forward checks (corrected by the season if it is)."""
    multipliers = ratio_interval(_shop_ratios(forward.cuts, forward.seasonal))
    if multipliers is None:
        judged = len(_seasonal(forward.cuts, forward.seasonal))
        return Skipped(
            reason=f"{judged} forward check{'s' if judged != 1 else ''}"
            + (" reach a year before their cut, as the season's correction needs" if forward.seasonal else "")
            + f"; an interval needs {FEWEST_CUTS}"
        )
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
            else _interval(float(totals.expected_revenue), forward)
        ),
    )


def _with_intervals(expected: pd.DataFrame, forward: ForwardChecks | Skipped, columns: dict[str, str]) -> pd.DataFrame:
    """Add each learned segment's interval of its expected revenue (``<total>_low``, ``_high``; NaN without)."""
    total = f"{columns['expected_revenue']}_total"
    past = _segment_ratios(forward.cuts, forward.seasonal) if isinstance(forward, ForwardChecks) else {}
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
    forward, season = _checked_forward(
        clean, products, features, segments, model, chosen.model, backtest, settings, store
    )
    if isinstance(season, Season) and season.applied:
        model.with_season(season.factors)
    valued = store.cache("valued", with_value(segments.table, model, horizon, store))
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
        season=season,
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
