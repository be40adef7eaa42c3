from __future__ import annotations

import datetime
import itertools
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from custseg.backtest import bootstrap_weights, calibration, fold_ids, value_scores
from custseg.errors import ConfigError
from custseg.profile import segment_table_with_value
from custseg.value import TARGETS, IndexLink, ValueModel, ValueOptions, choose_model, period, value_columns

FEATURES = ["recency_days", "frequency", "monetary", "tenure_days"]


def backtest_shop(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Customers whose next quarter follows their past: frequent, recent, big spenders come back and spend more."""
    rng = np.random.default_rng(seed)
    frequency = rng.geometric(0.35, n)
    recency = rng.integers(0, 300, n)
    monetary = np.round(frequency * rng.lognormal(5, 0.6, n), 2)
    chance = 1 / (1 + np.exp(-(0.6 * np.log(frequency) - recency / 80 + 0.3)))
    returned = rng.random(n) < chance
    next_orders = np.where(returned, 1 + rng.poisson(0.3 * frequency), 0)
    next_revenue = np.where(returned, np.round(next_orders * monetary / frequency * rng.lognormal(0, 0.4, n), 2), 0.0)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "tenure_days": recency + rng.integers(0, 200, n),
            "mean_days_between_orders": np.where(frequency > 1, rng.uniform(10, 90, n), np.nan),
            "next_orders": next_orders,
            "next_revenue": next_revenue,
            "returned": returned.astype(int),
        }
    )


def test_value_columns_follow_the_horizon():
    assert value_columns(30) == {
        "p_order_again": "p_order_again_30d",
        "expected_orders": "expected_orders_30d",
        "expected_revenue": "expected_revenue_30d",
    }


@pytest.mark.parametrize("model", ["linear", "gradient_boosting"])
def test_the_value_model_ranks_customers_and_keeps_the_training_totals(model):
    shop = backtest_shop()
    fitted = ValueModel(model=model, features=FEATURES).fit(shop, shop[["next_orders", "next_revenue"]])
    predicted = fitted.predict(shop)
    assert list(predicted.columns) == list(TARGETS) and predicted.index.equals(shop.index)
    assert predicted.p_order_again.between(0, 1).all()
    assert (predicted.expected_orders >= 0).all() and (predicted.expected_revenue >= 0).all()
    # The link is learned from cross-fitted indexes, so the training totals come close, not exact.
    assert predicted.expected_revenue.sum() == pytest.approx(shop.next_revenue.sum(), rel=0.02)
    assert predicted.expected_orders.sum() == pytest.approx(shop.next_orders.sum(), rel=0.02)
    # Unseen customers of the same shop, ranked by what they then did.
    test = backtest_shop(seed=1)
    scores = value_scores(fitted.predict(test), test[["next_orders", "next_revenue"]])
    assert scores["auc"] > 0.7 and scores["spearman"] > spearmanr(test.monetary, test.next_revenue).statistic + 0.15
    assert 0.8 < scores["revenue_ratio"] < 1.25


def test_one_outcome_class_cannot_be_learned():
    shop = backtest_shop(200).assign(next_orders=0, next_revenue=0.0)
    with pytest.raises(ConfigError, match="0 of 200 customers ordered again: a value model needs at least 3 who did"):
        ValueModel(features=FEATURES).fit(shop, shop[["next_orders", "next_revenue"]])
    two = shop.assign(next_orders=[1, 1] + [0] * 198, next_revenue=[10.0, 20.0] + [0.0] * 198)
    with pytest.raises(ConfigError, match="2 of 200 customers ordered again"):
        ValueModel(features=FEATURES).fit(two, two[["next_orders", "next_revenue"]])
    three = shop.assign(next_orders=[1, 1, 2] + [0] * 197, next_revenue=[10.0, 20.0, 5.0] + [0.0] * 197)
    predicted = ValueModel(features=FEATURES).fit(three, three[["next_orders", "next_revenue"]]).predict(three)
    assert predicted.expected_revenue.notna().all()


def test_value_scores_of_perfect_and_of_constant_predictions():
    actual = pd.DataFrame({"next_orders": [0, 1, 2, 3], "next_revenue": [0.0, 10.0, 100.0, 1000.0]})
    perfect = pd.DataFrame({"p_order_again": [0.1, 0.9, 0.9, 0.9], "expected_revenue": actual.next_revenue})
    scores = value_scores(perfect, actual)
    assert scores["auc"] == 1.0 and scores["spearman"] == 1.0 and scores["r_squared_log"] == 1.0
    assert scores["revenue_ratio"] == 1.0 and scores["predicted_revenue"] == 1110.0
    constant = pd.DataFrame({"expected_revenue": [5.0] * 4, "expected_orders": [1.5] * 4})
    scores = value_scores(constant, actual)
    assert scores["spearman"] is None and scores["r_squared_log"] is None and scores["auc"] is None
    assert scores["orders_ratio"] == 1.0


def test_calibration_by_decile_and_by_segment():
    actual = pd.DataFrame({"next_orders": [0, 1] * 10, "next_revenue": [0.0, 20.0] * 10})
    predicted = pd.DataFrame({"expected_revenue": np.arange(20, dtype=float)})
    deciles = calibration(predicted, actual)
    assert deciles.group.tolist() == list(range(1, 11)) and (deciles.customers == 2).all()
    assert deciles.predicted_mean.tolist() == [0.5 + 2 * i for i in range(10)]
    assert (deciles.actual_mean == 10.0).all() and (deciles.ordered_again == 0.5).all()
    by_segment = calibration(predicted, actual, ["a"] * 5 + ["b"] * 15)
    assert by_segment.group.tolist() == ["a", "b"] and by_segment.customers.tolist() == [5, 15]
    assert by_segment.predicted_total.sum() == predicted.expected_revenue.sum()


def test_the_link_keeps_the_total_and_ranks_the_accounts_above_the_training_range():
    index = np.linspace(0, 5, 500)[:, None]
    amounts = np.exp(index[:, 0])
    link = IndexLink().fit(index, amounts)
    assert link.predict(index).sum() == pytest.approx(amounts.sum(), rel=1e-9)
    assert spearmanr(link.predict(index), amounts).statistic > 0.99
    # Above the range it keeps rising as the amounts did (e to the index), not flat at the end value.
    top, higher, highest = link.predict(np.array([[5.0], [5.5], [6.0]]))
    assert top < higher < highest
    assert link.end_slope_ == pytest.approx(1.0, abs=0.05)
    assert highest / top == pytest.approx(np.e, rel=0.05)
    # Below the range, flat: the least a customer can be expected to spend is the least seen.
    assert link.predict(np.array([[-2.0]]))[0] == link.predict(np.array([[0.0]]))[0]


def test_a_link_that_falls_at_its_end_stays_level_above_it():
    index = np.linspace(0, 5, 500)[:, None]
    amounts = np.exp(-((index[:, 0] - 2.5) ** 2))
    link = IndexLink().fit(index, amounts)
    assert link.end_slope_ == 0.0
    assert link.predict(np.array([[9.0]]))[0] == link.predict(np.array([[5.0]]))[0]


def test_the_most_valid_candidate_wins_and_every_candidate_is_reported():
    shop = backtest_shop(1200)
    folds, weights = fold_ids(len(shop), 5, 0), bootstrap_weights(len(shop), 20, 0)
    options = ValueOptions(features=FEATURES)
    model, candidates, chosen = choose_model(shop, options, folds, weights, seed=0)
    assert [c.model for c in candidates] == ["linear", "gradient_boosting"]
    assert chosen.scores.validity == max(c.scores.validity for c in candidates)
    assert model.model == chosen.model and len(chosen.predicted) == len(shop)
    row = chosen.row()
    assert {"model", "auc", "eta_squared", "validity", "validity_se", "spearman", "r_squared_log"} <= set(row)


def test_unknown_value_models_are_refused():
    with pytest.raises(ConfigError, match=r"\[value\] models=\['forest'\] must name one or more of linear"):
        ValueOptions(models=["forest"])


def test_segment_value_goes_beside_each_segment_with_its_backtest_check():
    table = pd.DataFrame(
        {
            "kind": ["rfm", "rfm", "learned"],
            "segment": ["Champions", "Lost", "S1"],
            "name": ["Champions", "Lost", "Big spenders"],
            "backtest_customers": [np.nan, np.nan, 7.0],
            "backtest_return_rate": [np.nan, np.nan, 0.5],
            "backtest_mean_revenue": [np.nan, np.nan, 99.0],
            "description": ["d"] * 3,
            "action": ["a"] * 3,
        }
    )
    columns = value_columns(90)
    expected = {
        "rfm": pd.DataFrame(
            {
                "segment": ["Champions", "Lost"],
                "p_order_again_90d": [0.9, 0.2],
                "expected_orders_90d": [3.0, 0.3],
                "expected_revenue_90d": [500.0, 10.0],
                "expected_revenue_90d_total": [5000.0, 300.0],
            }
        )
    }
    calibrated = {
        "rfm": pd.DataFrame(
            {
                "group": ["Champions"],
                "customers": [4],
                "predicted_mean": [450.0],
                "actual_mean": [480.0],
                "ordered_again": [0.75],
            }
        ),
        "learned": pd.DataFrame(
            {"group": ["S1"], "customers": [7], "predicted_mean": [95.0], "actual_mean": [99.0], "ordered_again": [0.5]}
        ),
    }
    result = segment_table_with_value(table, expected, calibrated, columns)
    assert list(result.columns[-2:]) == ["description", "action"]
    assert result.expected_revenue_90d_total.tolist()[:2] == [5000.0, 300.0] and np.isnan(
        result.expected_revenue_90d[2]
    )
    assert result.backtest_predicted_revenue.tolist()[0] == 450.0 and np.isnan(result.backtest_predicted_revenue[1])
    assert result.backtest_mean_revenue.tolist()[::2] == [480.0, 99.0]
    assert result.backtest_customers.tolist()[::2] == [4.0, 7.0] and result.backtest_predicted_revenue[2] == 95.0
    empty = segment_table_with_value(table, None, None, columns)
    assert empty[list(columns.values())].isna().all().all()


@pytest.mark.parametrize("horizon", [30, 180, 365])
def test_a_horizon_the_shop_asks_for_is_forecast_over_its_dated_days_or_says_what_history_is_missing(tmp_path, horizon):
    from rich.console import Console

    from custseg.backtest import BacktestOptions
    from custseg.pipeline import run
    from custseg.record import Skipped
    from custseg.report.terminal import _print_value
    from custseg.settings import Settings
    from custseg.simulate import simulate_to_files

    files = simulate_to_files(tmp_path / "shop.parquet", 400, seed=3)
    settings = Settings(backtest=BacktestOptions(horizon_days=horizon))
    record = run(files.log, tmp_path / "out", settings, until="value").record
    value, as_of = record.value, record.customers.as_of
    if horizon == 365:
        # The simulated log covers about a year: a backtest of a year needs two.
        assert isinstance(value, Skipped)
        assert re.search(r"a backtest with a horizon of 365 days needs 730", value.reason)
        return
    assert value.window == (as_of, as_of + datetime.timedelta(days=horizon))
    assert value.columns["expected_revenue"] == f"expected_revenue_{horizon}d"
    last = (as_of + datetime.timedelta(days=horizon - 1)).date()
    assert period(value.window) == f"the {horizon} days from {as_of.date()} to {last}"
    console = Console(width=200, record=True)
    _print_value(console, value, "EUR")
    printed = " ".join(console.export_text().split())
    assert f"customers in the {horizon} days from {as_of.date()} to {last}." in printed
    assert re.search(r"Expected value \([a-z ]+\): €[0-9,]+ of revenue", printed)
    # A log of one year does not reach the same weeks a year earlier: the run says what that means.
    assert "The forecast is not corrected by the season a year earlier: the log does not reach" in printed
    # The forward checks need a horizon more of history than the backtest: at 180 days this log has not.
    if horizon == 180:
        assert isinstance(value.forward, Skipped) and "a forward check needs 540" in value.forward.reason
        assert isinstance(value.expected.revenue_interval, Skipped)
    else:
        cuts = [check.scored_as_of for check in value.forward.cuts]
        assert cuts[0] == as_of - datetime.timedelta(days=horizon)
        assert all(later - earlier == datetime.timedelta(days=30) for later, earlier in itertools.pairwise(cuts))
        assert all(c.trained_as_of == c.scored_as_of - datetime.timedelta(days=horizon) for c in value.forward.cuts)


def test_the_forward_cuts_are_every_cut_the_log_allows():
    from custseg.forward import cut_dates

    first, as_of = datetime.datetime(2010, 12, 1), datetime.datetime(2011, 12, 10)
    cuts = cut_dates(first, as_of, 90, step_days=30, most=6)
    # The newest is T - H; each needs H days of history before C - H, so none before 2011-05-31.
    assert [c.date().isoformat() for c in cuts] == ["2011-09-11", "2011-08-12", "2011-07-13", "2011-06-13"]
    assert cut_dates(first, as_of, 90, step_days=30, most=2) == cuts[:2]
    assert cut_dates(first, as_of, 180, step_days=30, most=6) == []


def test_an_interval_from_past_checks_holds_about_its_level_of_new_ones():
    """Checks whose log errors are independent draws: the 80% interval from six holds the seventh about 80% of
    the time, and the leave-one-out coverage measures the same."""
    from custseg.forward import coverage, ratio_interval

    rng = np.random.default_rng(0)
    held, left_out_held, left_out_tried = 0, 0, 0
    trials = 2000
    for _ in range(trials):
        past = np.exp(rng.normal(0.1, 0.3, 7))
        low, high = ratio_interval(past[:6])
        held += low <= past[6] <= high
        h, t = coverage(past[:6])
        left_out_held, left_out_tried = left_out_held + h, left_out_tried + t
    assert 0.77 <= held / trials <= 0.83
    assert 0.77 <= left_out_held / left_out_tried <= 0.83
    assert ratio_interval(np.array([1.0, 1.2])) is None
    assert coverage(np.array([1.0, 1.2, 0.9])) == (0, 0)


@pytest.mark.parametrize(("horizon", "as_of"), [(90, "2012-12-10"), (180, "2013-01-15")])
def test_a_forecast_from_after_the_peak_is_corrected_by_the_season_a_year_earlier(tmp_path, horizon, as_of):
    """A shop of three years with a November peak and customers who leave: the model learns on the run-up to
    the peak and, uncorrected, expects over twice what the quiet months after it bring."""
    import pyarrow.parquet as pq

    from custseg.backtest import BacktestOptions
    from custseg.pipeline import run
    from custseg.settings import Settings
    from custseg.simulate.seasonal import seasonal_log

    log = seasonal_log(3000, 3, seed=1)
    pq.write_table(log, tmp_path / "shop.parquet")
    settings = Settings(backtest=BacktestOptions(horizon_days=horizon), as_of=datetime.date.fromisoformat(as_of))
    value = run(tmp_path / "shop.parquet", tmp_path / "out", settings, until="value").record.value
    lines = log.to_pandas()
    start = pd.Timestamp(as_of)
    known = lines[lines.InvoiceDate < start].CustomerID.unique()
    window = lines[(lines.InvoiceDate >= start) & (lines.InvoiceDate < start + pd.Timedelta(days=horizon))]
    window = window[window.CustomerID.isin(known)]
    actual = float((window.Quantity * window.UnitPrice).sum())
    season, expected = value.season, value.expected
    assert season.applied and season.as_of == datetime.datetime.fromisoformat(as_of) - datetime.timedelta(days=365)
    assert season.forward_error_corrected < season.forward_error
    assert abs(expected.expected_revenue / actual - 1) <= 0.15
    assert expected.expected_revenue / season.factors["expected_revenue"] / actual > 2
    # The intervals are of the corrected totals, of the forward checks that reach a year before their cut.
    assert value.forward.seasonal
    reaching = [check for check in value.forward.cuts if check.season_factor is not None]
    if len(reaching) >= 3:
        assert expected.revenue_interval.low <= actual <= expected.revenue_interval.high
    else:
        assert f"{len(reaching)} forward checks reach a year before their cut" in expected.revenue_interval.reason


def test_the_season_a_year_earlier_scales_the_forecast_and_no_chance_passes_one():
    from custseg.forward import season_factors

    shop = backtest_shop()
    fitted = ValueModel(features=FEATURES).fit(shop, shop[["next_orders", "next_revenue"]])
    before = fitted.predict(shop)
    # A year earlier the same customers did half as much, and all of them ordered.
    earlier = shop.assign(next_orders=np.maximum(shop.next_orders, 1), next_revenue=shop.next_revenue / 2)
    factors = season_factors(before, earlier)
    assert factors["expected_revenue"] == pytest.approx(
        (earlier.next_revenue.sum() + 1) / (before.expected_revenue.sum() + 1)
    )
    after = fitted.with_season(factors).predict(shop)
    assert after.expected_revenue.to_numpy() == pytest.approx(before.expected_revenue * factors["expected_revenue"])
    assert after.expected_orders.to_numpy() == pytest.approx(before.expected_orders * factors["expected_orders"])
    assert factors["p_order_again"] > 1 and after.p_order_again.max() == 1.0
    assert (after.p_order_again >= before.p_order_again).all()
