"""Which groups of customers to act on: learned segments chosen by what they predict.

Silhouette and its friends only say how well separated the groups are, and customer behaviour is
a continuum, so they reward two or three groups. A segmentation exists to be acted on; its test
is what its segments do next. Every candidate (a model x a space x a number of segments) is
fitted on the customers as of T - H and scored on what they did in the last H days (the backtest
of `custseg.backtest`); among the stable ones, the fewest segments within a stated margin of
the best score win, and that recipe is refitted on every customer as of T. Without enough history
the older rule applies: stability, then silhouette. Every customer is kept: log transforms and
robust scaling tame the extremes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import RobustScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.backtest import (
    BacktestOptions,
    Outcomes,
    Scores,
    bootstrap_weights,
    fold_ids,
    rate_predictions,
    score_predictions,
)
from custseg.errors import ConfigError
from custseg.features import typical_gap_days
from custseg.sampling import sample_positions

SPACES = ("features", "predicted", "tsne")
COUNT_FEATURES = frozenset(
    {"frequency", "monetary", "avg_order_value", "lines", "distinct_products", "orders_90d", "revenue_90d"}
)
"""Counts and amounts with long tails: log1p before scaling."""
KMEANS_STARTS = 10
"""k-means starts per fit: with fewer, a fit now and then stops in a worse partition, and the
backtest then prefers more segments for the wrong reason."""


@dataclass(frozen=True)
class ClusterOptions:
    """Settings of the learned segmentation (``[cluster]`` in custseg.toml).

    Attributes
    ----------
    features : list of str
        Customer columns to segment on. Day counts (``*_days``) enter as log1p(days / the shop's
        typical gap between orders), counts and amounts (`COUNT_FEATURES`) as log1p, all scaled
        by median and interquartile range.
    interests : bool
        Also segment on the category shares (``share_*`` columns).
    min_segments, max_segments : int
        Numbers of segments to try and to accept (HDBSCAN finds its own).
    models, spaces : list of str
        Candidate models (`MODELS`) and spaces (`SPACES`): the scaled features; the predicted
        next-H behaviour learned on the backtest (``predicted``, one number per customer, see
        `NextValueScore`); a 2-D t-SNE of the features.
    stability_resamples : int
        Refits on subsamples of 80% of the search customers, for bootstrap stability.
    silhouette_sample : int
        Silhouette is computed on at most this many customers.
    min_stability, min_share : float
        Eligible candidates are at least this stable and their smallest segment holds at least
        this share of customers.
    parsimony : float
        Among eligible candidates whose validity is within this share of the best (or within one
        bootstrap standard error of the difference, if wider), the fewest segments win.
    silhouette_tolerance : float
        The rule without a backtest: among eligible candidates within this share of the best
        silhouette, the most segments win.
    model, n_segments : str or None, int or None
        Force a model and/or a number of segments (the rule picks among what is left).
    search_customers : int
        The candidates are searched on a random sample of at most this many backtest customers;
        the chosen recipe is refitted on all fitted customers and assigns every customer.
    max_fit_customers : int
        Above this, the final fit uses a random sample (`sample_positions`) and every customer
        is assigned by the fitted segmentation.
    map_customers : int
        Customers drawn on the report's 2-D t-SNE map (0: no map).
    """

    features: list[str] = field(default_factory=lambda: ["recency_days", "frequency", "monetary", "tenure_days"])
    interests: bool = False
    min_segments: int = 4
    max_segments: int = 10
    models: list[str] = field(default_factory=lambda: ["kmeans", "tiers"])
    spaces: list[str] = field(default_factory=lambda: ["features", "predicted"])
    stability_resamples: int = 10
    silhouette_sample: int = 3000
    min_stability: float = 0.8
    min_share: float = 0.02
    parsimony: float = 0.02
    silhouette_tolerance: float = 0.10
    model: str | None = None
    n_segments: int | None = None
    search_customers: int = 5000
    max_fit_customers: int = 20_000
    map_customers: int = 4000

    def __post_init__(self) -> None:
        if not 2 <= self.min_segments <= self.max_segments:
            raise ConfigError(
                f"[cluster] min_segments={self.min_segments} and max_segments={self.max_segments} "
                "must satisfy 2 <= min <= max"
            )
        if self.n_segments is not None and self.n_segments < 2:
            raise ConfigError(f"n_segments={self.n_segments} must be at least 2")

    def segment_range(self) -> tuple[int, int]:
        """Return the numbers of segments a chosen segmentation may have (low, high)."""
        if self.n_segments:
            return self.n_segments, self.n_segments
        return self.min_segments, self.max_segments


def min_customers(options: ClusterOptions) -> int:
    """Return the fewest customers a segmentation is learned from (five per segment, at least 10)."""
    return max(options.segment_range()[0] * 5, 10)


# -- spaces ------------------------------------------------------------------------------------


class FeatureSpace(TransformerMixin, BaseEstimator):
    """The customer features as the segmentation sees them: transformed and robustly scaled.

    Recency and tenure in days become log1p(days / typical gap): a customer one gap away from
    their last order differs from a customer ten gaps away, two customers a day apart do not.

    Parameters
    ----------
    features : list of str or None
        Customer columns; None is the default of `ClusterOptions`.
    interests : bool
        Add the category shares (``share_*``).

    Attributes
    ----------
    columns_ : list of str
    typical_gap_days_ : float
        The shop's typical days between orders (`custseg.features.typical_gap_days`).
    scaler_ : RobustScaler
    """

    def __init__(self, *, features: list[str] | None = None, interests: bool = False) -> None:
        self.features = features
        self.interests = interests

    def fit(self, customers: pd.DataFrame, y=None) -> FeatureSpace:
        """Learn the gap and the scaling from ``customers`` (DataFrame of shape (n_customers, n_columns))."""
        columns = list(self.features or ClusterOptions().features)
        if self.interests:
            columns += sorted(c for c in customers.columns if c.startswith("share_"))
        missing = [c for c in columns if c not in customers.columns]
        if missing:
            raise ConfigError(f"[cluster] features: no customer column {', '.join(missing)}")
        self.columns_ = columns
        self.typical_gap_days_ = typical_gap_days(customers) if "mean_days_between_orders" in customers else 30.0
        self.scaler_ = RobustScaler().fit(self._raw(customers))
        return self

    def _raw(self, customers: pd.DataFrame) -> np.ndarray:
        # Row-major whatever pandas holds: the models' sums then run in one order, so that a
        # sample taken on the driver or from the engine gives the same segments to the last bit.
        values = np.ascontiguousarray(customers[self.columns_].to_numpy(dtype=float, na_value=0.0))
        for i, column in enumerate(self.columns_):
            if column.endswith("_days"):
                values[:, i] = np.log1p(np.clip(values[:, i], 0, None) / self.typical_gap_days_)
            elif column in COUNT_FEATURES:
                values[:, i] = np.log1p(np.clip(values[:, i], 0, None))
        return values

    def transform(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the scaled features, shape (n_customers, n_features)."""
        check_is_fitted(self, "scaler_")
        return self.scaler_.transform(self._raw(customers))


class NextValueScore(TransformerMixin, BaseEstimator):
    """A customer's expected behaviour over the next H days, in one number.

    Learned on the backtest (features as of T - H, outcomes in the last H days): a logistic
    regression for "orders again" and a linear regression for log1p(revenue), both on the
    `FeatureSpace`; the score is the sum of their standardised predictions (the log-odds of
    returning and the log revenue count alike). Cut into equal tiers, it gives segments that are
    ordered by what they will do.

    Parameters
    ----------
    features, interests
        As for `FeatureSpace`.

    Attributes
    ----------
    space_ : FeatureSpace
        Fitted on the backtest customers.
    return_model_ : LogisticRegression or None
        None when every backtest customer had the same outcome.
    revenue_model_ : LinearRegression
    centre_, spread_ : ndarray of shape (2,)
        Means and standard deviations of the two predictions on the backtest customers.
    """

    def __init__(self, *, features: list[str] | None = None, interests: bool = False) -> None:
        self.features = features
        self.interests = interests

    @property
    def columns_(self) -> list[str]:
        """The customer columns read."""
        return self.space_.columns_

    def fit(self, customers: pd.DataFrame, y: Outcomes) -> NextValueScore:
        """Learn the score from backtest ``customers`` and their outcomes ``y`` (`Outcomes`)."""
        self.space_ = FeatureSpace(features=self.features, interests=self.interests).fit(customers)
        points = self.space_.transform(customers)
        both = len(np.unique(y.returned)) > 1
        self.return_model_ = LogisticRegression(max_iter=2000).fit(points, y.returned) if both else None
        self.revenue_model_ = LinearRegression().fit(points, y.log_revenue)
        predictions = self._predictions(points)
        self.centre_ = predictions.mean(axis=0)
        self.spread_ = np.where(predictions.std(axis=0) > 0, predictions.std(axis=0), 1.0)
        return self

    def _predictions(self, points: np.ndarray) -> np.ndarray:
        odds = self.return_model_.decision_function(points) if self.return_model_ is not None else np.zeros(len(points))
        return np.column_stack([odds, self.revenue_model_.predict(points)])

    def transform(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the score, shape (n_customers, 1)."""
        check_is_fitted(self, "revenue_model_")
        standardised = (self._predictions(self.space_.transform(customers)) - self.centre_) / self.spread_
        return standardised.sum(axis=1, keepdims=True)


class QuantileTiers(ClusterMixin, BaseEstimator):
    """Cut a one-dimensional score into ``n_tiers`` tiers of (nearly) equal size.

    Equal scores always land in the same tier, so a tie can make tiers unequal or fewer.

    Attributes
    ----------
    cut_points_ : ndarray of shape (n_tiers - 1,)
        A score above the i-th cut point and at most the next is in tier i + 1 (0-based).
    labels_ : ndarray of shape (n_customers,)
    """

    def __init__(self, n_tiers: int = 5) -> None:
        self.n_tiers = n_tiers

    def fit(self, points: np.ndarray, y=None) -> QuantileTiers:
        """Learn the cut points from ``points`` of shape (n_customers, 1)."""
        scores = np.asarray(points, dtype=float)[:, 0]
        self.cut_points_ = np.unique(np.quantile(scores, np.arange(1, self.n_tiers) / self.n_tiers))
        self.labels_ = self.predict(points)
        return self

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Tier of each point, 0 = lowest score."""
        check_is_fitted(self, "cut_points_")
        return np.searchsorted(self.cut_points_, np.asarray(points, dtype=float)[:, 0], side="left")


def _mixture(k: int, seed: int) -> GaussianMixture:
    # k-means++ seeding instead of a full k-means run: a third less time over the bootstrap refits.
    return GaussianMixture(k, n_init=1, init_params="k-means++", random_state=seed)


FitAll = Callable[[np.ndarray, list, int], dict]
"""``fit_all(points, ks, seed)``: for each k, (the fitted model or None, labels 0..k-1, HDBSCAN's noise -1)."""


def _each_k(fit: Callable[[np.ndarray, int | None, int], tuple]) -> FitAll:
    def fit_all(points: np.ndarray, ks: list, seed: int) -> dict:
        return {k: fit(points, k, seed) for k in ks}

    return fit_all


def _kmeans(points: np.ndarray, k: int, seed: int) -> tuple:
    fitted = KMeans(k, n_init=KMEANS_STARTS, random_state=seed).fit(points)
    return fitted, fitted.labels_


def _tiers(points: np.ndarray, k: int, seed: int) -> tuple:
    fitted = QuantileTiers(k).fit(points)
    return fitted, fitted.labels_


def _gmm(points: np.ndarray, k: int, seed: int) -> tuple:
    fitted = _mixture(k, seed).fit(points)
    return fitted, fitted.predict(points)


def _ward(points: np.ndarray, ks: list, seed: int) -> dict:
    # One tree cut at every k.
    tree = linkage(points, "ward")
    return {k: (None, fcluster(tree, k, "maxclust") - 1) for k in ks}


def _hdbscan(points: np.ndarray, k: None, seed: int) -> tuple:
    return None, HDBSCAN(min_cluster_size=max(10, len(points) // 50), copy=True).fit_predict(points)


@dataclass(frozen=True)
class ModelSpec:
    """How one kind of segmentation model is fitted, searched and applied to new customers.

    Attributes
    ----------
    fit_all : callable
        `FitAll`. A model it returns assigns new customers with its own ``predict``; where it returns
        None (Ward, HDBSCAN), a nearest-neighbour classifier learned on the labels does.
    spaces : tuple of str
        The spaces (`SPACES`) it runs in.
    finds_k : bool
        It finds its own number of segments (k is None); its noise goes to the nearest segment.
    split_by_k : bool
        The search fits each k as its own unit of work (spread over the workers).
    """

    fit_all: FitAll
    spaces: tuple[str, ...]
    finds_k: bool = False
    split_by_k: bool = False


MODEL_SPECS = {
    "kmeans": ModelSpec(_each_k(_kmeans), ("features", "tsne"), split_by_k=True),
    "tiers": ModelSpec(_each_k(_tiers), ("predicted",)),
    "gmm": ModelSpec(_each_k(_gmm), ("features", "tsne"), split_by_k=True),
    "ward": ModelSpec(_ward, ("features", "tsne")),
    "hdbscan": ModelSpec(_each_k(_hdbscan), ("features", "tsne"), finds_k=True),
}
"""The candidate models. The predicted score is one number per customer: equal tiers cut it;
clustering it isolates its tails (k-means on it left segments of 1% on the UCI file and never won
on any shop tried, benchmarks/results/families.md)."""
MODELS = tuple(MODEL_SPECS)


def _fit_model(model: str, points: np.ndarray, k: int | None, seed: int) -> tuple:
    """Fit one model on ``points``; returns (fitted model or None, labels 0..k-1 with HDBSCAN noise -1)."""
    return MODEL_SPECS[model].fit_all(points, [k], seed)[k]


def _attach_noise(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give HDBSCAN's noise points the label of the nearest segment centre; labels become 0.. contiguous."""
    found = np.unique(labels[labels >= 0])
    if len(found) == 0:
        return np.zeros(len(labels), dtype=int)
    centres = np.array([points[labels == c].mean(axis=0) for c in found])
    noise = labels < 0
    nearest = ((points[noise, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    labels = labels.copy()
    labels[noise] = found[nearest]
    return np.searchsorted(found, labels)


@dataclass
class _Search:
    """What every candidate of one fit shares: the backtest customers, their folds and resamples."""

    customers: pd.DataFrame
    outcomes: Outcomes | None
    folds: np.ndarray | None
    resamples: list[np.ndarray]
    feature_points: np.ndarray
    evaluation: np.ndarray
    distances: np.ndarray | None
    options: ClusterOptions
    seed: int
    spaces: dict = field(default_factory=dict)

    def points(self, space: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the search customers (or ``rows`` of them, refitted on those alone) in ``space``."""
        options = self.options
        customers = self.customers if rows is None else self.customers.iloc[rows]
        if space == "predicted":
            outcomes = self.outcomes if rows is None else self.outcomes.take(rows)
            score = NextValueScore(features=options.features, interests=options.interests).fit(customers, outcomes)
            return score.transform(customers)
        if space == "tsne":
            embedding = self.spaces["tsne"]
            return embedding if rows is None else embedding[rows]
        if rows is None:
            return self.feature_points
        return FeatureSpace(features=options.features, interests=options.interests).fit_transform(customers)


def _candidate_unit(search: _Search, space: str, model: str, ks: list) -> list[tuple[dict, np.ndarray, tuple]]:
    """Every candidate of one model in one space: labels, out-of-fold predictions, metrics, stability."""
    fit_all, seed = MODEL_SPECS[model].fit_all, search.seed
    points = search.points(space)
    full = {k: labels for k, (_, labels) in fit_all(points, ks, seed).items()}
    # Stability: the whole recipe (space and model) refitted on each subsample.
    again = [
        {k: labels for k, (_, labels) in fit_all(search.points(space, rows), ks, seed).items()}
        for rows in search.resamples
    ]
    predictions = {k: None for k in ks}
    if search.outcomes is not None:
        predictions = _out_of_fold(search, space, model, ks, full)
    results = []
    for k, labels in full.items():
        stability = np.mean(
            [adjusted_rand_score(labels[r], refit[k]) for r, refit in zip(search.resamples, again, strict=True)]
        )
        row = _metrics(search, space, model, points, labels, stability)
        results.append((row, labels, predictions[k]))
    return results


def _out_of_fold(search: _Search, space: str, model: str, ks: list, full: dict) -> dict:
    """Out-of-fold (p_return, p_log_revenue) of each k: supervised spaces are refitted per fold."""
    outcomes, folds = search.outcomes, search.folds
    predictions = {k: (np.empty(len(folds)), np.empty(len(folds))) for k in ks}
    for fold in np.unique(folds):
        test = folds == fold
        train_rows = np.flatnonzero(~test)
        if space == "predicted":
            score = NextValueScore(features=search.options.features, interests=search.options.interests)
            score.fit(search.customers.iloc[train_rows], outcomes.take(train_rows))
            points = score.transform(search.customers)
        for k in ks:
            if space == "predicted":
                fitted, train_labels = _fit_model(model, points[~test], k, search.seed)
                test_labels = fitted.predict(points[test])
            else:
                train_labels, test_labels = full[k][~test], full[k][test]
            p_return, p_value = rate_predictions(train_labels, test_labels, outcomes.take(train_rows))
            predictions[k][0][test], predictions[k][1][test] = p_return, p_value
    return predictions


def _metrics(search: _Search, space: str, model: str, space_points, labels, stability) -> dict:
    """Separation metrics of one candidate, all measured in the scaled feature space."""
    fitted = search.feature_points
    if MODEL_SPECS[model].finds_k:
        assigned = _attach_noise(space_points, labels)
    else:
        assigned = np.unique(labels, return_inverse=True)[1]
    segments = int(assigned.max() + 1)
    row = {
        "space": space,
        "model": model,
        "n_segments": segments,
        "silhouette": np.nan,
        "calinski_harabasz": np.nan,
        "davies_bouldin": np.nan,
        "stability": round(float(stability), 4),
        "smallest_share": round(float(np.bincount(assigned).min() / len(assigned)), 4),
        "noise_share": round(float((labels < 0).mean()), 4),
    }
    if segments >= 2:
        rows = search.evaluation
        if search.distances is not None:
            silhouette = silhouette_score(search.distances, assigned[rows], metric="precomputed")
        else:
            silhouette = silhouette_score(fitted[rows], assigned[rows])
        row["silhouette"] = round(float(silhouette), 4)
        row["calinski_harabasz"] = round(float(calinski_harabasz_score(fitted, assigned)), 1)
        row["davies_bouldin"] = round(float(davies_bouldin_score(fitted, assigned)), 4)
    return row


def eligible_candidates(table: pd.DataFrame, options: ClusterOptions) -> pd.Series:
    """Mark the candidates stable enough, with no tiny segment and a number of segments in range."""
    low, high = options.segment_range()
    return (
        (table.stability >= options.min_stability)
        & (table.smallest_share >= options.min_share)
        & table.n_segments.between(low, high)
    )


def choose(table: pd.DataFrame, options: ClusterOptions, *, by_validity: bool) -> tuple[pd.DataFrame, str]:
    """Apply the selection rule to a candidate table; return it with ``eligible``, ``chosen`` and the reason.

    Eligible: stability at least ``min_stability``, smallest segment at least ``min_share``, a
    number of segments in `ClusterOptions.segment_range`. With a backtest (``by_validity``): the
    best eligible validity sets the bar; every eligible candidate within ``parsimony`` of it (or
    within one bootstrap standard error of the difference, ``gap_se``, if wider) is as good, and
    the fewest segments among them win (ties: higher validity). Without: among eligible
    candidates within ``silhouette_tolerance`` of the best silhouette, the most segments win
    (ties: higher silhouette). Without an eligible candidate the most stable one wins.
    """
    table = table.copy()
    score = "validity" if by_validity else "silhouette"
    table["eligible"] = eligible_candidates(table, options) & table[score].notna()
    table["chosen"] = False
    eligible = table[table.eligible]
    if eligible.empty:
        pick = table.sort_values(["stability", score], ascending=False, kind="mergesort").index[0]
        table.loc[pick, "chosen"] = True
        return table, "no candidate is eligible; the most stable one is used"
    best = eligible[score].idxmax()
    if by_validity:
        margin = np.maximum(options.parsimony * table.validity[best], table.gap_se.fillna(0.0))
        table["within_margin"] = table.eligible & (table.validity[best] - table.validity <= margin)
        good = table[table.within_margin]
        pick = good.sort_values(["n_segments", "validity"], ascending=[True, False], kind="mergesort").index[0]
    else:
        best_value = table.silhouette[best]
        good = eligible[eligible.silhouette >= best_value - options.silhouette_tolerance * abs(best_value)]
        pick = good.sort_values(["n_segments", "silhouette"], ascending=[False, False], kind="mergesort").index[0]
    table.loc[pick, "chosen"] = True
    chosen, top = table.loc[pick], table.loc[best]
    name = f"{chosen.model} on {chosen.space} with {chosen.n_segments} segments"
    if pick == best:
        return table, f"{name}: the best {score} of the eligible candidates ({chosen[score]:.3f})"
    if by_validity:
        return table, (
            f"{name}: validity {chosen.validity:.3f}, within the margin of the best eligible "
            f"({top.model} on {top.space} with {top.n_segments} segments, {top.validity:.3f}) with fewer segments"
        )
    return table, (
        f"{name}: silhouette {chosen.silhouette:.3f}, within {options.silhouette_tolerance:.0%} of the best "
        f"({top.silhouette:.3f}) with the most segments"
    )


class Segmentation(ClusterMixin, BaseEstimator):
    """Learned customer segments: a candidate search, the selection rule, and the assignment of any customer.

    `fit` takes the customers as of T and, when the log allows a backtest, the customers as of
    T - H with what they did in the last H days (`custseg.backtest.backtest_customers`). Every
    candidate is fitted on (a sample of at most ``search_customers`` of) the backtest customers
    and scored out of fold (`custseg.backtest`): the AUC of its per-segment return rate, the eta
    squared of log1p revenue, their combination ``validity``, with bootstrap standard errors;
    also its bootstrap stability, smallest segment and separation metrics. `choose` applies the
    rule; the chosen recipe is refitted on the customers as of T (the predicted space keeps what
    it learned on the backtest, the only time outcomes are known). Without a backtest the
    candidates are fitted on the customers as of T and the silhouette rule applies.

    Parameters
    ----------
    options : ClusterOptions
    backtest_options : BacktestOptions
        Folds and bootstrap resamples of the backtest scores.
    random_state : int, default 0

    Attributes
    ----------
    candidates_ : DataFrame of shape (n_candidates, n_metrics)
        space, model, n_segments, auc, eta_squared, validity, validity_se, gap_se (with a
        backtest), silhouette, calinski_harabasz, davies_bouldin, stability, smallest_share,
        noise_share, eligible, within_margin (with a backtest), chosen.
    chosen_ : dict
        The chosen candidate's row.
    rule_, reason_ : str
        The rule applied and why the chosen candidate won.
    space_ : FeatureSpace or NextValueScore
        How a customer becomes a point; ``columns_`` are the customer columns it reads.
    model_ : estimator or None
        Assigns points to segments (k-means, mixture, tiers); None when ``classifier_`` does.
    classifier_ : KNeighborsClassifier or None
        For models that cannot place a new customer (Ward, HDBSCAN, anything on t-SNE).
    order_ : ndarray
        Raw label -> segment label (0 = highest mean monetary value).
    n_segments_ : int
    labels_ : ndarray of shape (n_customers,)
        Segment of every customer given to `fit`, as `predict` assigns it.
    noise_ : ndarray of shape (n_customers,)
        True where HDBSCAN called the customer noise (then in the nearest segment).
    embedding_ : ndarray of shape (n_customers, 2) or None
        t-SNE map coordinates of a sample of at most ``map_customers`` customers (NaN elsewhere).
    classifier_agreement_ : float or None
        Agreement of the assignment classifier with the labels on a held-out fifth.
    """

    def __init__(
        self,
        *,
        options: ClusterOptions | None = None,
        backtest_options: BacktestOptions | None = None,
        random_state: int = 0,
    ) -> None:
        self.options = options
        self.backtest_options = backtest_options
        self.random_state = random_state

    @property
    def columns_(self) -> list[str]:
        """The customer columns `predict` reads."""
        return self.space_.columns_

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, customers: pd.DataFrame, y=None, *, backtest: pd.DataFrame | None = None) -> Segmentation:
        """Search, choose and refit.

        Parameters
        ----------
        customers : DataFrame of shape (n_customers, n_columns)
            The customers as of T.
        y : None
            Unused (scikit-learn's signature); the outcomes come with ``backtest``.
        backtest : DataFrame of shape (n_backtest_customers, n_columns + 3) or None
            The customers as of T - H with `custseg.backtest.OUTCOME_COLUMNS`.
        """
        options = self.options or ClusterOptions()
        n = len(customers)
        if n < min_customers(options):
            raise ConfigError(f"n_customers={n} is too few to learn segments (at least {min_customers(options)})")
        unknown = set(options.models) - set(MODELS) | set(options.spaces) - set(SPACES)
        if options.model is not None and options.model not in MODELS:
            unknown.add(options.model)
        if unknown:
            raise ConfigError(f"[cluster] unknown model or space: {', '.join(sorted(unknown))}")
        by_validity = backtest is not None
        searched = backtest if by_validity else customers
        positions = sample_positions(len(searched), options.search_customers, self.random_state)
        searched = searched.iloc[positions].reset_index(drop=True)
        search = self._search_context(searched, options, by_validity)
        units = self._units(options, by_validity, len(searched))
        if not units:
            raise ConfigError(
                f"[cluster] no candidate: models {options.model or options.models} in spaces {options.spaces}"
                + ("" if by_validity else " (the predicted space needs a backtest)")
            )
        final_space = FeatureSpace(features=options.features, interests=options.interests).fit(customers)
        results, map_points = self._run_units(search, units, final_space.transform(customers))
        table = pd.DataFrame([row for row, _, _ in results])
        if by_validity:
            table = self._add_scores(table, [p for _, _, p in results], search)
        self.candidates_, self.reason_ = choose(table, options, by_validity=by_validity)
        self.rule_ = self._rule(options, by_validity)
        self.chosen_ = self.candidates_[self.candidates_.chosen].iloc[0].to_dict()
        self._refit(customers, final_space, searched, search.outcomes, options)
        self.embedding_ = None
        if map_points is not None:
            self.embedding_ = np.full((n, 2), np.nan)
            self.embedding_[map_points[0]] = map_points[1]
        return self

    def _search_context(self, searched: pd.DataFrame, options: ClusterOptions, by_validity: bool) -> _Search:
        rng = np.random.default_rng(self.random_state)
        feature_points = FeatureSpace(features=options.features, interests=options.interests).fit_transform(searched)
        evaluation = sample_positions(len(searched), options.silhouette_sample, self.random_state)
        # One distance matrix serves every candidate's silhouette.
        distances = pairwise_distances(feature_points[evaluation]) if len(evaluation) <= 6000 else None
        size = int(0.8 * len(searched))
        resamples = [
            np.sort(rng.choice(len(searched), size, replace=False)) for _ in range(options.stability_resamples)
        ]
        outcomes = Outcomes.of(searched) if by_validity else None
        folds = fold_ids(len(searched), self._backtest_options().folds, self.random_state) if by_validity else None
        return _Search(
            searched, outcomes, folds, resamples, feature_points, evaluation, distances, options, self.random_state
        )

    def _units(self, options: ClusterOptions, by_validity: bool, n: int) -> list[tuple[str, str, list]]:
        low, high = options.segment_range()
        ks = [k for k in range(low, high + 1) if k < n]
        models = [options.model] if options.model else list(options.models)
        units = []
        for space in options.spaces:
            if space == "predicted" and not by_validity:
                continue
            for model in models:
                spec = MODEL_SPECS[model]
                if space not in spec.spaces:
                    continue
                if spec.split_by_k:
                    units.extend((space, model, [k]) for k in ks)
                else:
                    units.append((space, model, [None] if spec.finds_k else ks))
        return units

    def _run_units(self, search: _Search, units: list, final_points: np.ndarray):
        """Run the candidate units on every core; t-SNE (space and map) alongside the first wave."""
        options = self.options or ClusterOptions()
        map_rows = None
        if options.map_customers:
            map_rows = sample_positions(len(final_points), options.map_customers, self.random_state)
        with threadpool_limits(limits=1, user_api="blas"):
            parallel = Parallel(n_jobs=-1)
            extra = []
            if "tsne" in options.spaces:
                extra.append(delayed(_tsne)(search.feature_points, self.random_state))
            if map_rows is not None:
                extra.append(delayed(_tsne)(final_points[map_rows], self.random_state))
            first = [i for i, unit in enumerate(units) if unit[0] != "tsne"]
            done = parallel(extra + [delayed(_candidate_unit)(search, *units[i]) for i in first])
            embedded = done[: len(extra)]
            groups = dict(zip(first, done[len(extra) :], strict=True))
            if "tsne" in options.spaces:
                search.spaces["tsne"] = embedded.pop(0)
            second = [i for i, unit in enumerate(units) if unit[0] == "tsne"]
            for i, group in zip(
                second, parallel(delayed(_candidate_unit)(search, *units[i]) for i in second), strict=True
            ):
                groups[i] = group
        results = [result for i in range(len(units)) for result in groups[i]]
        map_points = (map_rows, embedded[0]) if map_rows is not None else None
        return results, map_points

    def _backtest_options(self) -> BacktestOptions:
        return self.backtest_options or BacktestOptions()

    def _add_scores(self, table: pd.DataFrame, predictions: list, search: _Search) -> pd.DataFrame:
        weights = bootstrap_weights(len(search.customers), self._backtest_options().bootstrap, self.random_state)
        scores: list[Scores] = [
            score_predictions(p_return, p_value, search.outcomes, weights) for p_return, p_value in predictions
        ]
        table["auc"] = [round(s.auc, 4) for s in scores]
        table["eta_squared"] = [round(s.eta_squared, 4) for s in scores]
        table["validity"] = [round(s.validity, 4) for s in scores]
        table["validity_se"] = [round(s.standard_error, 4) for s in scores]
        eligible = eligible_candidates(table, self.options or ClusterOptions())
        # The paired standard error against the best eligible candidate (the rule's reference).
        reference = table.validity.where(eligible).idxmax() if eligible.any() else table.validity.idxmax()
        table["gap_se"] = [round(scores[reference].gap_standard_error(s), 4) for s in scores]
        self.scores_ = scores
        return table

    @staticmethod
    def _rule(options: ClusterOptions, by_validity: bool) -> str:
        low, high = options.segment_range()
        eligible = (
            f"eligible: stability >= {options.min_stability}, smallest segment >= {options.min_share:.0%}, "
            f"{low} to {high} segments"
        )
        if by_validity:
            return (
                f"{eligible}; scored on the backtest by validity = (return Gini + eta squared of log revenue) / 2, "
                f"out of fold; among eligible candidates within {options.parsimony:.0%} of the best validity (or "
                f"within one bootstrap standard error of the difference, if wider), the fewest segments"
            )
        return (
            f"{eligible}; no backtest, so among eligible candidates within {options.silhouette_tolerance:.0%} of "
            f"the best silhouette, the most segments"
        )

    def _refit(self, customers, final_space, searched, outcomes, options) -> None:
        """Fit the chosen recipe on the customers as of T and keep what assigns any customer."""
        space, model = self.chosen_["space"], self.chosen_["model"]
        finds_k = MODEL_SPECS[model].finds_k
        k = None if finds_k else int(self.chosen_["n_segments"])
        if space == "predicted":
            self.space_ = NextValueScore(features=options.features, interests=options.interests)
            self.space_.fit(searched, outcomes)
            points = self.space_.transform(customers)
        else:
            self.space_ = final_space
            points = final_space.transform(customers)
            if space == "tsne":
                points = _tsne(points, self.random_state)
        fitted, raw = _fit_model(model, points, k, self.random_state)
        self.noise_ = raw < 0
        raw = _attach_noise(points, raw) if finds_k else raw
        found, contiguous = np.unique(raw, return_inverse=True)
        order = _value_order(customers, contiguous)
        labels = order[contiguous]
        self.n_segments_ = int(labels.max() + 1)
        self.model_, self.classifier_, self.classifier_agreement_ = None, None, None
        if fitted is not None and space != "tsne":
            self.model_ = fitted
            self.order_ = _every_raw_label(found, order, _raw_labels(fitted))
        else:
            self.order_ = order
            self._fit_classifier(final_space.transform(customers), labels)
        # Every customer's segment is what the fitted segmentation assigns, so that a customer
        # scored again later (custseg assign) gets the same segment as in this run.
        self.labels_ = self.predict(customers)

    def _fit_classifier(self, points: np.ndarray, labels: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        held_out = rng.random(len(points)) < 0.2
        check = KNeighborsClassifier(n_neighbors=15).fit(points[~held_out], labels[~held_out])
        agreement = (check.predict(points[held_out]) == labels[held_out]).mean() if held_out.any() else 1.0
        self.classifier_agreement_ = round(float(agreement), 4)
        self.classifier_ = KNeighborsClassifier(n_neighbors=15).fit(points, labels)

    def portable(self) -> Segmentation:
        """Return a copy with only what `predict` needs, ready for skops (no DataFrames, no embedding)."""
        check_is_fitted(self, "space_")
        copy = Segmentation(
            options=self.options, backtest_options=self.backtest_options, random_state=self.random_state
        )
        for name in ("space_", "model_", "classifier_", "order_", "n_segments_", "classifier_agreement_"):
            setattr(copy, name, getattr(self, name))
        return copy

    def predict(self, customers: pd.DataFrame) -> np.ndarray:
        """Assign segments (0 = highest mean monetary value) to customers (DataFrame with `columns_`)."""
        check_is_fitted(self, "space_")
        if self.model_ is None:
            return self.classifier_.predict(self.space_.transform(customers))
        return self.order_[self.model_.predict(self.space_.transform(customers))]


def _raw_labels(fitted) -> int:
    """How many labels a fitted model can give."""
    if isinstance(fitted, QuantileTiers):
        return len(fitted.cut_points_) + 1
    return int(fitted.n_clusters if isinstance(fitted, KMeans) else fitted.n_components)


def _every_raw_label(found: np.ndarray, order: np.ndarray, n_raw: int) -> np.ndarray:
    """Map every label a model can give to a segment.

    A label no fitted customer got (an empty tier, a mixture component that won nobody) takes the
    segment of the nearest label that did.
    """
    nearest = np.abs(np.arange(n_raw)[:, None] - found[None, :]).argmin(axis=1)
    return order[nearest]


def _value_order(customers: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """Map raw labels 0.. to segment labels by falling mean monetary value (ties: lower raw label first)."""
    means = pd.Series(customers.monetary.to_numpy()).groupby(labels).mean()
    ranked = sorted(means.index, key=lambda c: (-means[c], c))
    order = np.zeros(int(labels.max()) + 1, dtype=int)
    for position, cluster in enumerate(ranked):
        order[cluster] = position
    return order


def _tsne(points: np.ndarray, seed: int) -> np.ndarray:
    """Embed in 2-D with openTSNE (perplexity 50 as in the course, capped for small data)."""
    from openTSNE import TSNE

    perplexity = float(min(50, max(5, (len(points) - 1) // 3)))
    # One thread: it runs on one worker next to the candidate search. A shorter schedule than
    # the default (250 + 500 iterations): the embedding only has to separate groups, and it
    # runs beside the search. Exact neighbours: on a few features and a few thousand points they
    # are quicker than building an approximate index.
    embedding = TSNE(
        perplexity=perplexity,
        n_jobs=1,
        random_state=seed,
        early_exaggeration_iter=125,
        n_iter=250,
        neighbors="exact",
    ).fit(points)
    return np.asarray(embedding)
