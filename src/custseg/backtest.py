"""Do the segments predict what customers do next? The backtest that answers it in every run.

A segment is a promise about behaviour: these customers will come back, these will not, these
are worth that much. This module rebuilds the customer table as of T - H (T the reference date,
H the horizon) with the same stages, looks at what those customers did in the last H days, and
scores any segmentation of them by how well its segments tell that apart: the AUC of the
per-segment return rate for "orders again within H" and the eta squared of log1p(revenue within
H), both out of fold. The learned segments are chosen by it, and the RFM map and the continuous
scores that no segmentation can beat are scored the same way, side by side.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold

from custseg.errors import ConfigError
from custseg.features import customer_table, with_customer_columns

OUTCOME_COLUMNS = ("next_orders", "next_revenue", "returned")
"""What a backtest customer did in the H days after the backtest date."""
DECILES = 10


@dataclass(frozen=True)
class BacktestOptions:
    """Settings of the backtest (``[backtest]`` in custseg.toml).

    Attributes
    ----------
    enabled : bool
        False skips the backtest; the learned segments are then chosen by the silhouette rule.
    horizon_days : int
        H: the backtest looks at the customers as of T - H and at what they did in the last H days.
        It runs when the log covers at least 2 x H days before T.
    folds : int
        Segment rates are estimated out of fold: each customer is scored by the rates of the
        other folds' customers of the same segment (and supervised spaces are refitted per fold).
    bootstrap : int
        Resamples of the backtest customers for the standard errors of the scores.
    min_customers : int
        Fewer backtest customers than this, or one outcome class only, and the backtest says so
        instead of scoring.
    """

    enabled: bool = True
    horizon_days: int = 90
    folds: int = 5
    bootstrap: int = 100
    min_customers: int = 50

    def __post_init__(self) -> None:
        if self.horizon_days < 1 or self.folds < 2 or self.bootstrap < 1:
            raise ConfigError("[backtest]: horizon_days and bootstrap must be at least 1 and folds at least 2")


@dataclass(frozen=True)
class Outcomes:
    """What the backtest customers did in the H days after the backtest date.

    Attributes
    ----------
    returned : ndarray of shape (n_customers,)
        1 if the customer placed an order of positive net revenue in the window, else 0.
    revenue : ndarray of shape (n_customers,)
        Net revenue of the customer's orders in the window (0 when none).
    """

    returned: np.ndarray
    revenue: np.ndarray

    @classmethod
    def of(cls, customers: pd.DataFrame) -> Outcomes:
        """Read the outcome columns of a backtest customer table (`backtest_customers`)."""
        return cls(
            returned=customers.returned.to_numpy(dtype=np.int64),
            revenue=customers.next_revenue.to_numpy(dtype=float),
        )

    @property
    def log_revenue(self) -> np.ndarray:
        """log1p of the window's revenue (negative net revenue counts as 0)."""
        return np.log1p(np.clip(self.revenue, 0, None))

    def take(self, rows: np.ndarray) -> Outcomes:
        """Return the outcomes of the customers at ``rows``."""
        return Outcomes(returned=self.returned[rows], revenue=self.revenue[rows])

    def degenerate(self) -> str | None:
        """Why these outcomes cannot score a segmentation (one class only), or None."""
        if len(self.returned) == 0:
            return "no backtest customers"
        rate = self.returned.mean()
        if rate in (0.0, 1.0):
            share = "every" if rate == 1.0 else "no"
            return f"{share} backtest customer ordered again in the window: one outcome class, no AUC"
        return None


def backtest_date(as_of: datetime.datetime, horizon_days: int) -> datetime.datetime:
    """Return T - H, the date the backtest customers are described as of."""
    return as_of - datetime.timedelta(days=horizon_days)


def history_reason(first_at: datetime.datetime, as_of: datetime.datetime, horizon_days: int) -> str | None:
    """Why the log is too short for a backtest (it must cover 2 x H days before T), or None."""
    covered = (as_of - first_at).total_seconds() / 86_400
    if covered < 2 * horizon_days:
        days = f"{covered:.0f} day" + ("" if round(covered) == 1 else "s")
        return (
            f"the log covers {days} before the reference date; a backtest with a horizon of "
            f"{horizon_days} days needs {2 * horizon_days}"
        )
    return None


def window_outcomes(lines: ir.Table, start: datetime.datetime, end: datetime.datetime) -> ir.Table:
    """Per customer, the orders of positive net revenue in [start, end) and their net revenue.

    Returns
    -------
    ibis.Table of shape (n_customers, 3)
        customer_id, next_orders, next_revenue (to the cent); only customers with such an order.
    """
    inside = lines.filter((lines.invoiced_at >= ibis.timestamp(start)) & (lines.invoiced_at < ibis.timestamp(end)))
    per_order = inside.group_by("customer_id", "invoice_id").aggregate(revenue=inside.net_revenue.sum())
    per_order = per_order.filter(per_order.revenue > 0)
    return per_order.group_by("customer_id").aggregate(
        next_orders=per_order.count().cast(dt.int64),
        next_revenue=per_order.revenue.sum().cast(dt.float64).round(2),
    )


def backtest_customers(
    lines: ir.Table, products: ir.Table, categories: list[str], as_of: datetime.datetime, horizon_days: int
) -> ir.Table:
    """Build the customer table as of T - H, with what each customer did in the last H days.

    Parameters
    ----------
    lines : ibis.Table
        Kept purchase lines.
    products : ibis.Table
        product_id -> category.
    categories : list of str
        Every category id, in order.
    as_of : datetime
        T, the reference date of the run.
    horizon_days : int
        H.

    Returns
    -------
    ibis.Table of shape (n_customers, n_features + 3)
        `custseg.features.customer_features` and `custseg.features.customer_interests` as of
        T - H, and `OUTCOME_COLUMNS`: next_orders and next_revenue in [T - H, T) (0 when none) and
        returned (1 when next_orders > 0). Only customers with an order before T - H.
    """
    start = backtest_date(as_of, horizon_days)
    features = customer_table(lines, products, categories, start)
    outcome = window_outcomes(lines, start, as_of)
    joined = with_customer_columns(features, outcome)
    return joined.mutate(
        next_orders=joined.next_orders.fill_null(0),
        next_revenue=joined.next_revenue.fill_null(0.0),
        returned=(joined.next_orders.fill_null(0) > 0).cast(dt.int64),
    )


# -- scores --------------------------------------------------------------------------------------


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each of ``n`` customers (0..folds-1), shuffled with ``seed``; the same folds for every candidate."""
    ids = np.empty(n, dtype=np.int64)
    for fold, (_, test) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n))):
        ids[test] = fold
    return ids


def rate_predictions(
    train_labels: np.ndarray, test_labels: np.ndarray, train: Outcomes
) -> tuple[np.ndarray, np.ndarray]:
    """Score test customers by the training customers of their segment.

    Returns
    -------
    p_return, p_log_revenue : ndarray of shape (n_test,)
        The training return rate and mean log1p revenue of each test customer's segment (the
        training average for a segment with no training customer).
    """
    train_labels = np.asarray(train_labels)
    segments, index = np.unique(train_labels, return_inverse=True)
    counts = np.bincount(index)
    rates = np.bincount(index, weights=train.returned) / counts
    means = np.bincount(index, weights=train.log_revenue) / counts
    where = np.searchsorted(segments, test_labels)
    known = (where < len(segments)) & (segments[np.minimum(where, len(segments) - 1)] == test_labels)
    p_return = np.where(known, rates[np.minimum(where, len(segments) - 1)], train.returned.mean())
    p_value = np.where(known, means[np.minimum(where, len(segments) - 1)], train.log_revenue.mean())
    return p_return, p_value


def out_of_fold(labels: np.ndarray, outcomes: Outcomes, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold segment predictions for fixed labels (a segmentation that never saw the outcomes).

    Returns
    -------
    p_return, p_log_revenue : ndarray of shape (n_customers,)
    """
    p_return = np.empty(len(labels))
    p_value = np.empty(len(labels))
    labels = np.asarray(labels)
    for fold in np.unique(folds):
        test = folds == fold
        p_return[test], p_value[test] = rate_predictions(labels[~test], labels[test], outcomes.take(~test))
    return p_return, p_value


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of ``scores`` for ``positive`` (0/1), with ties counted half, under each row of ``weights``.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Higher means more likely to be positive.
    positive : ndarray of shape (n,)
        1 for a positive case, 0 for a negative one.
    weights : ndarray of shape (n_replicates, n)
        Case weights (bootstrap counts; a row of ones is the plain AUC).

    Returns
    -------
    ndarray of shape (n_replicates,)
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    weighted = weights[:, order]
    is_positive = positive[order].astype(float)
    pos = np.add.reduceat(weighted * is_positive, starts, axis=1)
    neg = np.add.reduceat(weighted * (1.0 - is_positive), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / pairs


def weighted_eta_squared(predicted: np.ndarray, actual: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """1 - weighted SSE / weighted total sum of squares, under each row of ``weights`` (shape (n_replicates,))."""
    total = weights.sum(axis=1, keepdims=True)
    mean = (weights * actual).sum(axis=1, keepdims=True) / total
    explained = (weights * (actual - predicted) ** 2).sum(axis=1)
    spread = (weights * (actual - mean) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - explained / spread


def validity(auc: np.ndarray | float, eta_squared: np.ndarray | float) -> np.ndarray | float:
    """Combine the two scores: the mean of the return Gini (2 AUC - 1) and eta squared.

    Both parts run from 0 (the segments tell nothing about the next H days) to 1 (they tell all),
    so neither dominates by its scale.
    """
    return ((2 * np.asarray(auc) - 1) + np.asarray(eta_squared)) / 2


def bootstrap_weights(n: int, replicates: int, seed: int) -> np.ndarray:
    """Bootstrap case counts of ``n`` customers, shape (replicates, n); the same for every candidate."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(replicates)]).astype(float)


@dataclass(frozen=True)
class Scores:
    """How well one segmentation's out-of-fold predictions tell the next H days apart.

    Attributes
    ----------
    auc, eta_squared, validity : float
        On all backtest customers.
    replicates : ndarray of shape (n_replicates,)
        Validity under each bootstrap resample, for standard errors and paired comparisons.
    """

    auc: float
    eta_squared: float
    validity: float
    replicates: np.ndarray

    @property
    def standard_error(self) -> float:
        """Bootstrap standard error of the validity."""
        return float(np.std(self.replicates)) if len(self.replicates) else float("nan")

    def summary(self) -> dict[str, float]:
        """Return the scores for run.json, rounded: auc, eta_squared, validity and validity_se."""
        return {
            "auc": round(self.auc, 4),
            "eta_squared": round(self.eta_squared, 4),
            "validity": round(self.validity, 4),
            "validity_se": round(self.standard_error, 4),
        }

    def gap_standard_error(self, other: Scores) -> float:
        """Bootstrap standard error of ``other.validity - self.validity`` (paired: same resamples)."""
        return float(np.std(other.replicates - self.replicates)) if len(self.replicates) else float("nan")


def score_predictions(p_return: np.ndarray, p_value: np.ndarray, outcomes: Outcomes, weights: np.ndarray) -> Scores:
    """Score out-of-fold predictions: AUC for returning, eta squared of log revenue, validity."""
    ones = np.ones((1, len(p_return)))
    auc = float(weighted_auc(p_return, outcomes.returned, ones)[0])
    eta = float(weighted_eta_squared(p_value, outcomes.log_revenue, ones)[0])
    replicates = validity(
        weighted_auc(p_return, outcomes.returned, weights),
        weighted_eta_squared(p_value, outcomes.log_revenue, weights),
    )
    return Scores(auc=auc, eta_squared=eta, validity=float(validity(auc, eta)), replicates=np.asarray(replicates))


def score_labels(labels: np.ndarray, outcomes: Outcomes, folds: np.ndarray, weights: np.ndarray) -> Scores:
    """Score fixed segment labels (the RFM map, an unsupervised segmentation) out of fold."""
    return score_predictions(*out_of_fold(np.asarray(labels), outcomes, folds), outcomes, weights)


def segment_outcomes(labels, outcomes: Outcomes) -> pd.DataFrame:
    """Per segment: what its customers did in the backtest's H days.

    Returns
    -------
    DataFrame of shape (n_segments, 7)
        segment, customers, return_rate, mean_revenue, median_revenue, return_lift and
        revenue_lift (against the average backtest customer; 1 = average).
    """
    frame = pd.DataFrame({"segment": np.asarray(labels), "returned": outcomes.returned, "revenue": outcomes.revenue})
    grouped = frame.groupby("segment", sort=True)
    table = grouped.agg(
        customers=("returned", "size"),
        return_rate=("returned", "mean"),
        mean_revenue=("revenue", "mean"),
        median_revenue=("revenue", "median"),
    ).reset_index()
    rate, mean = outcomes.returned.mean(), outcomes.revenue.mean()
    table["return_lift"] = table.return_rate / rate if rate else np.nan
    table["revenue_lift"] = table.mean_revenue / mean if mean else np.nan
    return table.round({"return_rate": 4, "mean_revenue": 2, "median_revenue": 2, "return_lift": 3, "revenue_lift": 3})


def ceilings(points: np.ndarray, outcomes: Outcomes, folds: np.ndarray) -> dict[str, float]:
    """Score continuous predictions on the same features, out of fold: the ceiling for any segmentation.

    Cross-validated logistic regression for "orders again" (AUC) and linear regression for log1p
    revenue (R squared), on the same folds as the segmentations.
    """
    p_return = np.empty(len(points))
    p_value = np.empty(len(points))
    for fold in np.unique(folds):
        test = folds == fold
        train = outcomes.take(~test)
        if len(np.unique(train.returned)) > 1:
            model = LogisticRegression(max_iter=2000).fit(points[~test], train.returned)
            p_return[test] = model.predict_proba(points[test])[:, 1]
        else:
            p_return[test] = train.returned.mean()
        p_value[test] = LinearRegression().fit(points[~test], train.log_revenue).predict(points[test])
    ones = np.ones((1, len(points)))
    return {
        "logistic_regression_auc": round(float(weighted_auc(p_return, outcomes.returned, ones)[0]), 4),
        "linear_regression_r_squared": round(float(weighted_eta_squared(p_value, outcomes.log_revenue, ones)[0]), 4),
    }


def in_sample_scores(labels, outcomes: Outcomes) -> dict[str, float]:
    """AUC and eta squared of segment labels on outcomes they are described by (a later window, say).

    Each customer is scored by their own segment's return rate and mean log1p revenue, as a
    segmentation fixed before the window is judged by what its segments then did.
    """
    labels = np.asarray(labels).astype(str)
    p_return, p_value = rate_predictions(labels, labels, outcomes)
    ones = np.ones((1, len(labels)))
    auc = float(weighted_auc(p_return, outcomes.returned, ones)[0])
    eta = float(weighted_eta_squared(p_value, outcomes.log_revenue, ones)[0])
    return {"auc": round(auc, 4), "eta_squared": round(eta, 4), "validity": round(float(validity(auc, eta)), 4)}


def join_outcomes(customers: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame:
    """Add `OUTCOME_COLUMNS` from a `window_outcomes` frame to customers (0 for those not in it)."""
    joined = customers.merge(window, on="customer_id", how="left")
    joined["next_orders"] = joined.next_orders.fillna(0).astype("int64")
    joined["next_revenue"] = joined.next_revenue.fillna(0.0).astype(float)
    joined["returned"] = (joined.next_orders > 0).astype("int64")
    return joined


# -- value scores ---------------------------------------------------------------------------------


def value_scores(predicted: pd.DataFrame, actual: pd.DataFrame) -> dict[str, float | int | None]:
    """How well predicted values match what customers did: the figures any value model is judged by.

    Parameters
    ----------
    predicted : DataFrame of shape (n_customers, 3)
        p_order_again, expected_orders and expected_revenue (`custseg.value.TARGETS`; a model
        without the first two may leave them out).
    actual : DataFrame of shape (n_customers, 2)
        next_orders and next_revenue, row for row.

    Returns
    -------
    dict
        customers; auc (p_order_again for "ordered again"); spearman (expected against actual
        revenue); r_squared_log (the squared correlation of log1p expected and log1p actual
        revenue: the R squared of log revenue on a line through the predictions, whatever their
        scale); predicted and actual revenue totals and their ratio; the same ratio for orders.
        None where a figure is undefined (one outcome class, constant predictions).
    """
    revenue = np.clip(actual.next_revenue.to_numpy(dtype=float), 0, None)
    expected = predicted.expected_revenue.to_numpy(dtype=float)
    returned = (actual.next_orders.to_numpy() > 0).astype(int)
    figures: dict[str, float | int | None] = {"customers": len(actual)}
    two_classes = 0 < returned.sum() < len(returned)
    if "p_order_again" in predicted and two_classes:
        scores = predicted.p_order_again.to_numpy(dtype=float)
        figures["auc"] = _rounded(weighted_auc(scores, returned, np.ones((1, len(scores))))[0])
    else:
        figures["auc"] = None
    varies = np.ptp(expected) > 0 and np.ptp(revenue) > 0
    figures["spearman"] = _rounded(spearmanr(expected, revenue).statistic) if varies else None
    figures["r_squared_log"] = (
        _rounded(np.corrcoef(np.log1p(np.clip(expected, 0, None)), np.log1p(revenue))[0, 1] ** 2) if varies else None
    )
    figures["predicted_revenue"] = round(float(expected.sum()), 2)
    figures["actual_revenue"] = round(float(revenue.sum()), 2)
    figures["revenue_ratio"] = _rounded(expected.sum() / revenue.sum()) if revenue.sum() > 0 else None
    if "expected_orders" in predicted:
        orders = actual.next_orders.to_numpy(dtype=float)
        figures["orders_ratio"] = _rounded(predicted.expected_orders.sum() / orders.sum()) if orders.sum() else None
    return figures


def normalized_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """How much of the actual revenue the ranking by prediction gathers early, against the best ranking.

    The Gini coefficient of the Lorenz curve of ``actual`` revenue with customers ordered by
    ``predicted`` (largest first), divided by that of customers ordered by the actual itself: 1
    ranks as well as knowing the future, 0 no better than chance. The ranking score of Wang, Liu and
    Miao (2019), "A Deep Probabilistic Model for Customer Lifetime Value Prediction". Ties in
    ``predicted`` are broken by position.
    """
    actual = np.clip(np.asarray(actual, dtype=float), 0, None)

    def gini(order: np.ndarray) -> float:
        gathered = np.cumsum(actual[order]) / actual.sum()
        return float(gathered.mean() - (len(actual) + 1) / (2 * len(actual)))

    by_prediction = np.argsort(-np.asarray(predicted, dtype=float), kind="stable")
    return gini(by_prediction) / gini(np.argsort(-actual, kind="stable"))


def decile_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error of the predicted total of each tenth of the customers ranked by prediction.

    Customers are cut into ten groups of (nearly) equal size by ``predicted``; each group's
    |predicted - actual| total is divided by its actual total (groups that brought nothing are left
    out), and the ten are averaged: the decile-level MAPE of Wang, Liu and Miao (2019), the
    calibration of the value bands a budget is set by.
    """
    actual, predicted = np.clip(np.asarray(actual, dtype=float), 0, None), np.asarray(predicted, dtype=float)
    groups = np.array_split(np.argsort(predicted, kind="stable"), 10)
    errors = [abs(predicted[g].sum() - actual[g].sum()) / actual[g].sum() for g in groups if actual[g].sum() > 0]
    return float(np.mean(errors))


def _rounded(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def calibration(predicted: pd.DataFrame, actual: pd.DataFrame, groups=None) -> pd.DataFrame:
    """Predicted against actual revenue per decile of prediction, or per group (a segment).

    Parameters
    ----------
    predicted, actual : DataFrame
        As for `value_scores`.
    groups : array-like of shape (n_customers,), optional
        A label per customer; default the decile of expected revenue (1 = lowest; equal
        predictions share a decile, so some may hold more customers).

    Returns
    -------
    DataFrame of shape (n_groups, 7)
        group, customers, predicted_mean and actual_mean revenue, predicted_total, actual_total,
        and ordered_again (the actual share who did).
    """
    expected = predicted.expected_revenue.to_numpy(dtype=float)
    if groups is None:
        ranks = pd.Series(expected).rank(method="min").to_numpy()
        groups = np.minimum((ranks - 1) * DECILES // len(expected) + 1, DECILES).astype(int)
    frame = pd.DataFrame(
        {
            "group": np.asarray(groups),
            "predicted": expected,
            "actual": np.clip(actual.next_revenue.to_numpy(dtype=float), 0, None),
            "ordered": (actual.next_orders.to_numpy() > 0).astype(float),
        }
    )
    table = (
        frame.groupby("group", sort=True)
        .agg(
            customers=("actual", "size"),
            predicted_mean=("predicted", "mean"),
            actual_mean=("actual", "mean"),
            predicted_total=("predicted", "sum"),
            actual_total=("actual", "sum"),
            ordered_again=("ordered", "mean"),
        )
        .reset_index()
    )
    return table.round(
        {"predicted_mean": 2, "actual_mean": 2, "predicted_total": 2, "actual_total": 2, "ordered_again": 4}
    )
