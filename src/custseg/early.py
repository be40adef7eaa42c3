"""What a new customer will become, from their first orders.

The shop wants to know, from a customer's first order or two, what kind of customer they will
become. `EarlyClassifier` learns that from what is known after the first N orders (as placed, before
any later return) to the learned segment and dominant interest the customer has H days after their
first order, and `evaluate_early` measures it on the latest-joining customers, whom it never saw.
"""

from __future__ import annotations

import datetime
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from joblib import delayed
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.errors import ConfigError
from custseg.features import MAGNITUDES, Unit, Use, catalogued, features_used_by, interest_columns
from custseg.lookup import LookupClassifier
from custseg.profile import segment_ids
from custseg.record import ClassifierScores, ConfusionMatrix, EarlyFit, EarlyResult, Skipped
from custseg.sampling import sample_positions
from custseg.workers import parallel

if TYPE_CHECKING:
    from custseg.cluster import Segmentation


@dataclass(frozen=True)
class EarlyOptions:
    """Settings of the early prediction.

    Attributes
    ----------
    horizon_days : int
        The targets are the learned segment and dominant category a customer has this many days
        after their first order.
    max_orders : int
        Models are fitted on what is known after the first 1, 2, ..., ``max_orders`` orders.
    test_share : float
        Share of the eligible customers, the latest to join, held out to measure the models.
    cv_folds : int
        Cross-validation folds on the training customers, to choose the model and its settings.
    enabled : bool
        False skips the early prediction.
    search_customers : int
        Each model is chosen by cross-validation on a random sample of at most this many training
        customers, then refitted on all of them (as the segments' candidates are searched on a
        sample, ``[cluster] search_customers``). On the simulated 10-million-row log, a search on
        2,500 chose models with the same test scores as one on 5,000 (every target and number of
        orders), and the stage took 12.9 s against 16.1 s.
    max_train_customers : int
        Above this many customers whose first order is a horizon old, the models are trained and
        tested on a random sample of this many (less those with no order of positive net revenue
        within the horizon), drawn before they are described: as many as the segments are fitted
        on (``[cluster] max_fit_customers``). On the simulated 10-million-row log, models learned
        from 20,000 customers scored as those from 95,459 (dominant category macro-F1 after 1, 2,
        3 orders 0.742, 0.883, 0.774 against 0.739, 0.885, 0.805, the last on 191 and 924 test
        customers; segment accuracy 0.9996 against 0.9983) in a quarter of the time.
    """

    horizon_days: int = 90
    max_orders: int = 3
    test_share: float = 0.25
    cv_folds: int = 3
    enabled: bool = True
    search_customers: int = 2500
    max_train_customers: int = 20_000

    def __post_init__(self) -> None:
        if self.horizon_days < 1 or self.max_orders < 1 or not 0 < self.test_share < 1:
            raise ConfigError("[early]: horizon_days and max_orders must be at least 1 and test_share between 0 and 1")


TARGETS = ("segment", "category")
"""What the early models predict: the learned segment and the dominant interest category."""
_FITTED_ORDER = ("monetary", "avg_order_value", "lines", "distinct_products", "tenure_days", "mean_days_between_orders")
"""The order the early models have always read their logged inputs in. Their fits depend on it (in
catalogue order, one candidate's cross-validated macro-F1 on the demo shop moved from 0.5746 to
0.5713), so it is kept; an input added to the catalogue comes after these."""
LOGGED_INPUTS = tuple(
    sorted(
        (name for name in features_used_by(Use.EARLY) if catalogued(name).unit in MAGNITUDES),
        key=lambda name: _FITTED_ORDER.index(name) if name in _FITTED_ORDER else len(_FITTED_ORDER),
    )
)
"""The counts, amounts and days the early models read (``Use.EARLY`` in `custseg.features.CATALOGUE`):
long-tailed, so log1p-transformed before scaling."""
FRACTION_INPUTS = tuple(name for name in features_used_by(Use.EARLY) if catalogued(name).unit is Unit.FRACTION)
"""The numbers from 0 to 1 the early models read as they are, beside the category shares."""
CATEGORICAL_INPUTS = ("main_country", "first_month", "first_weekday", "dominant_category", "segment_now")
MIN_TRAIN_PER_FOLD = 10
"""Early models need at least this many training customers per cross-validation fold."""
AS_IS_INPUTS = {"segment": "segment_now", "category": "dominant_category"}
"""Per target, the input that is the target's value on the first orders themselves."""
BOOSTED_TARGETS = ("segment",)
"""The targets gradient boosting is tried on. On the dominant category it predicts the large categories
(class weights made each fit ten times slower): cross-validated macro-F1 0.05 / 0.35 / 0.53 after 1 / 2
/ 3 orders on the UCI file's 23 categories, against 0.61-0.69 for logistic regression and 0.74-0.82 for
the first orders as they are, and 0.15-0.25 against 0.70 and 0.76 on the simulated 10-million-row log.
It was never chosen there and took about a third of the stage, one tree per category and round."""
MIN_GAIN_OVER_AS_IS = 0.03
"""The cross-validated macro-F1 a learned model must add to the first orders taken as they are to be chosen."""


def model_inputs(features: pd.DataFrame, categories: list[str]) -> pd.DataFrame:
    """Build the early models' input columns from `early_features` rows.

    Returns
    -------
    DataFrame of shape (n_customers, 13 + n_categories)
        `LOGGED_INPUTS` (log1p), `FRACTION_INPUTS` (breadth), the first order's hour, one share per
        category, and `CATEGORICAL_INPUTS` (country, the first order's month and weekday, the
        dominant category so far) as text.
    """
    first = pd.to_datetime(features.first_order_at)
    shares = list(interest_columns(categories).values())
    # Whole blocks through numpy: the API calls this for one customer at a time.
    logged = np.log1p(np.clip(features[list(LOGGED_INPUTS)].to_numpy(dtype=float, na_value=0.0), 0, None))
    numbers = np.column_stack(
        [
            logged,
            features[list(FRACTION_INPUTS)].to_numpy(dtype=float, na_value=0.0),
            first.dt.hour.to_numpy(dtype=float),
            features[shares].to_numpy(dtype=float, na_value=0.0),
        ]
    )
    inputs = pd.DataFrame(
        numbers, columns=[*LOGGED_INPUTS, *FRACTION_INPUTS, "first_hour", *shares], index=features.index
    )
    labels = {
        "main_country": features.main_country.fillna("unknown").astype(str),
        "first_month": first.dt.month.astype(str),
        "first_weekday": first.dt.day_of_week.astype(str),
        "dominant_category": features.dominant_category.fillna("unknown").astype(str),
    }
    if "segment_now" in features.columns:
        labels["segment_now"] = features.segment_now.astype(str)
    return pd.concat([inputs, pd.DataFrame(labels, index=features.index)], axis=1)


class EarlyClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression, gradient boosting or a lookup, whichever cross-validates better.

    Each is tuned by grid search on the training customers only (macro-F1, stratified folds);
    logistic regression uses balanced class weights, since small segments matter as much as large
    ones. The lookup (`LookupClassifier`) predicts from the target's value on the first orders
    alone; a learned model is only chosen when it cross-validates at least `MIN_GAIN_OVER_AS_IS`
    above it, since a model that does not add that much adds nothing a marketer could tell apart
    from the first orders as they are.

    Parameters
    ----------
    as_is_column : str or None
        The input the lookup reads (`AS_IS_INPUTS`); None leaves the lookup out.
    as_is_classes : tuple of str
        Every value the target can take, for the lookup (`LookupClassifier`'s ``classes``).
    cv_folds : int
        Cross-validation folds.
    random_state : int
        Seed of the folds and of gradient boosting.
    n_jobs : int or None
        Processes for the grid search (joblib's convention; None is one).
    search_customers : int
        The grid search runs on a random sample of at most this many customers; the winner is
        refitted on all.
    boosting : bool
        Also try gradient boosting.

    Attributes
    ----------
    estimator_ : estimator
        The winner, refitted on every training customer.
    chosen_ : str
        ``logistic_regression``, ``gradient_boosting``, ``first_orders_lookup`` or ``single_class``
        (one class in training).
    candidates_ : list of dict
        Each family's best settings and cross-validated macro-F1.
    classes_ : ndarray of shape (n_classes,)
        The chosen model's classes (the lookup's include ``as_is_classes`` no training customer
        became).
    class_prior_ : ndarray of shape (n_classes,)
        The training customers' share of each class.
    """

    def __init__(
        self,
        *,
        as_is_column: str | None = None,
        as_is_classes: tuple = (),
        cv_folds: int = 3,
        random_state: int = 0,
        n_jobs: int | None = None,
        search_customers: int = 2500,
        boosting: bool = True,
    ) -> None:
        self.as_is_column = as_is_column
        self.as_is_classes = as_is_classes
        self.cv_folds = cv_folds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.search_customers = search_customers
        self.boosting = boosting

    def _families(self, numeric: list[str], categorical: list[str]) -> dict[str, tuple[Pipeline, dict]]:
        encode = ColumnTransformer(
            [
                ("numbers", StandardScaler(), numeric),
                (
                    "labels",
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10, sparse_output=False),
                    categorical,
                ),
            ]
        )
        linear = LogisticRegression(max_iter=2000, class_weight="balanced")
        # No class weights for boosting: with sample weights scikit-learn bins every feature by
        # weighted percentiles, which made each fit ten times slower here.
        # 30 rounds at a learning rate of 0.2 and 63 bins: on a few thousand customers as good in
        # cross-validation as 60 rounds at 0.1 and 255 bins, in half the time. Trees of 7 leaves
        # only: searching 7 and 15 took a quarter of the stage and, on the UCI file and the
        # simulated 10-million-row log, chose no model that scored better on the test customers.
        boosted = HistGradientBoostingClassifier(
            max_iter=30,
            learning_rate=0.2,
            max_bins=63,
            max_leaf_nodes=7,
            early_stopping=False,
            random_state=self.random_state,
        )
        families = {
            "logistic_regression": (Pipeline([("encode", encode), ("model", linear)]), {"model__C": [0.1, 1.0, 10.0]})
        }
        if self.boosting:
            families["gradient_boosting"] = (Pipeline([("encode", clone(encode)), ("model", boosted)]), {})
        if self.as_is_column is not None:
            lookup = LookupClassifier(self.as_is_column, classes=tuple(self.as_is_classes))
            families["first_orders_lookup"] = (lookup, {"smoothing": [1.0, 4.0, 16.0]})
        return families

    def fit(self, inputs: pd.DataFrame, y) -> EarlyClassifier:
        """Choose and fit the model on ``inputs`` (from `model_inputs`) and their targets ``y``."""
        y = np.asarray(y).astype(str)
        self.classes_ = np.unique(y)
        categorical = [c for c in CATEGORICAL_INPUTS if c in inputs.columns]
        numeric = [c for c in inputs.columns if c not in categorical]
        self.candidates_ = []
        if len(self.classes_) == 1:
            self.chosen_ = "single_class"
            self.estimator_ = None
            return self
        rows = sample_positions(len(y), self.search_customers, self.random_state)
        searched, searched_y = inputs.iloc[rows], y[rows]
        smallest = int(pd.Series(searched_y).value_counts().min())
        folds = (
            StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.random_state)
            if smallest >= self.cv_folds
            else KFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        )
        best_score, best = -np.inf, None
        # One OpenMP thread: on a few thousand customers, gradient boosting's threads (and the
        # joblib threads its binning starts per fit) cost more than they save.
        with warnings.catch_warnings(), threadpool_limits(1, user_api="openmp"):
            # Rare segments can be missing from a fold, or be the only one left in it; the score
            # then counts them as missed, and a fit that cannot run scores 0 (error_score).
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FitFailedWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            for name, (pipeline, grid) in self._families(numeric, categorical).items():
                # Only the winning family is refitted on all training customers, below.
                search = GridSearchCV(
                    pipeline, grid, scoring="f1_macro", cv=folds, error_score=0.0, n_jobs=self.n_jobs, refit=False
                )
                search.fit(searched, searched_y)
                score = round(float(search.best_score_), 4)
                self.candidates_.append({"model": name, "params": search.best_params_, "cv_macro_f1": score})
                if score > best_score:
                    best_score, self.chosen_, best = score, name, (pipeline, search.best_params_)
                if name == "first_orders_lookup":
                    as_is = score, name, (pipeline, search.best_params_)
            if self.as_is_column is not None and best_score < as_is[0] + MIN_GAIN_OVER_AS_IS:
                best_score, self.chosen_, best = as_is
            pipeline, params = best
            self.estimator_ = clone(pipeline).set_params(**params).fit(inputs, y)
        # The lookup's classes include those no training customer became (``as_is_classes``).
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.class_prior_ = pd.Series(y).value_counts(normalize=True).reindex(self.classes_, fill_value=0.0).to_numpy()
        return self

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        """Chance of each of `classes_`, shape (n_customers, n_classes).

        Logistic regression is fitted with every class weighted alike (balanced weights, for
        macro-F1), so its own probabilities are those of a shop whose customers end in every
        class equally often; they are re-weighted by the training customers' share of each class
        (the prior correction of Saerens, Latinne and Decaestecker 2002). On the UCI file's
        hold-out, after one order, the mean probability of becoming "10+ orders" was 0.047 before
        the correction, against 0.002 who did.
        """
        check_is_fitted(self, "classes_")
        if self.estimator_ is None:
            return np.ones((len(inputs), 1))
        probabilities = self.estimator_.predict_proba(inputs)
        if self.chosen_ != "logistic_regression":
            return probabilities
        weighted = probabilities * self.class_prior_
        return weighted / weighted.sum(axis=1, keepdims=True)

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        """Class of each customer the chosen model picks, shape (n_customers,).

        The model's own pick, the one its macro-F1 was measured on: with balanced class weights a
        rarer class is picked more often than its chance alone would make it.
        """
        check_is_fitted(self, "classes_")
        if self.estimator_ is None:
            return np.repeat(self.classes_, len(inputs))
        return np.asarray(self.estimator_.predict(inputs))


def _scores(truth: pd.Series, predicted) -> ClassifierScores:
    return ClassifierScores(
        accuracy=round(float(accuracy_score(truth, predicted)), 4),
        macro_f1=round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
    )


def holdout_split(targets: pd.DataFrame, test_share: float) -> pd.Series:
    """Mark the latest-joining ``test_share`` of customers True (ties in time: by customer id)."""
    order = targets.sort_values(["joined_at", "customer_id"]).customer_id
    n_test = math.ceil(len(order) * test_share)
    test_ids = set(order.iloc[len(order) - n_test :]) if n_test else set()
    return targets.customer_id.isin(test_ids)


@dataclass(frozen=True)
class Holdout:
    """The early models measured on the latest-joining customers.

    Attributes
    ----------
    results : list of EarlyResult
        One per target and number of first orders, in that order.
    models : dict
        ``models[target][str(n)]``: the fitted `EarlyClassifier` (fitted on training customers only).
    test_joined_from : datetime or None
        When the first test customer joined (None without test customers).
    """

    results: list[EarlyResult]
    models: dict[str, dict[str, EarlyClassifier]]
    test_joined_from: datetime.datetime | None


def evaluate_early(
    early: dict[int, pd.DataFrame],
    targets: pd.DataFrame,
    categories: list[str],
    *,
    options: EarlyOptions,
    seed: int = 0,
) -> Holdout:
    """Fit and measure the early models on a temporal hold-out.

    Parameters
    ----------
    early : dict of int to DataFrame
        `custseg.first_orders.early_features` for each number of first orders, 1 to ``options.max_orders``.
    targets : DataFrame
        customer_id, joined_at, and the targets ``segment`` (None without a segmentation) and
        ``category``, from `custseg.first_orders.horizon_features`; only these customers are used.
    categories : list of str
        Every category id, in order.
    options : EarlyOptions
        Horizon, number of orders, test share and folds.
    seed : int
        Seed of the folds and of gradient boosting.

    Returns
    -------
    Holdout
        Per target and number of orders: customers in training and test, and (unless too few)
        the chosen model and its cross-validated candidates, test accuracy and macro-F1 of the
        model and of the two baselines (the training majority class; the first orders taken as
        they are: the segmentation applied to their features, or their dominant category), and
        the model's confusion matrix.
    """
    test = holdout_split(targets, options.test_share)
    test_ids = set(targets.customer_id[test])
    rows: list[dict[str, Any]] = []
    tasks = []
    fewest = MIN_TRAIN_PER_FOLD * options.cv_folds
    for target in TARGETS:
        if targets[target].isna().all():
            continue
        labelled = targets.dropna(subset=[target])
        for n_orders in range(1, options.max_orders + 1):
            frame = early[n_orders].merge(labelled[["customer_id", "joined_at", target]], on="customer_id")
            horizon = pd.to_datetime(frame.joined_at) + pd.Timedelta(days=options.horizon_days)
            frame = frame[pd.to_datetime(frame.last_order_at) < horizon].sort_values("customer_id")
            in_test = frame.customer_id.isin(test_ids).to_numpy()
            train, held_out = frame[~in_test], frame[in_test]
            row = {"target": target, "n_orders": n_orders, "train_customers": len(train)}
            row["test_customers"] = len(held_out)
            rows.append(row)
            if len(train) < fewest or held_out.empty:
                reason = f"fewer than {fewest} training customers" if len(train) < fewest else "no test customers"
                row["fit"] = Skipped(reason=reason)
                continue
            model = EarlyClassifier(
                as_is_column=AS_IS_INPUTS[target],
                as_is_classes=tuple(categories) if target == "category" else (),
                cv_folds=options.cv_folds,
                random_state=seed,
                search_customers=options.search_customers,
                boosting=target in BOOSTED_TARGETS,
            )
            tasks.append((row, model, train, held_out))
    # One model per process: a grid search per model would leave the second core idle while it
    # refits its winner, and pay for starting its workers each time. The most training customers
    # first, so that the cores finish together rather than one waiting on the largest refit.
    largest_first = sorted(range(len(tasks)), key=lambda i: -len(tasks[i][2]))
    with threadpool_limits(limits=1, user_api="blas"):
        done = parallel()(
            delayed(model.fit)(model_inputs(train, categories), train[row["target"]])
            for row, model, train, _ in (tasks[i] for i in largest_first)
        )
    fitted = [model for _, model in sorted(zip(largest_first, done, strict=True), key=lambda pair: pair[0])]
    models: dict[str, dict[str, EarlyClassifier]] = {}
    for (row, _, train, held_out), model in zip(tasks, fitted, strict=True):
        row["fit"] = _measured(model, train, held_out, row["target"], categories)
        models.setdefault(row["target"], {})[str(row["n_orders"])] = model
    joined_from = targets.joined_at[test].min() if test.any() else None
    return Holdout(
        results=[EarlyResult(**row) for row in rows],
        models=models,
        test_joined_from=None if joined_from is None else pd.Timestamp(joined_from).to_pydatetime(),
    )


def _measured(
    model: EarlyClassifier, train: pd.DataFrame, held_out: pd.DataFrame, target: str, categories: list[str]
) -> EarlyFit:
    """Score a fitted early model and the two baselines on the held-out customers."""
    held_out_inputs = model_inputs(held_out, categories)
    predicted = model.predict(held_out_inputs)
    counts = train[target].astype(str).value_counts()
    majority = sorted(counts.index, key=lambda label: (-counts[label], label))[0]
    truth = held_out[target].astype(str)
    labels = sorted(set(model.classes_) | set(truth) | set(predicted))
    # Counted directly: scikit-learn's confusion_matrix warns on a single label.
    matrix = pd.crosstab(
        pd.Categorical(truth, categories=labels), pd.Categorical(predicted, categories=labels), dropna=False
    )
    degenerate = None
    if truth.nunique() == 1:
        # One class in the test set: every score is perfect or zero for model and guess alike.
        degenerate = (
            f"all {len(truth):,} test customers are in one class ({truth.iloc[0]}): the hold-out cannot tell "
            "a model from a guess, so no score is given"
        )
    return EarlyFit(
        classes=model.classes_.tolist(),
        chosen=model.chosen_,
        candidates=model.candidates_,
        model=_scores(truth, predicted),
        majority=_scores(truth, [majority] * len(truth)),
        first_orders_as_is=_scores(truth, held_out_inputs[AS_IS_INPUTS[target]]),
        confusion_matrix=ConfusionMatrix(labels=labels, rows_true_columns_predicted=matrix.to_numpy().tolist()),
        degenerate=degenerate,
    )


EARLY_COLUMNS = (
    "early_orders",
    "predicted_segment",
    "predicted_segment_name",
    "predicted_segment_probability",
    "predicted_category",
    "predicted_category_name",
    "predicted_category_probability",
)
"""The early prediction's columns on a customer (null for customers it does not apply to)."""


def usable_orders(models: dict[str, dict[str, EarlyClassifier]]) -> list[int]:
    """Numbers of first orders that every target has an early model for, ascending."""
    if not models:
        return []
    return sorted(set.intersection(*({int(n) for n in by_orders} for by_orders in models.values())))


EARLY_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        *(
            (
                name,
                pa.int64()
                if name == "early_orders"
                else pa.float64()
                if name.endswith("_probability")
                else pa.string(),
            )
            for name in EARLY_COLUMNS
        ),
    ]
)
"""What `predict_batch` returns for a batch of customers."""


def predict_batch(
    early: pd.DataFrame,
    *,
    models: dict[str, dict[str, EarlyClassifier]],
    categories: list[str],
    names: dict[str, dict[str, str]],
    segmentation: Segmentation | None,
) -> pd.DataFrame:
    """Predict segment and category of customers from their first orders, each with its own number.

    Parameters
    ----------
    early : DataFrame of shape (n_customers, n_columns)
        `early_features` with a per-customer table: one row per customer and its ``n_orders``
        (from `early_rows`).
    models : dict
        ``models[target][str(n)]``, as from `evaluate_early`.
    categories : list of str
        Every category id, in order.
    names : dict
        ``names[target]``: segment id -> segment name, category id -> category label.
    segmentation : Segmentation or None
        Gives the first orders' own segment (input ``segment_now``).

    Returns
    -------
    DataFrame of shape (n_customers, 8)
        customer_id and `EARLY_COLUMNS` (`EARLY_SCHEMA`): how many first orders were used, the
        predicted segment and category with their names and the model's probability of each
        (null where no model applies).
    """
    if segmentation is not None and len(early):
        early = early.assign(segment_now=segment_ids(segmentation.predict(early)))
    # Arrays filled per number of orders, one frame at the end: the API calls this for a
    # customer or two, where every pandas step costs more than the models do.
    n_orders = early.n_orders.to_numpy(dtype=np.int64) if len(early) else np.zeros(0, dtype=np.int64)
    usable = set(usable_orders(models))
    predicted = {target: np.full(len(early), None, dtype=object) for target in TARGETS}
    probability = {target: np.full(len(early), np.nan) for target in TARGETS}
    for orders in sorted(usable & set(n_orders.tolist())):
        rows = np.flatnonzero(n_orders == orders)
        inputs = model_inputs(early.iloc[rows], categories)
        for target, by_orders in models.items():
            model = by_orders[str(orders)]
            picked = model.predict(inputs)
            chances = model.predict_proba(inputs)
            column = {value: i for i, value in enumerate(model.classes_)}
            predicted[target][rows] = picked
            probability[target][rows] = chances[np.arange(len(rows)), [column[p] for p in picked]].round(4)
    early_orders = pd.array(n_orders, dtype="Int64")
    early_orders[~np.isin(n_orders, list(usable))] = pd.NA
    columns = {"customer_id": early.customer_id.to_numpy(), "early_orders": early_orders}
    for target in TARGETS:
        labels = names.get(target, {})
        columns[f"predicted_{target}"] = pd.array(predicted[target], dtype="string")
        columns[f"predicted_{target}_name"] = pd.array(
            [labels.get(value) if value is not None else None for value in predicted[target]], dtype="string"
        )
        columns[f"predicted_{target}_probability"] = probability[target]
    return pd.DataFrame(columns)[["customer_id", *EARLY_COLUMNS]]
