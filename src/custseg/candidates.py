"""Which segmentations to try: every candidate model, in every space, for every number of segments.

Each candidate is fitted on the search customers, refitted on subsamples of them for its stability,
and, with a backtest, predicts every customer out of fold, so that all are scored alike;
`custseg.cluster` chooses among them. The candidate models are listed once (`MODEL_SPECS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import delayed
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.backtest import Outcomes, fold_ids, rate_predictions
from custseg.features import Use, features_used_by
from custseg.rules import RuleTree
from custseg.sampling import sample_positions
from custseg.spaces import LEARNED_ON_OUTCOMES, FeatureSpace, NextValueScore, RuleSpace, tsne
from custseg.workers import parallel

KMEANS_STARTS = 10
"""k-means starts per fit: with fewer, a fit now and then stops in a worse partition, and the
backtest then prefers more segments for the wrong reason."""


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


def _rules(points: np.ndarray, k: int, seed: int) -> tuple:
    fitted = RuleTree(
        n_segments=k, columns=list(features_used_by(Use.RULES)), n_init=KMEANS_STARTS, random_state=seed
    ).fit(points)
    return fitted, fitted.labels_


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
    spaces_together : bool
        The search fits each k in all its spaces in one process, which then shares what the spaces
        have in common (the rules' groups).
    """

    fit_all: FitAll
    spaces: tuple[str, ...]
    finds_k: bool = False
    split_by_k: bool = False
    spaces_together: bool = False


MODEL_SPECS = {
    "kmeans": ModelSpec(_each_k(_kmeans), ("features", "tsne"), split_by_k=True),
    "tiers": ModelSpec(_each_k(_tiers), ("predicted",)),
    "gmm": ModelSpec(_each_k(_gmm), ("features", "tsne"), split_by_k=True),
    "ward": ModelSpec(_ward, ("features", "tsne")),
    "hdbscan": ModelSpec(_each_k(_hdbscan), ("features", "tsne"), finds_k=True),
    "rules": ModelSpec(_each_k(_rules), ("rules", "rules_next"), split_by_k=True, spaces_together=True),
}
"""The candidate models. The predicted score is one number per customer: equal tiers cut it;
clustering it isolates its tails (k-means on it left segments of 1% on the UCI file and never won
on any shop tried, benchmarks/results/families.md). Rules (`custseg.rules.RuleTree`) state k-means
groups as rules over the customer columns as they are."""
MODELS = tuple(MODEL_SPECS)


def fit_model(model: str, points: np.ndarray, k: int | None, seed: int) -> tuple:
    """Fit one model on ``points``; returns (fitted model or None, labels 0..k-1 with HDBSCAN noise -1)."""
    return MODEL_SPECS[model].fit_all(points, [k], seed)[k]


def attach_noise(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
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
class Search:
    """What every candidate of one fit shares: the search customers, their outcomes, folds and resamples.

    Attributes
    ----------
    customers : DataFrame of shape (n_customers, n_columns)
        The search customers (as of T - H with their outcomes, or as of T without a backtest).
    outcomes : Outcomes or None
        What they did in the last H days; None without a backtest.
    folds : ndarray of shape (n_customers,) or None
        Their backtest folds (`custseg.backtest.fold_ids`); None without a backtest.
    resamples : list of ndarray
        Sorted positions of the subsamples (80% each) every candidate is refitted on.
    feature_points : ndarray of shape (n_customers, n_features)
        The customers in the `FeatureSpace`, where every candidate's separation is measured.
    evaluation : ndarray
        Positions of the customers the silhouette is computed on.
    distances : ndarray of shape (n_evaluation, n_evaluation) or None
        Their pairwise distances (None for more than 6,000).
    features, interests
        The columns read, as for `FeatureSpace`.
    seed : int
    spaces : dict of str to ndarray
        Spaces computed beside the search (``tsne``).
    """

    customers: pd.DataFrame
    outcomes: Outcomes | None
    folds: np.ndarray | None
    resamples: list[np.ndarray]
    feature_points: np.ndarray
    evaluation: np.ndarray
    distances: np.ndarray | None
    features: list[str]
    interests: bool
    seed: int
    spaces: dict = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        customers: pd.DataFrame,
        *,
        features: list[str],
        interests: bool,
        stability_resamples: int,
        silhouette_sample: int,
        folds: int | None,
        seed: int,
    ) -> Search:
        """Place ``customers`` in the feature space and draw their resamples, silhouette sample and folds.

        Parameters
        ----------
        customers : DataFrame of shape (n_customers, n_columns)
            The search customers; with a backtest, with `custseg.backtest.OUTCOME_COLUMNS`.
        features, interests
            As for `FeatureSpace`.
        stability_resamples : int
            Subsamples of 80% to refit every candidate on.
        silhouette_sample : int
            At most this many customers for the silhouette.
        folds : int or None
            Backtest folds; None without a backtest (no outcomes, no out-of-fold predictions).
        seed : int
            Random state of the samples, the folds and every candidate's fit.
        """
        rng = np.random.default_rng(seed)
        feature_points = FeatureSpace(features=features, interests=interests).fit_transform(customers)
        evaluation = sample_positions(len(customers), silhouette_sample, seed)
        # One distance matrix serves every candidate's silhouette.
        distances = pairwise_distances(feature_points[evaluation]) if len(evaluation) <= 6000 else None
        size = int(0.8 * len(customers))
        resamples = [np.sort(rng.choice(len(customers), size, replace=False)) for _ in range(stability_resamples)]
        by_validity = folds is not None
        return cls(
            customers=customers,
            outcomes=Outcomes.of(customers) if by_validity else None,
            folds=fold_ids(len(customers), folds, seed) if by_validity else None,
            resamples=resamples,
            feature_points=feature_points,
            evaluation=evaluation,
            distances=distances,
            features=features,
            interests=interests,
            seed=seed,
        )

    def points(self, space: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the search customers (or ``rows`` of them, refitted on those alone) in ``space``."""
        customers = self.customers if rows is None else self.customers.iloc[rows]
        if space == "predicted":
            outcomes = self.outcomes if rows is None else self.outcomes.take(rows)
            score = NextValueScore(features=self.features, interests=self.interests).fit(customers, outcomes)
            return score.transform(customers)
        if space == "tsne":
            embedding = self.spaces["tsne"]
            return embedding if rows is None else embedding[rows]
        if space == "rules":
            return RuleSpace().fit(customers).transform(customers)
        if space == "rules_next":
            outcomes = self.outcomes if rows is None else self.outcomes.take(rows)
            return RuleSpace().fit(customers, outcomes).fitting_points(customers)
        if rows is None:
            return self.feature_points
        return FeatureSpace(features=self.features, interests=self.interests).fit_transform(customers)


SearchUnit = tuple[str, str, list]
"""One unit of work of the search: (space, model, the numbers of segments to fit)."""


def candidate_units(models: list[str], spaces: list[str], ks: list[int], *, by_validity: bool) -> list[SearchUnit]:
    """List the units of work: each model in each space it runs in, for each k or all of them at once.

    The predicted space needs a backtest (``by_validity``); a model that finds its own number of
    segments is fitted once (k None).
    """
    units = []
    for space in spaces:
        if space in LEARNED_ON_OUTCOMES and not by_validity:
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


def run_units(
    search: Search, units: list[SearchUnit], *, tsne_space: bool, map_points: np.ndarray | None
) -> tuple[list[tuple[dict, np.ndarray, tuple | None]], np.ndarray | None]:
    """Run the candidate units on every core; t-SNE (the space, and the map) alongside the first wave.

    Parameters
    ----------
    search : Search
        What the candidates share; its ``spaces`` gets the t-SNE space.
    units : list of SearchUnit
        From `candidate_units`; those in the t-SNE space run once it is computed.
    tsne_space : bool
        Compute the t-SNE space of the search customers.
    map_points : ndarray of shape (n_map, n_features) or None
        Points to draw on a 2-D t-SNE map, embedded beside the search.

    Returns
    -------
    results : list of (row, labels, predictions)
        Every candidate, unit after unit: its metrics, its labels of the search customers and,
        with a backtest, its out-of-fold (p_return, p_log_revenue).
    map_embedding : ndarray of shape (n_map, 2) or None
    """
    with threadpool_limits(limits=1, user_api="blas"):
        run = parallel()
        extra = []
        if tsne_space:
            extra.append(delayed(tsne)(search.feature_points, search.seed))
        if map_points is not None:
            extra.append(delayed(tsne)(map_points, search.seed))
        first, second = _tasks(units, lambda unit: unit[0] != "tsne"), _tasks(units, lambda unit: unit[0] == "tsne")
        done = run(extra + [delayed(_candidate_units)(search, [units[i] for i in task]) for task in first])
        embedded = done[: len(extra)]
        groups = {
            i: group
            for task, found in zip(first, done[len(extra) :], strict=True)
            for i, group in zip(task, found, strict=True)
        }
        if tsne_space:
            search.spaces["tsne"] = embedded.pop(0)
        done = run(delayed(_candidate_units)(search, [units[i] for i in task]) for task in second)
        groups.update(
            {i: group for task, found in zip(second, done, strict=True) for i, group in zip(task, found, strict=True)}
        )
    results = [result for i in range(len(units)) for result in groups[i]]
    return results, embedded[0] if map_points is not None else None


def _tasks(units: list[SearchUnit], wanted: Callable[[SearchUnit], bool]) -> list[list[int]]:
    """Group the ``wanted`` units into tasks of one process, by their positions in ``units``.

    One unit each, except that a model fitted with its spaces together
    (`ModelSpec.spaces_together`) has one task per k.
    """
    tasks: dict[object, list[int]] = {}
    for i, unit in enumerate(units):
        if wanted(unit):
            _, model, ks = unit
            key = (model, tuple(ks)) if MODEL_SPECS[model].spaces_together else i
            tasks.setdefault(key, []).append(i)
    return list(tasks.values())


def _candidate_units(search: Search, units: list[SearchUnit]) -> list[list[tuple[dict, np.ndarray, tuple]]]:
    """Run units in this process, one after the other: their `_candidate_unit` results."""
    return [_candidate_unit(search, *unit) for unit in units]


def _candidate_unit(search: Search, space: str, model: str, ks: list) -> list[tuple[dict, np.ndarray, tuple]]:
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


def _out_of_fold(search: Search, space: str, model: str, ks: list, full: dict) -> dict:
    """Out-of-fold (p_return, p_log_revenue) of each k: supervised spaces are refitted per fold."""
    outcomes, folds = search.outcomes, search.folds
    predictions = {k: (np.empty(len(folds)), np.empty(len(folds))) for k in ks}
    for fold in np.unique(folds):
        test = folds == fold
        train_rows = np.flatnonzero(~test)
        if space == "predicted":
            score = NextValueScore(features=search.features, interests=search.interests)
            score.fit(search.customers.iloc[train_rows], outcomes.take(train_rows))
            points = score.transform(search.customers)
        elif space == "rules_next":
            rule_space = RuleSpace().fit(search.customers.iloc[train_rows], outcomes.take(train_rows))
            points = rule_space.fitting_points(search.customers)
        for k in ks:
            if space in LEARNED_ON_OUTCOMES:
                fitted, train_labels = fit_model(model, points[~test], k, search.seed)
                test_labels = fitted.predict(points[test])
            else:
                train_labels, test_labels = full[k][~test], full[k][test]
            p_return, p_value = rate_predictions(train_labels, test_labels, outcomes.take(train_rows))
            predictions[k][0][test], predictions[k][1][test] = p_return, p_value
    return predictions


def _metrics(search: Search, space: str, model: str, space_points, labels, stability) -> dict:
    """Separation metrics of one candidate, all measured in the scaled feature space."""
    fitted = search.feature_points
    if MODEL_SPECS[model].finds_k:
        assigned = attach_noise(space_points, labels)
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
