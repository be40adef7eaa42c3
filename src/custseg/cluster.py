"""Which groups of customers to act on: learned segments chosen by what they predict.

Silhouette and its friends only say how well separated the groups are, and customer behaviour is
a continuum, so they reward two or three groups. A segmentation exists to be acted on; its test
is what its segments do next. Every candidate (a model x a space x a number of segments) is
fitted on the customers as of T - H and scored on what they did in the last H days (the backtest
of `custseg.backtest`); among the stable ones, the fewest segments within a stated margin of
the best score win, and that recipe is refitted on every customer as of T. Without enough history
the older rule applies: stability, then silhouette. Every customer is kept: log transforms and
robust scaling tame the extremes.

This module holds the settings, the choice rule and the fitted `Segmentation`; the spaces customers
are compared in are `custseg.spaces`, the candidate models and their search `custseg.candidates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.validation import check_is_fitted

from custseg.backtest import BacktestOptions, Scores, bootstrap_weights, score_predictions
from custseg.candidates import (
    MODEL_SPECS,
    MODELS,
    QuantileTiers,
    Search,
    attach_noise,
    candidate_units,
    fit_model,
    run_units,
)
from custseg.errors import ConfigError
from custseg.features import Use, features_used_by
from custseg.rules import Condition, RuleTree
from custseg.sampling import sample_positions
from custseg.spaces import SPACES, FeatureSpace, NextValueScore, RuleSpace, tsne


@dataclass(frozen=True)
class ClusterOptions:
    """Settings of the learned segmentation (``[cluster]`` in custseg.toml).

    Attributes
    ----------
    features : list of str
        Customer columns to segment on, each transformed as the catalogue says
        (`custseg.features.CATALOGUE`) and scaled by median and interquartile range
        (`FeatureSpace`); by default the features used by segments.
    interests : bool
        Also segment on the category shares (``share_*`` columns).
    min_segments, max_segments : int
        Numbers of segments to try and to accept (HDBSCAN finds its own).
    models, spaces : list of str
        Candidate models (`MODELS`) and spaces (`SPACES`): the scaled features; the predicted
        next-H behaviour learned on the backtest (``predicted``, one number per customer, see
        `NextValueScore`); a 2-D t-SNE of the features; the columns rules are stated in
        (``rules``, for `custseg.rules.RuleTree`).
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
        Customers drawn on the report's 2-D t-SNE map (0: no map). The map is the search's
        longest task; 2,500 points show its groups as 4,000 did, and on the UCI file the
        segments stage took 7.6 s against 8.9 s.
    segments_from : str or None
        An earlier run's output folder whose segments (rules, names) are applied to today's
        customers instead of the fresh fit, which is still made to compare (``--segments-from``).
    """

    features: list[str] = field(default_factory=lambda: list(features_used_by(Use.SEGMENTS)))
    interests: bool = False
    min_segments: int = 4
    max_segments: int = 10
    models: list[str] = field(default_factory=lambda: ["rules"])
    spaces: list[str] = field(default_factory=lambda: ["features", "predicted", "rules", "rules_next"])
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
    map_customers: int = 2500
    segments_from: str | None = None

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
        search = Search.prepare(
            searched,
            features=options.features,
            interests=options.interests,
            stability_resamples=options.stability_resamples,
            silhouette_sample=options.silhouette_sample,
            folds=self._backtest_options().folds if by_validity else None,
            seed=self.random_state,
        )
        low, high = options.segment_range()
        ks = [k for k in range(low, high + 1) if k < len(searched)]
        models = [options.model] if options.model else list(options.models)
        units = candidate_units(models, options.spaces, ks, by_validity=by_validity)
        if not units:
            raise ConfigError(
                f"[cluster] no candidate: models {options.model or options.models} in spaces {options.spaces}"
                + ("" if by_validity else " (the predicted space needs a backtest)")
            )
        final_space = FeatureSpace(features=options.features, interests=options.interests).fit(customers)
        map_rows = sample_positions(n, options.map_customers, self.random_state) if options.map_customers else None
        map_points = None if map_rows is None else final_space.transform(customers)[map_rows]
        results, map_embedding = run_units(search, units, tsne_space="tsne" in options.spaces, map_points=map_points)
        table = pd.DataFrame([row for row, _, _ in results])
        if by_validity:
            table = self._add_scores(table, [p for _, _, p in results], search)
        self.candidates_, self.reason_ = choose(table, options, by_validity=by_validity)
        self.rule_ = self._rule(options, by_validity)
        self.chosen_ = self.candidates_[self.candidates_.chosen].iloc[0].to_dict()
        self._refit(customers, final_space, searched, search.outcomes, options)
        self.embedding_ = None
        if map_rows is not None:
            self.embedding_ = np.full((n, 2), np.nan)
            self.embedding_[map_rows] = map_embedding
        return self

    def _backtest_options(self) -> BacktestOptions:
        return self.backtest_options or BacktestOptions()

    def _add_scores(self, table: pd.DataFrame, predictions: list, search: Search) -> pd.DataFrame:
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
        elif space in ("rules", "rules_next"):
            # What the customers as of T are expected to do next, learned on the backtest.
            self.space_ = RuleSpace().fit(searched, outcomes if space == "rules_next" else None)
            points = self.space_.fitting_points(customers)
        else:
            self.space_ = final_space
            points = final_space.transform(customers)
            if space == "tsne":
                points = tsne(points, self.random_state)
        fitted, raw = fit_model(model, points, k, self.random_state)
        self.noise_ = raw < 0
        raw = attach_noise(points, raw) if finds_k else raw
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

    def rules(self) -> list[list[Condition]] | None:
        """Each segment's rule, in segment order (`custseg.rules.RuleTree.rules`); None for clusters."""
        check_is_fitted(self, "space_")
        if not isinstance(self.model_, RuleTree):
            return None
        by_leaf = self.model_.rules()
        return [by_leaf[int(np.flatnonzero(self.order_ == segment)[0])] for segment in range(self.n_segments_)]

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
    if isinstance(fitted, RuleTree):
        return int((fitted.segment_ >= 0).sum())
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
