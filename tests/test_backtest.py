from __future__ import annotations

import datetime
import re

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import make_transactions
from custseg.backtest import (
    Outcomes,
    backtest_customers,
    bootstrap_weights,
    fold_ids,
    history_reason,
    in_sample_scores,
    out_of_fold,
    rate_predictions,
    score_labels,
    segment_outcomes,
    validity,
    weighted_auc,
    weighted_eta_squared,
)
from custseg.clean import clean


def test_weighted_auc_counts_ties_half_and_matches_scikit_learn():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, 200).astype(float)  # many ties
    positive = (rng.random(200) < 0.3 + 0.1 * scores).astype(int)
    ones = np.ones((1, 200))
    assert weighted_auc(scores, positive, ones)[0] == pytest.approx(roc_auc_score(positive, scores))
    # A case weight of 2 is the same as the case written twice.
    weights = np.ones((1, 200))
    weights[0, :50] = 2
    doubled = np.r_[np.arange(200), np.arange(50)]
    assert weighted_auc(scores, positive, weights)[0] == pytest.approx(
        roc_auc_score(positive[doubled], scores[doubled])
    )


def test_eta_squared_is_the_share_of_variance_the_predictions_explain():
    actual = np.array([0.0, 0.0, 2.0, 2.0])
    ones = np.ones((1, 4))
    assert weighted_eta_squared(np.array([0.0, 0.0, 2.0, 2.0]), actual, ones)[0] == 1.0
    assert weighted_eta_squared(np.full(4, 1.0), actual, ones)[0] == 0.0
    assert validity(0.5, 0.0) == 0.0 and validity(1.0, 1.0) == 1.0


def test_rates_come_from_the_training_customers_of_the_same_segment():
    train = Outcomes(returned=np.array([1, 1, 0, 0]), revenue=np.array([10.0, 30.0, 0.0, 0.0]))
    p_return, p_value = rate_predictions(np.array(["a", "a", "b", "b"]), np.array(["a", "b", "z"]), train)
    assert p_return.tolist() == [1.0, 0.0, 0.5]  # an unseen segment gets the training average
    assert p_value[0] == pytest.approx((np.log1p(10) + np.log1p(30)) / 2)


def test_out_of_fold_scores_never_use_a_customers_own_outcome():
    # Two customers, each alone in its segment and fold: out of fold, nobody informs them.
    labels = np.array(["a", "b", "a", "b"])
    outcomes = Outcomes(returned=np.array([1, 0, 0, 1]), revenue=np.array([5.0, 0.0, 0.0, 5.0]))
    folds = np.array([0, 0, 1, 1])
    p_return, _ = out_of_fold(labels, outcomes, folds)
    # customer 0 (segment a, fold 0) is scored by customer 2 (a, fold 1), who did not return
    assert p_return.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert in_sample_scores(labels, outcomes)["auc"] == 0.5


def test_a_segmentation_that_separates_returners_scores_high_and_noise_scores_near_zero():
    rng = np.random.default_rng(1)
    n = 2000
    informative = rng.integers(0, 4, n)
    returned = (rng.random(n) < np.array([0.05, 0.3, 0.6, 0.95])[informative]).astype(int)
    revenue = returned * rng.lognormal(3 + informative, 0.5)
    outcomes = Outcomes(returned=returned, revenue=revenue)
    folds, weights = fold_ids(n, 5, 0), bootstrap_weights(n, 30, 0)
    good = score_labels(informative, outcomes, folds, weights)
    noise = score_labels(rng.integers(0, 4, n), outcomes, folds, weights)
    assert good.auc > 0.8 and good.eta_squared > 0.5
    assert abs(noise.validity) < 0.05
    assert 0 < good.standard_error < 0.05
    # paired standard errors of a difference are computed on the same resamples
    assert good.gap_standard_error(good) == 0.0


def test_segment_outcomes_give_rates_revenue_and_lift():
    outcomes = Outcomes(returned=np.array([1, 1, 0, 0]), revenue=np.array([30.0, 10.0, 0.0, 0.0]))
    table = segment_outcomes(["S1", "S1", "S2", "S2"], outcomes)
    expected = pd.DataFrame(
        {
            "segment": ["S1", "S2"],
            "customers": [2, 2],
            "return_rate": [1.0, 0.0],
            "mean_revenue": [20.0, 0.0],
            "median_revenue": [20.0, 0.0],
            "return_lift": [2.0, 0.0],
            "revenue_lift": [2.0, 0.0],
        }
    )
    pd.testing.assert_frame_equal(table, expected)


def test_one_outcome_class_is_degenerate_and_short_logs_have_no_backtest():
    assert "one outcome class" in Outcomes(returned=np.ones(5, int), revenue=np.ones(5)).degenerate()
    assert Outcomes(returned=np.array([0, 1]), revenue=np.array([0.0, 1.0])).degenerate() is None
    start, as_of = datetime.datetime(2011, 1, 1), datetime.datetime(2011, 6, 1)
    assert "needs 180" in history_reason(start, as_of, 90)
    assert history_reason(start, as_of, 60) is None


def test_backtest_customers_are_described_before_the_cut_with_what_they_did_after():
    rows = [
        # A: before and after the backtest date (2011-03-03 = 2011-04-02 - 30 days)
        {"customer_id": "A", "invoiced_at": "2011-02-01 10:00", "quantity": 2, "unit_price": 5.0},
        {"customer_id": "A", "invoiced_at": "2011-03-20 10:00", "quantity": 1, "unit_price": 7.0},
        {"customer_id": "A", "invoiced_at": "2011-03-25 10:00", "quantity": 1, "unit_price": 3.0},
        # B: only before
        {"customer_id": "B", "invoiced_at": "2011-02-10 10:00", "quantity": 1, "unit_price": 4.0},
        # C: only after (not a backtest customer)
        {"customer_id": "C", "invoiced_at": "2011-03-10 10:00", "quantity": 1, "unit_price": 4.0},
        # A again at the reference date: outside the window
        {"customer_id": "A", "invoiced_at": "2011-04-02 00:00", "quantity": 9, "unit_price": 9.0},
    ]
    lines = clean(make_transactions(rows)).lines
    products = ibis.memtable(pd.DataFrame({"product_id": ["p1"], "category": ["c01"]}))
    table = backtest_customers(lines, products, ["c01"], datetime.datetime(2011, 4, 2), 30)
    got = table.order_by("customer_id").execute()
    assert got.customer_id.tolist() == ["A", "B"]
    assert got.frequency.tolist() == [1, 1] and got.monetary.tolist() == [10.0, 4.0]
    assert got.next_orders.tolist() == [2, 0]
    assert got.next_revenue.tolist() == [10.0, 0.0]
    assert got.returned.tolist() == [1, 0]
    assert got.recency_days.tolist() == [29, 20]  # whole days from 10:00 to midnight of 2011-03-03


def test_a_log_too_short_for_the_horizon_has_no_backtest_and_says_why(tmp_path):
    from custseg.backtest import BacktestOptions
    from custseg.pipeline import run
    from custseg.record import Skipped
    from custseg.settings import Settings
    from custseg.simulate import simulate_to_files

    files = simulate_to_files(tmp_path / "shop.parquet", 400, seed=3)
    settings = Settings(backtest=BacktestOptions(horizon_days=200))
    result = run(files.log, tmp_path / "out", settings, until="segments")
    assert isinstance(result.record.backtest, Skipped)
    assert re.fullmatch(
        r"the log covers 37\d days before the reference date; a backtest with a horizon of 200 days needs 400",
        result.record.backtest.reason,
    )
    assert result.record.segments.chosen_by == "silhouette"
    assert "no backtest" in result.record.segments.rule
    assert {"validity", "auc"}.isdisjoint(result.record.segments.candidates[0])


def test_the_normalized_gini_and_decile_error_judge_the_ranking_and_the_value_bands():
    from custseg.backtest import decile_error, normalized_gini

    rng = np.random.default_rng(0)
    actual = rng.lognormal(3, 1, 2000) * (rng.random(2000) < 0.4)
    assert normalized_gini(actual, actual) == pytest.approx(1.0)
    assert normalized_gini(actual, -actual) < 0
    assert abs(normalized_gini(actual, rng.random(2000))) < 0.1
    noisy = actual * rng.lognormal(0, 0.3, 2000)
    assert 0.8 < normalized_gini(actual, noisy) < 1
    assert decile_error(actual, actual) == 0
    # Twice the actual in every band is 100% off in every band.
    assert decile_error(actual, 2 * actual) == pytest.approx(1.0)
