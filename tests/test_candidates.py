from __future__ import annotations

import numpy as np

from custseg.candidates import QuantileTiers, candidate_units


def test_quantile_tiers_are_equal_and_equal_scores_share_a_tier():
    assert np.bincount(QuantileTiers(4).fit(np.arange(100.0)[:, None]).labels_).tolist() == [25, 25, 25, 25]
    points = np.r_[np.arange(100.0), np.full(20, 50.0)][:, None]
    tiers = QuantileTiers(4).fit(points)
    assert len(set(tiers.labels_[points[:, 0] == 50.0])) == 1  # the 21 customers at 50 share one tier
    assert np.bincount(tiers.labels_).sum() == 120
    assert (tiers.predict(np.array([[-5.0], [500.0]])) == [0, 3]).all()


def test_each_model_is_searched_in_its_own_spaces_per_k_or_at_once():
    units = candidate_units(["kmeans", "tiers", "hdbscan", "ward"], ["features", "predicted"], [4, 5], by_validity=True)
    assert units == [
        ("features", "kmeans", [4]),
        ("features", "kmeans", [5]),
        ("features", "hdbscan", [None]),
        ("features", "ward", [4, 5]),
        ("predicted", "tiers", [4, 5]),
    ]
    # Without a backtest there is nothing to predict from.
    assert candidate_units(["tiers"], ["predicted"], [4, 5], by_validity=False) == []
