"""A classifier that reads one categorical input: "a customer stays what their first orders show"."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class LookupClassifier(ClassifierMixin, BaseEstimator):
    """Predict from one categorical input alone: the target's training counts per value, leaning to the value.

    The rule "a customer stays what their first orders show" is a strong baseline; fitted this
    way it competes with the learned models in cross-validation, with honest probabilities. The
    ``smoothing`` pseudo-count goes to the class the input names (when it is a class), so that a
    value seen rarely in training predicts itself, as the rule does, rather than whichever class
    its few customers happened to become. A value never seen gets the prior, plus the pseudo-count
    of the class it names when it names one.

    Parameters
    ----------
    column : str
        The input column to look up.
    smoothing : float
        Pseudo-count of the class the input names.
    classes : tuple of str, optional
        Every class the target can take (every category id): a value among them is predicted as
        itself even when no training customer became it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The targets seen in training and ``classes``.
    values_ : ndarray of shape (n_values,)
        The column's values seen in training.
    counts_ : ndarray of shape (n_values, n_classes)
        Training customers per value and class.
    prior_ : ndarray of shape (n_classes,)
        The classes' training shares.
    """

    def __init__(self, column: str = "dominant_category", smoothing: float = 1.0, classes: tuple = ()) -> None:
        self.column = column
        self.smoothing = smoothing
        self.classes = classes

    def fit(self, inputs: pd.DataFrame, y) -> LookupClassifier:
        """Count the targets ``y`` per value of the column."""
        values = inputs[self.column].astype(str).to_numpy()
        counts = pd.crosstab(values, np.asarray(y).astype(str))
        # A class no training customer became is still one the rule predicts for its own value.
        counts = counts.reindex(columns=sorted(set(counts.columns) | set(self.classes)), fill_value=0)
        self.classes_ = counts.columns.to_numpy(dtype=object)
        self.values_ = counts.index.to_numpy(dtype=object)
        self.counts_ = counts.to_numpy(dtype=float)
        self.prior_ = self.counts_.sum(axis=0) / self.counts_.sum()
        return self

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        """Probability of each of `classes_`, shape (n_customers, n_classes)."""
        check_is_fitted(self, "counts_")
        values = inputs[self.column].astype(str)
        position = pd.Index(self.values_).get_indexer(values)
        # A value never seen starts from the prior (one pseudo-customer), so that leaning to the
        # class it names does not make that class certain.
        table = np.vstack([self.counts_, self.prior_])[position]
        named = pd.Index(self.classes_).get_indexer(values)
        rows = np.flatnonzero(named >= 0)
        table[rows, named[rows]] += self.smoothing
        return table / table.sum(axis=1, keepdims=True)

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        """Most probable class of each customer, shape (n_customers,)."""
        return self.classes_[self.predict_proba(inputs).argmax(axis=1)]
