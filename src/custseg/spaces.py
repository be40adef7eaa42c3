"""How alike two customers are: the spaces the segment models measure distances in.

A segmentation groups customers that lie close together. This module puts them somewhere: at their
customer features, transformed as the catalogue says and robustly scaled (`FeatureSpace`, which the
value model reads too); at their predicted behaviour over the next H days, one number learned on the
backtest (`NextValueScore`); or on a 2-D t-SNE map of the features (`tsne`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import RobustScaler
from sklearn.utils.validation import check_is_fitted

from custseg.backtest import Outcomes
from custseg.errors import ConfigError
from custseg.features import Transform, Use, features_used_by, interest_shares, transform_of, typical_gap_days

SPACES = ("features", "predicted", "tsne", "rules", "rules_next")
"""The spaces a segment model can work in: `FeatureSpace`, `NextValueScore`, `tsne` of the features,
`RuleSpace` (the columns a rule is stated in, as they are) and ``rules_next``, the same columns with
what the customers are expected to do next (`RuleSpace` fitted on the backtest's outcomes)."""
LEARNED_ON_OUTCOMES = ("predicted", "rules_next")
"""The spaces learned on the backtest's outcomes: they need a backtest, and are refitted per fold."""


class RuleSpace(TransformerMixin, BaseEstimator):
    """The customer columns a rule is stated in, as they are: days, orders, money (`custseg.rules`).

    With the backtest's outcomes, it also learns what the customers are expected to do next
    (`NextValueScore`), which the rules are fitted to state beside the customers' groups
    (`fitting_points`); a rule itself reads only the columns.

    Parameters
    ----------
    features : list of str or None
        Customer columns; None is what rules use by default (``Use.RULES`` in the catalogue).

    Attributes
    ----------
    columns_ : list of str
    score_ : NextValueScore or None
        Learned on the backtest customers; None without outcomes.
    """

    def __init__(self, *, features: list[str] | None = None) -> None:
        self.features = features

    def fit(self, customers: pd.DataFrame, y: Outcomes | None = None) -> RuleSpace:
        """Check that ``customers`` hold the columns; with outcomes ``y``, learn the next-H score."""
        columns = list(self.features or features_used_by(Use.RULES))
        missing = [c for c in columns if c not in customers.columns]
        if missing:
            raise ConfigError(f"rules: no customer column {', '.join(missing)}")
        self.columns_ = columns
        self.score_ = None if y is None else NextValueScore().fit(customers, y)
        return self

    def fitting_points(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the columns and, where learned, the next-H score: shape (n_customers, n_columns [+ 1])."""
        points = self.transform(customers)
        if self.score_ is None:
            return points
        return np.column_stack([points, self.score_.transform(customers)])

    def transform(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the columns' values, shape (n_customers, n_columns)."""
        check_is_fitted(self, "columns_")
        return np.ascontiguousarray(customers[self.columns_].to_numpy(dtype=float, na_value=0.0))


class FeatureSpace(TransformerMixin, BaseEstimator):
    """The customer features as the segments and the value model see them: transformed and robustly scaled.

    Each column is transformed as the catalogue says (`custseg.features.transform_of`): recency and
    tenure in units of the shop's typical gap between orders, long-tailed counts and amounts by
    log1p, the rest as they are; then every column is scaled by its median and interquartile range.

    Parameters
    ----------
    features : list of str or None
        Customer columns; None is what segments use by default
        (`custseg.features.features_used_by` ``Use.SEGMENTS``).
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
        columns = list(self.features or features_used_by(Use.SEGMENTS))
        if self.interests:
            columns += sorted(interest_shares(customers.columns))
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
            transform = transform_of(column)
            if transform is Transform.TYPICAL_GAPS:
                values[:, i] = np.log1p(np.clip(values[:, i], 0, None) / self.typical_gap_days_)
            elif transform is Transform.LOG1P:
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


def tsne(points: np.ndarray, seed: int) -> np.ndarray:
    """Embed in 2-D with openTSNE (perplexity 50 as in the course, capped for small data)."""
    from openTSNE import TSNE

    perplexity = float(min(50, max(5, (len(points) - 1) // 3)))
    # One thread: it runs on one worker next to the candidate search, and is the search's longest
    # task. A shorter schedule than the default (250 + 500 iterations): the embedding only has to
    # separate groups. On the UCI file's map of 2,500 customers, 100 + 100 iterations kept as many
    # of a customer's 10 nearest neighbours in its own segment as 125 + 250 (87.4%, least 77.5%
    # against 78.1%) in half the time. Exact neighbours: on a few features and a few thousand
    # points they are quicker than building an approximate index.
    embedding = TSNE(
        perplexity=perplexity,
        n_jobs=1,
        random_state=seed,
        early_exaggeration_iter=100,
        n_iter=100,
        neighbors="exact",
    ).fit(points)
    return np.asarray(embedding)
