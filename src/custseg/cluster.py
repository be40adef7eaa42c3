"""Which groups of customers behave alike: learned segments with a principled number of them.

Course solutions drop the top 5% of customers, scale R, F and M, and pick k by silhouette alone.
This module keeps every customer (log transform and robust scaling tame the extremes), tries
several models and numbers of segments on the features and on a t-SNE embedding, measures each
candidate (silhouette, Calinski-Harabasz, Davies-Bouldin, BIC, bootstrap stability, smallest
segment) and picks one by a stated rule. The fitted `Segmentation` assigns new customers too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
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
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import RobustScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.errors import ConfigError

MODELS = ("kmeans", "gmm", "ward", "hdbscan")
SPACES = ("features", "tsne")
LOG_FEATURES = frozenset({"recency_days", "frequency", "monetary", "tenure_days", "avg_order_value"})
"""Features that are log-transformed (log1p) before scaling: counts and amounts with long tails."""


@dataclass(frozen=True)
class ClusterOptions:
    """Settings of the learned segmentation.

    Attributes
    ----------
    features : list of str
        Customer columns to cluster on; those in `LOG_FEATURES` are log1p-transformed, all are
        scaled by median and interquartile range.
    interests : bool
        Also cluster on the category shares (``share_*`` columns).
    min_segments, max_segments : int
        Range of numbers of segments to try (HDBSCAN finds its own).
    models, spaces : list of str
        Candidate models (`MODELS`) and spaces (`SPACES`: the scaled features, a 2-D t-SNE of them).
    stability_resamples : int
        Subsamples (80% of customers, at most 1,500) for bootstrap stability, the same for every
        candidate.
    silhouette_sample : int
        Silhouette is computed on at most this many customers.
    min_stability, min_share, silhouette_tolerance : float
        The selection rule's thresholds (see `Segmentation`).
    model, n_segments : str or None, int or None
        Force a model and/or a number of segments (the rule picks among what is left).
    max_fit_customers : int
        Above this, models are fitted on a random sample (`sample_positions`) and every customer is
        assigned by the fitted segmentation.
    """

    features: list[str] = field(default_factory=lambda: ["recency_days", "frequency", "monetary", "tenure_days"])
    interests: bool = False
    min_segments: int = 3
    max_segments: int = 10
    models: list[str] = field(default_factory=lambda: list(MODELS))
    spaces: list[str] = field(default_factory=lambda: list(SPACES))
    stability_resamples: int = 20
    silhouette_sample: int = 10_000
    min_stability: float = 0.8
    min_share: float = 0.02
    silhouette_tolerance: float = 0.10
    model: str | None = None
    n_segments: int | None = None
    max_fit_customers: int = 20_000


def min_customers(options: ClusterOptions) -> int:
    """Return the fewest customers a segmentation is learned from (five per segment, at least 10)."""
    return max(options.min_segments * 5, 10)


def _fit_labels(model: str, points: np.ndarray, k: int | None, seed: int) -> np.ndarray:
    """Labels of one model on ``points`` (0..k-1; HDBSCAN noise is -1)."""
    if model == "kmeans":
        return KMeans(k, n_init=4, random_state=seed).fit_predict(points)
    if model == "gmm":
        return _mixture(k, seed).fit(points).predict(points)
    if model == "ward":
        return fcluster(linkage(points, "ward"), k, "maxclust") - 1
    if model == "hdbscan":
        return HDBSCAN(min_cluster_size=max(10, len(points) // 50), copy=True).fit_predict(points)
    raise ConfigError(f"model={model!r} must be one of {', '.join(MODELS)}")


def _mixture(k: int, seed: int) -> GaussianMixture:
    # k-means++ seeding instead of a full k-means run: a third less time over the bootstrap refits.
    return GaussianMixture(k, n_init=1, init_params="k-means++", random_state=seed)


def _attach_noise(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give HDBSCAN's noise points the label of the nearest segment centre."""
    found = np.unique(labels[labels >= 0])
    if len(found) == 0:
        return np.zeros(len(labels), dtype=int)
    centres = np.array([points[labels == c].mean(axis=0) for c in found])
    noise = labels < 0
    nearest = ((points[noise, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    labels = labels.copy()
    labels[noise] = found[nearest]
    return np.searchsorted(found, labels)


class Segmentation(ClusterMixin, BaseEstimator):
    """Learned customer segments: model search, selection rule, and assignment of new customers.

    Every candidate (model x number of segments x space) is fitted on the customers given to `fit`
    (the pipeline passes a `sample_positions` of them above ``max_fit_customers``) and measured in
    the scaled feature space, the same space for all, so that candidates from the t-SNE embedding
    compare fairly. The rule: a candidate is eligible when its bootstrap stability (mean adjusted
    Rand index between its labels and a refit on each of ``stability_resamples`` subsamples) is at
    least ``min_stability`` and its smallest segment holds at least ``min_share`` of customers.
    Among eligible candidates, those whose silhouette is within ``silhouette_tolerance`` (relative)
    of the best are equally good, and the one with the most segments wins (more segments are more
    actionable); ties go to the higher silhouette.
    Without an eligible candidate the most stable one wins.

    Parameters
    ----------
    options : ClusterOptions
    random_state : int, default 0

    Attributes
    ----------
    candidates_ : DataFrame of shape (n_candidates, 11)
        space, model, n_segments, silhouette, calinski_harabasz, davies_bouldin, bic, stability,
        smallest_share, noise_share, eligible, chosen.
    chosen_ : dict
        The chosen candidate's row.
    labels_ : ndarray of shape (n_customers,)
        Segment of every customer as `predict` assigns it, 0..n_segments_-1, ordered by falling
        mean monetary value.
    noise_ : ndarray of shape (n_customers,)
        True where HDBSCAN called the customer noise (then in the nearest segment).
    embedding_ : ndarray of shape (n_customers, 2) or None
        The t-SNE coordinates of every customer, when the t-SNE space was searched.
    classifier_agreement_ : float
        Share of held-out customers (a fifth) on which the assignment classifier agrees with the
        chosen model's labels.
    cluster_agreement_ : float
        Share of customers whose assigned segment (``labels_``, what `predict` gives) equals the
        chosen model's own label: 1 for k-means and mixtures, the classifier's fit otherwise.
    """

    def __init__(self, *, options: ClusterOptions | None = None, random_state: int = 0) -> None:
        self.options = options
        self.random_state = random_state

    # -- features ---------------------------------------------------------------------------
    def _columns(self, customers: pd.DataFrame) -> list[str]:
        options = self.options or ClusterOptions()
        columns = list(options.features)
        if options.interests:
            columns += sorted(c for c in customers.columns if c.startswith("share_"))
        missing = [c for c in columns if c not in customers.columns]
        if missing:
            raise ConfigError(f"[cluster] features: no customer column {', '.join(missing)}")
        return columns

    def _raw(self, customers: pd.DataFrame) -> np.ndarray:
        # Row-major whatever pandas holds: the models' sums then run in one order, so that a
        # sample taken on the driver or from the engine gives the same segments to the last bit.
        values = np.ascontiguousarray(customers[self.columns_].to_numpy(dtype=float, na_value=0.0))
        logged = [i for i, c in enumerate(self.columns_) if c in LOG_FEATURES]
        values[:, logged] = np.log1p(np.clip(values[:, logged], 0, None))
        return values

    def transform(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the scaled feature matrix of shape (n_customers, n_features)."""
        check_is_fitted(self, "scaler_")
        return self.scaler_.transform(self._raw(customers))

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, customers: pd.DataFrame, y=None) -> Segmentation:
        """Search the candidates on ``customers`` (DataFrame of shape (n_customers, n_columns))."""
        options = self.options or ClusterOptions()
        rng = np.random.default_rng(self.random_state)
        n = len(customers)
        if n < min_customers(options):
            raise ConfigError(f"n_customers={n} is too few to learn segments (at least {min_customers(options)})")
        unknown = set(options.models) - set(MODELS) | set(options.spaces) - set(SPACES)
        if unknown:
            raise ConfigError(f"[cluster] unknown model or space: {', '.join(sorted(unknown))}")
        self.columns_ = self._columns(customers)
        self.scaler_ = RobustScaler().fit(self._raw(customers))
        fitted = self.transform(customers)
        spaces = {"features": fitted}
        ks = [options.n_segments] if options.n_segments else list(range(options.min_segments, options.max_segments + 1))
        ks = [k for k in ks if k < len(fitted)]
        models = [options.model] if options.model else list(options.models)
        evaluation = sample_positions(len(fitted), options.silhouette_sample, self.random_state)
        # One distance matrix serves every candidate's silhouette (at most 6,000 customers: 290 MB).
        distances = pairwise_distances(fitted[evaluation]) if len(evaluation) <= 6000 else None
        size = min(1500, int(0.8 * len(fitted)))
        resamples = [np.sort(rng.choice(len(fitted), size, replace=False)) for _ in range(options.stability_resamples)]
        # Ward reuses one tree per resample for every k; the others are split by k, so that the
        # slow mixtures spread over the workers.
        units = [
            (space, model, [k] if model in ("kmeans", "gmm") else ks)
            for space in options.spaces
            for model in models
            for k in (ks if model in ("kmeans", "gmm") else [None])
        ]

        def candidates(space_units):
            return [
                delayed(self._model_candidates)(
                    spaces[space], fitted, space, model, unit_ks, resamples, evaluation, distances
                )
                for space, model, unit_ks in space_units
            ]

        groups: list = [None] * len(units)
        with threadpool_limits(limits=1, user_api="blas"):
            parallel = Parallel(n_jobs=-1)
            # t-SNE (the longest single step) runs on one worker while the others fit the
            # candidates in the feature space; the candidates in its embedding follow.
            first = [i for i, unit in enumerate(units) if unit[0] != "tsne"]
            embed = [delayed(_tsne)(fitted, self.random_state)] if "tsne" in options.spaces else []
            done = parallel(embed + candidates([units[i] for i in first]))
            if embed:
                spaces["tsne"] = done.pop(0)
            second = [i for i, unit in enumerate(units) if unit[0] == "tsne"]
            done += parallel(candidates([units[i] for i in second]))
            for i, group in zip(first + second, done, strict=True):
                groups[i] = group
        self.embedding_ = spaces.get("tsne")
        results = [result for group in groups for result in group]
        table = pd.DataFrame([row for row, _ in results])
        labels_by_candidate = [labels for _, labels in results]
        table = self._choose(table, options)
        chosen = int(np.flatnonzero(table.chosen)[0])
        self.chosen_ = table.iloc[chosen].to_dict()
        raw_labels = labels_by_candidate[chosen]
        self.noise_ = raw_labels < 0
        labels = _attach_noise(spaces[self.chosen_["space"]], raw_labels)
        order = _value_order(customers, labels)
        labels = order[labels]
        self.n_segments_ = int(labels.max() + 1)
        self.candidates_ = table
        self._fit_assignment(fitted, labels, raw_model=self.chosen_["model"], space=self.chosen_["space"], order=order)
        # Every customer's segment is what the fitted segmentation assigns, so that a customer
        # scored again later (custseg assign) gets the same segment as in this run.
        self.labels_ = self.predict(customers)
        self.cluster_agreement_ = round(float((self.labels_ == labels).mean()), 4)
        return self

    def _model_candidates(self, space_points, fitted, space, model, ks, resamples, evaluation_rows, distances):
        """Every candidate of one model in one space: labels, metrics and bootstrap stability."""
        seed = self.random_state
        if model == "ward":
            tree = linkage(space_points, "ward")
            full = {k: fcluster(tree, k, "maxclust") - 1 for k in ks}
            again = [
                {k: fcluster(t, k, "maxclust") - 1 for k in ks}
                for t in (linkage(space_points[r], "ward") for r in resamples)
            ]
        elif model == "hdbscan":
            full = {None: _fit_labels(model, space_points, None, seed)}
            again = [{None: _fit_labels(model, space_points[r], None, seed)} for r in resamples]
        elif model == "gmm":
            mixtures = {k: _mixture(k, seed).fit(space_points) for k in ks}
            full = {k: mixture.predict(space_points) for k, mixture in mixtures.items()}
            again = [{k: _fit_labels(model, space_points[r], k, seed) for k in ks} for r in resamples]
        else:
            full = {k: _fit_labels(model, space_points, k, seed) for k in ks}
            again = [{k: _fit_labels(model, space_points[r], k, seed) for k in ks} for r in resamples]
        results = []
        for k, labels in full.items():
            stability = np.mean(
                [adjusted_rand_score(labels[r], refit[k]) for r, refit in zip(resamples, again, strict=True)]
            )
            row = self._metrics(space_points, fitted, space, model, labels, stability, evaluation_rows, distances)
            if model == "gmm":
                row["bic"] = round(float(mixtures[k].bic(space_points)), 1)
            results.append((row, labels))
        return results

    def _metrics(self, space_points, fitted, space, model, labels, stability, evaluation_rows, distances) -> dict:
        assigned = _attach_noise(space_points, labels) if model == "hdbscan" else labels
        segments = int(assigned.max() + 1)
        row = {
            "space": space,
            "model": model,
            "n_segments": segments,
            "silhouette": np.nan,
            "calinski_harabasz": np.nan,
            "davies_bouldin": np.nan,
            "bic": np.nan,
            "stability": round(float(stability), 4),
            "smallest_share": round(float(np.bincount(assigned).min() / len(assigned)), 4),
            "noise_share": round(float((labels < 0).mean()), 4),
        }
        if segments >= 2:
            if distances is not None:
                silhouette = silhouette_score(distances, assigned[evaluation_rows], metric="precomputed")
            else:
                silhouette = silhouette_score(fitted[evaluation_rows], assigned[evaluation_rows])
            row["silhouette"] = round(float(silhouette), 4)
            row["calinski_harabasz"] = round(float(calinski_harabasz_score(fitted, assigned)), 1)
            row["davies_bouldin"] = round(float(davies_bouldin_score(fitted, assigned)), 4)
        return row

    @staticmethod
    def _choose(table: pd.DataFrame, options: ClusterOptions) -> pd.DataFrame:
        table = table.copy()
        table["eligible"] = (table.stability >= options.min_stability) & (table.smallest_share >= options.min_share)
        table["eligible"] &= table.silhouette.notna() & (table.n_segments >= 2)
        table["chosen"] = False
        eligible = table[table.eligible]
        if len(eligible):
            best = eligible.silhouette.max()
            good = eligible[eligible.silhouette >= best - options.silhouette_tolerance * abs(best)]
            pick = good.sort_values(["n_segments", "silhouette"], ascending=[False, False], kind="mergesort").index[0]
        else:
            pick = table.sort_values(["stability", "silhouette"], ascending=False, kind="mergesort").index[0]
        table.loc[pick, "chosen"] = True
        return table

    def _fit_assignment(self, fitted, labels, *, raw_model, space, order) -> None:
        """Keep what assigns new customers: the model itself (k-means, GMM) or a classifier."""
        self.model_ = None
        if space == "features" and raw_model in ("kmeans", "gmm"):
            k = int(labels.max() + 1)
            if raw_model == "kmeans":
                self.model_ = KMeans(k, n_init=4, random_state=self.random_state).fit(fitted)
            else:
                self.model_ = _mixture(k, self.random_state).fit(fitted)
            mapping = np.zeros(k, dtype=int)
            predicted = self.model_.predict(fitted)
            for cluster in range(k):
                members = labels[predicted == cluster]
                mapping[cluster] = np.bincount(members, minlength=k).argmax() if len(members) else cluster
            self.model_labels_ = mapping
        rng = np.random.default_rng(self.random_state)
        held_out = rng.random(len(fitted)) < 0.2
        check = KNeighborsClassifier(n_neighbors=15).fit(fitted[~held_out], labels[~held_out])
        agreement = (check.predict(fitted[held_out]) == labels[held_out]).mean() if held_out.any() else 1.0
        self.classifier_agreement_ = round(float(agreement), 4)
        self.classifier_ = KNeighborsClassifier(n_neighbors=15).fit(fitted, labels)

    def portable(self) -> Segmentation:
        """Return a copy with only what `predict` needs, ready for skops (no DataFrames, no embedding)."""
        check_is_fitted(self, "classifier_")
        copy = Segmentation(options=self.options, random_state=self.random_state)
        for name in ("columns_", "scaler_", "model_", "classifier_", "n_segments_", "classifier_agreement_"):
            setattr(copy, name, getattr(self, name))
        if self.model_ is not None:
            copy.model_labels_ = self.model_labels_
        return copy

    def predict(self, customers: pd.DataFrame) -> np.ndarray:
        """Assign segments to customers (DataFrame with the feature columns)."""
        check_is_fitted(self, "classifier_")
        points = self.transform(customers)
        if self.model_ is not None:
            return self.model_labels_[self.model_.predict(points)]
        return self.classifier_.predict(points)


def sample_positions(n: int, size: int, seed: int) -> np.ndarray:
    """Return ascending 0-based positions of ``size`` of ``n`` rows drawn at random (all when fewer).

    Returns
    -------
    ndarray of shape (min(n, size),)
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _value_order(customers: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """Map raw labels to 0.. by falling mean monetary value (ties: lower raw label first)."""
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
    # the default (250 + 500 iterations): the embedding only has to separate groups for the
    # candidate search, and t-SNE dominates the segments stage. Exact
    # neighbours: on a few features and at most max_fit_customers points they are quicker than
    # building an approximate index.
    embedding = TSNE(
        perplexity=perplexity,
        n_jobs=1,
        random_state=seed,
        early_exaggeration_iter=125,
        n_iter=250,
        neighbors="exact",
    ).fit(points)
    return np.asarray(embedding)
