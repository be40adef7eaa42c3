"""Expected value: what each customer, and each segment, is worth over the next H days.

A budget needs a number per customer: how likely they are to order again, how many orders and how
much revenue to expect from them in the next H days. `ValueModel` learns that on the backtest
(customers as of T - H, what they did in the last H days) and is applied as of T. It is a
two-part model, because most customers of a shop do not order in any given quarter: the chance of
ordering again times the log revenue of those who do gives each customer's expected log revenue,
and a smooth Poisson link from that one number to the revenue and orders keeps the totals, and
the value of each band of customers, calibrated.
Candidate learners are scored out of fold on the backtest customers, as the segments are; the
best wins. A forward check, fitted one horizon earlier and scored on the last H days, shows what
the season does to the totals.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import delayed
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.backtest import Outcomes, Scores, score_predictions, value_scores
from custseg.errors import ConfigError
from custseg.features import Use, features_used_by
from custseg.record import Skipped
from custseg.record.value import ForwardChecks, Season
from custseg.spaces import FeatureSpace
from custseg.workers import parallel

VALUE_FEATURES = features_used_by(Use.VALUE)
"""The customer columns the value model reads by default (in `custseg.features.CATALOGUE`, ``Use.VALUE``)."""
CUMULATIVE_FEATURES = features_used_by(Use.VALUE_PER_QUARTER)
"""Totals over a customer's whole history, which the value model reads per quarter of tenure (`per_quarter`)."""
RATE_DAYS = 90
TARGETS = ("p_order_again", "expected_orders", "expected_revenue")
"""What the value model predicts per customer, in the order of its columns."""


def period(window: tuple[datetime.datetime, datetime.datetime]) -> str:
    """Name the days a forecast covers (``window`` is [T, T + H)): "the 90 days from 2011-12-10 to 2012-03-08"."""
    first, end = window
    return f"the {(end - first).days} days from {first.date()} to {(end - datetime.timedelta(days=1)).date()}"


def forward_in_words(forward: ForwardChecks) -> str:
    """Say what the forward checks found: "forward checks at 4 cuts from 2011-06-13 to 2011-09-11 ..."."""
    cuts = sorted(forward.cuts, key=lambda check: check.scored_as_of)
    ratios = [check.revenue_ratio for check in cuts if check.revenue_ratio is not None]
    where = (
        f"at {cuts[0].scored_as_of.date()}"
        if len(cuts) == 1
        else f"at {len(cuts)} cuts from {cuts[0].scored_as_of.date()} to {cuts[-1].scored_as_of.date()}"
    )
    found = f"forward check{'s' if len(cuts) > 1 else ''} {where}: predicted total "
    found += (
        f"{min(ratios):.0%} to {max(ratios):.0%} of the actual"
        if len(ratios) > 1
        else (f"{ratios[0]:.0%} of the actual" if ratios else "undefined (no revenue)")
    )
    if forward.seasonal:
        corrected = [c.revenue_ratio * c.season_factor for c in cuts if None not in (c.revenue_ratio, c.season_factor)]
        found += f", corrected by the season a year before each {min(corrected):.0%} to {max(corrected):.0%}"
    if forward.shop is not None:
        found += (
            f"; the {forward.level:.0%} interval held the actual in {forward.shop.held} of {forward.shop.tried} "
            "checks left out in turn"
        )
    return found


def season_in_words(season: Season | Skipped, expected_revenue: float) -> str:
    """Say whether the forecast was corrected by the season a year earlier, and what it would be otherwise."""
    if isinstance(season, Skipped):
        return (
            f"not corrected by the season a year earlier: {season.reason}. The forward checks forecast other "
            "weeks of the year than these, so this season can move the total outside its interval"
        )
    revenue = season.factors["expected_revenue"]
    if season.applied:
        return (
            f"corrected by the season a year earlier: scored on the customers as of {season.as_of.date()}, the model "
            f"expected {season.predicted_revenue:,.0f} and they brought {season.actual_revenue:,.0f}, so the forecast "
            f"is multiplied by {revenue:.2f} (without it: {expected_revenue / revenue:,.0f}); {season.reason}"
        )
    return (
        f"not corrected by the season a year earlier (which would multiply it by {revenue:.2f}, to "
        f"{expected_revenue * revenue:,.0f}): {season.reason}"
    )


def value_columns(horizon_days: int) -> dict[str, str]:
    """Target -> the customers-table column holding it, named after the horizon (``expected_revenue_90d``)."""
    return {target: f"{target}_{horizon_days}d" for target in TARGETS}


def per_quarter(customers: pd.DataFrame) -> pd.DataFrame:
    """Return the customers with their totals (`CUMULATIVE_FEATURES`) per 90 days of tenure (at least 90).

    A customer's totals grow with the log: as of T every customer has H more days of history than
    as of T - H, where the model learned, and a model of totals then overstates them all (on the
    UCI log, which starts four months before its first backtest, forward totals came out 35% high
    at three cuts in four). Their rate does not grow so: with rates the forward totals at those
    cuts came within 5%. Customers younger than 90 days count as 90 days old, so that one order
    on day one is not read as 90 a quarter.
    """
    if "tenure_days" not in customers:
        return customers
    quarters = np.maximum(customers.tenure_days.to_numpy(dtype=float), RATE_DAYS) / RATE_DAYS
    present = [column for column in CUMULATIVE_FEATURES if column in customers]
    return customers.assign(**{column: customers[column].to_numpy(dtype=float) / quarters for column in present})


def _learners(model: str, seed: int) -> tuple:
    """Return the classifier of ordering again and the regressor of log revenue of those who do."""
    if model == "linear":
        return LogisticRegression(max_iter=2000), LinearRegression()
    # Small, regularised trees: a shop's backtest has thousands of customers, not millions.
    # 50 rounds at a learning rate of 0.2 and 63 bins: out of fold as valid as 100 rounds at 0.1
    # and 255 bins (UCI 0.365 against 0.358; simulated shops, seeds 0 and 1, 0.889 against 0.884
    # and 0.896 against 0.896; a seasonal shop 0.671 against 0.672, each within a standard error)
    # in half the time.
    settings = {
        "max_iter": 50,
        "learning_rate": 0.2,
        "max_bins": 63,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "early_stopping": False,
        "random_state": seed,
    }
    return HistGradientBoostingClassifier(**settings), HistGradientBoostingRegressor(**settings)


MODELS = ("linear", "gradient_boosting")
"""Candidate learners: logistic and linear regression, or gradient-boosted trees (scikit-learn)."""
LINK_FOLDS = 3
"""Cross-fitting folds of the index the link is learned from."""
RHYTHM = ("frequency", "recency_own_gaps")
"""Columns whose product the learners also read: a customer's order rate times their silence in
their own usual gaps. A frequent buyer who has long been silent has likely left (the dropout of
BG/NBD-type models), which a sum of the two cannot say: to a linear model without it, the most
frequent buyer of the UCI file, silent for 372 days (34 of their usual gaps), was 94% likely to
order again."""
LINK_GRID = 256
"""Points on which a link curve is kept."""
LINK_END_SHARE = 0.05
"""The top share of the link's range whose rise it keeps above the range (`IndexLink`)."""
LINK_KNOTS = 4
"""Knots of the spline from the expected log revenue to the expected revenue and orders. A straight
log link overstates the best customers and halves the rest (decile by decile on the UCI backtest);
three knots left deciles about 20% off, five cost R² of log revenue (0.265 against 0.270) for no
better calibration."""


class IndexSpline(TransformerMixin, BaseEstimator):
    """A cubic B-spline basis of one number, with knots evenly over its training range.

    Outside the training range a value counts as the nearest end of it: tomorrow's top customer,
    a little above today's, is valued as today's top, not by a cubic's tail.

    Parameters
    ----------
    n_knots : int

    Attributes
    ----------
    knots_ : ndarray of shape (n_knots + 6,)
        The knot vector: ``n_knots`` over the training range and three more, as evenly spaced,
        beyond each end.
    """

    def __init__(self, n_knots: int = LINK_KNOTS) -> None:
        self.n_knots = n_knots

    def fit(self, values: np.ndarray, y=None) -> IndexSpline:
        """Place the knots evenly between the least and the greatest of ``values`` (shape (n_samples, 1))."""
        column = np.asarray(values, dtype=float)[:, 0]
        low, high = float(column.min()), float(column.max())
        inner = np.linspace(low, high, self.n_knots) if high > low else np.array([low, low + 1.0])
        step = inner[1] - inner[0]
        # Evenly spaced beyond the ends too (as scikit-learn's SplineTransformer): no sharp end pieces.
        self.knots_ = np.concatenate([inner[0] - step * np.arange(3, 0, -1), inner, inner[-1] + step * np.arange(1, 4)])
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Return the basis, shape (n_samples, n_knots + 1): every B-spline but the first.

        The B-splines sum to one, so the first is left to the model's intercept.
        """
        check_is_fitted(self, "knots_")
        from scipy.interpolate import BSpline

        inside = np.clip(np.asarray(values, dtype=float)[:, 0], self.knots_[3], self.knots_[-4])
        return BSpline.design_matrix(inside, self.knots_, 3).toarray()[:, 1:]


class IndexLink(RegressorMixin, BaseEstimator):
    """A smooth curve from the index (the expected log revenue) to an expected amount.

    A Poisson regression on a cubic spline of the index (`IndexSpline`) gives the curve; it is
    kept as a table on `LINK_GRID` points, scaled so that the training total is kept. Below the
    training range it stays at its first value. Above it, it goes on rising as it rose over its
    top `LINK_END_SHARE` of the range, as a power of e in the index (``end_slope_``, from 0 to 1):
    the accounts larger than any the backtest saw stay ranked instead of tying at the curve's end
    value (on the UCI file the three largest did), and at most in proportion to e to the index,
    the rise the index's own log scale means. It is not forced to rise inside the range: forcing
    it (a running maximum or isotonic regression) tied many customers and lowered the Spearman
    correlation on the UCI backtests. Only arrays and a number are kept, so the model file holds
    no scipy objects.

    Attributes
    ----------
    grid_, values_ : ndarray of shape (LINK_GRID,)
    end_slope_ : float
        d log(amount) / d index above the range.
    """

    def fit(self, index: np.ndarray, y: np.ndarray) -> IndexLink:
        """Learn the curve from ``index`` (shape (n_samples, 1)) to the amounts ``y`` (shape (n_samples,))."""
        column = np.asarray(index, dtype=float)[:, 0]
        curve = make_pipeline(IndexSpline(), PoissonRegressor(alpha=1e-4, solver="newton-cholesky", max_iter=300))
        curve.fit(column[:, None], y)
        self.grid_ = np.linspace(column.min(), column.max(), LINK_GRID)
        values = curve.predict(self.grid_[:, None])
        fitted = np.interp(column, self.grid_, values).sum()
        self.values_ = values * (np.sum(y) / fitted) if fitted > 0 else values
        top = self.grid_ >= self.grid_[-1] - LINK_END_SHARE * (self.grid_[-1] - self.grid_[0])
        self.end_slope_ = 0.0
        if top.sum() >= 2 and (self.values_[top] > 0).all() and self.grid_[-1] > self.grid_[0]:
            slope = np.polyfit(self.grid_[top], np.log(self.values_[top]), 1)[0]
            self.end_slope_ = float(np.clip(slope, 0.0, 1.0))
        return self

    def predict(self, index: np.ndarray) -> np.ndarray:
        """Return the expected amount of each index, shape (n_samples,)."""
        check_is_fitted(self, "end_slope_")
        column = np.asarray(index, dtype=float)[:, 0]
        above = np.clip(column - self.grid_[-1], 0.0, None)
        return np.interp(column, self.grid_, self.values_) * np.exp(self.end_slope_ * above)


@dataclass(frozen=True)
class ValueOptions:
    """Settings of the expected value (``[value]`` in custseg.toml); H is ``[backtest] horizon_days``.

    Attributes
    ----------
    enabled : bool
        False leaves the value columns out.
    models : list of str
        Candidate learners (`MODELS`), scored out of fold on the backtest; the best wins.
    features : list of str
        Customer columns read (`custseg.spaces.FeatureSpace` transforms and scales them).
    interests : bool
        Also read the category shares.
    search_customers : int
        The candidates are scored out of fold on a random sample of at most this many backtest
        customers (as the segments' candidates, ``[cluster] search_customers``); the winner is
        refitted on every backtest customer. On the simulated 10-million-row log, scoring on all
        20,000 took 5.7 s of the stage's 10.7 s, and the winner led by ten standard errors.
    forward_cuts, forward_step_days : int
        Forward checks (`custseg.forward`): at most this many cuts, this many days apart, from
        T - H back. Monthly: a shop that runs custseg monthly sees how its forecasts would have
        fared; six, so that the interval's coverage is measured on more than a few.
    """

    enabled: bool = True
    models: list[str] = field(default_factory=lambda: list(MODELS))
    features: list[str] = field(default_factory=lambda: list(VALUE_FEATURES))
    interests: bool = False
    search_customers: int = 5000
    forward_cuts: int = 6
    forward_step_days: int = 30

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown or not self.models:
            raise ConfigError(f"[value] models={self.models} must name one or more of {', '.join(MODELS)}")
        if self.forward_cuts < 1 or self.forward_step_days < 1:
            raise ConfigError(
                f"[value] forward_cuts={self.forward_cuts} and forward_step_days={self.forward_step_days} must be 1 "
                "or more"
            )


class ValueModel(RegressorMixin, BaseEstimator):
    """Expected orders and revenue in the next H days, and the chance of ordering again.

    Two parts: ``p`` = P(an order of positive net revenue within H) from a classifier, and
    ``size`` = E[log1p(revenue) | ordered] from a regressor fitted on those who ordered. Their
    product, the expected log revenue, is one number per customer (the index); the expected
    revenue and orders are smooth curves of the index (`IndexLink`), fitted on each customer's
    index from learners that did not see them (`LINK_FOLDS`), so that each band of the index is
    calibrated, not only the whole, on customers the learners did not see (on the training
    customers themselves, the totals then come within about 1% of the actual).

    Parameters
    ----------
    model : str
        ``linear`` or ``gradient_boosting`` (`MODELS`).
    features : list of str or None
        Customer columns; None is `VALUE_FEATURES`. Totals are read per quarter of tenure
        (`per_quarter`).
    interests : bool
        Also read the category shares (``share_*``).
    random_state : int

    Attributes
    ----------
    space_ : FeatureSpace
    rhythm_columns_ : list of int or None
        Positions of the `RHYTHM` columns in ``space_``'s output, whose product the learners also
        read; None when either is not read.
    return_model_ : classifier
    size_model_ : regressor
    revenue_link_, orders_link_ : IndexLink
        From the expected log revenue to the expected revenue (in units of ``revenue_scale_``)
        and orders.
    revenue_scale_ : float
        Mean revenue of the training customers.
    season_ : dict of str to float
        What each of `TARGETS` is multiplied by (`with_season`; 1 as fitted).
    """

    def __init__(
        self,
        *,
        model: str = "linear",
        features: list[str] | None = None,
        interests: bool = False,
        random_state: int = 0,
    ) -> None:
        self.model = model
        self.features = features
        self.interests = interests
        self.random_state = random_state

    @property
    def columns_(self) -> list[str]:
        """The customer columns read."""
        return self.space_.columns_

    def fit(self, customers: pd.DataFrame, y: pd.DataFrame) -> ValueModel:
        """Learn from customers as of T - H and what they did in the next H days.

        Parameters
        ----------
        customers : DataFrame of shape (n_customers, n_columns)
            The customers as of T - H, with the columns read (`VALUE_FEATURES`).
        y : DataFrame of shape (n_customers, 2)
            next_orders and next_revenue in the H days (negative revenue counts as 0).

        Raises
        ------
        ConfigError
            When fewer than `LINK_FOLDS` customers ordered again, or did not: too little to tell apart.
        """
        if self.model not in MODELS:
            raise ConfigError(f"model={self.model!r} must be one of {', '.join(MODELS)}")
        orders = y.next_orders.to_numpy(dtype=float)
        revenue = np.clip(y.next_revenue.to_numpy(dtype=float), 0, None)
        ordered = orders > 0
        fewer = int(min(ordered.sum(), (~ordered).sum()))
        if fewer < LINK_FOLDS:
            raise ConfigError(
                f"{int(ordered.sum())} of {len(ordered)} customers ordered again: a value model needs at least "
                f"{LINK_FOLDS} who did and {LINK_FOLDS} who did not"
            )
        self.space_ = FeatureSpace(features=list(self.features or VALUE_FEATURES), interests=self.interests)
        scaled = self.space_.fit_transform(per_quarter(customers))
        columns = self.space_.columns_
        self.rhythm_columns_ = [columns.index(c) for c in RHYTHM] if set(RHYTHM) <= set(columns) else None
        points = self._with_rhythm(scaled)
        log_revenue = np.log1p(revenue)
        index = np.empty(len(points))
        # The link is fitted on each customer's index from learners that did not see them: an
        # index the learners fitted to would look sharper than tomorrow's, and miscalibrate.
        for train, test in StratifiedKFold(LINK_FOLDS, shuffle=True, random_state=self.random_state).split(
            points, ordered
        ):
            index[test] = self._fit_learners(points[train], ordered[train], log_revenue[train])._index(points[test])
        self._fit_learners(points, ordered, log_revenue)
        index = index[:, None]
        self.revenue_scale_ = float(revenue.mean())
        self.revenue_link_ = IndexLink().fit(index, revenue / self.revenue_scale_)
        self.orders_link_ = IndexLink().fit(index, orders)
        self.season_ = dict.fromkeys(TARGETS, 1.0)
        return self

    def with_season(self, factors: dict[str, float]) -> ValueModel:
        """Multiply what the model predicts by the season's ``factors`` (`TARGETS` -> factor; chances stay at most 1).

        The factors are the model's actual over predicted totals a year before its forecast
        (`custseg.forward.season_factors`): the season ahead as it differed from the learned one.
        """
        check_is_fitted(self, "season_")
        self.season_ = {target: float(factors[target]) for target in TARGETS}
        return self

    def _points(self, customers: pd.DataFrame) -> np.ndarray:
        """Return the learners' inputs for ``customers``: the scaled columns and the `RHYTHM` product."""
        return self._with_rhythm(self.space_.transform(per_quarter(customers)))

    def _with_rhythm(self, scaled: np.ndarray) -> np.ndarray:
        """Append the product of the `RHYTHM` columns to ``scaled``, where both are read."""
        if self.rhythm_columns_ is None:
            return scaled
        rate, silence = self.rhythm_columns_
        return np.column_stack([scaled, scaled[:, rate] * scaled[:, silence]])

    def _fit_learners(self, points: np.ndarray, ordered: np.ndarray, log_revenue: np.ndarray) -> ValueModel:
        classifier, regressor = _learners(self.model, self.random_state)
        self.return_model_ = classifier.fit(points, ordered.astype(int))
        self.size_model_ = regressor.fit(points[ordered], log_revenue[ordered])
        return self

    def _index(self, points: np.ndarray) -> np.ndarray:
        p = self.return_model_.predict_proba(points)[:, 1]
        return p * np.clip(self.size_model_.predict(points), 0, None)

    def expected_log_revenue(self, customers: pd.DataFrame) -> np.ndarray:
        """E[log1p(revenue in the next H days)], shape (n_customers,): the one number the values follow."""
        check_is_fitted(self, "orders_link_")
        return self._index(self._points(customers))

    def predict(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Predict the next H days of each customer.

        Returns
        -------
        DataFrame of shape (n_customers, 3)
            `TARGETS`: p_order_again (0 to 1), expected_orders and expected_revenue, in the index
            order of ``customers``.
        """
        check_is_fitted(self, "orders_link_")
        points = self._points(customers)
        index = self._index(points)[:, None]
        season = self.season_
        return pd.DataFrame(
            {
                "p_order_again": np.minimum(
                    self.return_model_.predict_proba(points)[:, 1] * season["p_order_again"], 1
                ),
                "expected_orders": self.orders_link_.predict(index) * season["expected_orders"],
                "expected_revenue": self.revenue_link_.predict(index)
                * self.revenue_scale_
                * season["expected_revenue"],
            },
            index=customers.index,
        )


# -- choosing the model ---------------------------------------------------------------------------


def _fold_predictions(model: ValueModel, train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``model`` on ``train`` and predict ``test``: `TARGETS` (n_test, 3) and the expected log revenue.

    Training customers who all did the same predict their averages.
    """
    outcomes = train[["next_orders", "next_revenue"]]
    try:
        fitted = clone(model).fit(train, outcomes)
    except ConfigError:
        revenue = outcomes.next_revenue.clip(lower=0)
        averages = [float((outcomes.next_orders > 0).mean()), float(outcomes.next_orders.mean()), float(revenue.mean())]
        return np.tile(averages, (len(test), 1)), np.full(len(test), float(np.log1p(revenue).mean()))
    return fitted.predict(test).to_numpy(), fitted.expected_log_revenue(test)


def out_of_fold(
    models: list[ValueModel], customers: pd.DataFrame, folds: np.ndarray
) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """Each customer predicted by each model refitted on the other folds (the fits run on every core).

    Returns
    -------
    list of (predicted, log_index), one per model
        predicted : DataFrame of shape (n_customers, 3), `TARGETS`; log_index : ndarray of shape
        (n_customers,), the expected log revenue.
    """
    tasks = [(model, fold) for model in models for fold in np.unique(folds)]
    with threadpool_limits(limits=1):
        done = parallel()(
            delayed(_fold_predictions)(model, customers[folds != fold], customers[folds == fold])
            for model, fold in tasks
        )
    results = []
    for model in models:
        predicted = np.empty((len(customers), len(TARGETS)))
        index = np.empty(len(customers))
        for (task_model, fold), (values, log_index) in zip(tasks, done, strict=True):
            if task_model is model:
                predicted[folds == fold], index[folds == fold] = values, log_index
        results.append((pd.DataFrame(predicted, columns=list(TARGETS), index=customers.index), index))
    return results


@dataclass
class Candidate:
    """One learner scored out of fold on the backtest customers."""

    model: str
    scores: Scores
    figures: dict
    predicted: pd.DataFrame

    def row(self) -> dict:
        """Return the candidate's row in run.json: validity parts and the value figures."""
        return {"model": self.model, **self.scores.summary(), **self.figures}


def choose_model(
    customers: pd.DataFrame,
    options: ValueOptions,
    folds: np.ndarray,
    weights: np.ndarray,
    seed: int,
    *,
    refit_on: pd.DataFrame | None = None,
) -> tuple[ValueModel, list[Candidate], Candidate]:
    """Score every candidate learner out of fold, pick the most valid and refit it.

    The score is the segments' own: validity = (return Gini + R squared of log revenue) / 2, of
    p_order_again and the expected log revenue, out of fold on ``folds``.

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, n_columns + 3)
        Backtest customers with `custseg.backtest.OUTCOME_COLUMNS`.
    options : ValueOptions
        The candidates and the columns they read.
    folds : ndarray of shape (n_customers,)
        The backtest's folds (`custseg.backtest.fold_ids`).
    weights : ndarray of shape (n_replicates, n_customers)
        The backtest's bootstrap weights, for the standard errors.
    seed : int
        Random state of the learners.
    refit_on : DataFrame or None
        Backtest customers (with the outcomes) to refit the winner on; None is ``customers``.

    Returns
    -------
    model : ValueModel
        The chosen learner fitted on ``refit_on``.
    candidates : list of Candidate
    chosen : Candidate
    """
    outcomes = Outcomes.of(customers)
    actual = customers[["next_orders", "next_revenue"]]
    models = [
        ValueModel(model=name, features=options.features, interests=options.interests, random_state=seed)
        for name in options.models
    ]
    candidates = []
    for model, (predicted, index) in zip(models, out_of_fold(models, customers, folds), strict=True):
        scores = score_predictions(predicted.p_order_again.to_numpy(dtype=float), index, outcomes, weights)
        candidates.append(Candidate(model.model, scores, value_scores(predicted, actual), predicted))
    chosen = max(candidates, key=lambda c: c.scores.validity)
    model = clone(models[[c.model for c in candidates].index(chosen.model)])
    fitted_on = customers if refit_on is None else refit_on
    return model.fit(fitted_on, fitted_on[["next_orders", "next_revenue"]]), candidates, chosen
