"""Early prediction: what a new customer becomes, from their first orders."""

from __future__ import annotations

import datetime
import json

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from conftest import make_transactions
from custseg.clean import clean
from custseg.cli import app
from custseg.early import BOOSTED_TARGETS, EARLY_COLUMNS, EarlyClassifier, EarlyOptions, evaluate_early, holdout_split
from custseg.features import customer_features
from custseg.first_orders import early_features, horizon_features
from custseg.lookup import LookupClassifier
from custseg.pipeline import assign, run
from custseg.record import EarlyFit, Skipped

EARLY_ROWS = [
    # A: three orders; the first is partly returned later, which the early view must not know
    {"customer_id": "A", "invoice_id": "a1", "invoiced_at": "2011-01-01 10:00", "quantity": 4, "unit_price": 5.0},
    {
        "customer_id": "A",
        "invoice_id": "a2",
        "invoiced_at": "2011-01-03 09:00",
        "quantity": 1,
        "unit_price": 8.0,
        "product_id": "p2",
    },
    {"customer_id": "A", "invoice_id": "CA", "invoiced_at": "2011-01-04 09:00", "quantity": -2, "unit_price": 5.0},
    {"customer_id": "A", "invoice_id": "a3", "invoiced_at": "2011-05-01 09:00", "quantity": 1, "unit_price": 30.0},
    # B: one order only
    {"customer_id": "B", "invoice_id": "b1", "invoiced_at": "2011-02-01 10:00", "quantity": 1, "unit_price": 3.0},
    # C: joins too late for a 90-day horizon before 2011-06-01
    {"customer_id": "C", "invoice_id": "c1", "invoiced_at": "2011-04-01 10:00", "quantity": 1, "unit_price": 3.0},
    {"customer_id": "C", "invoice_id": "c2", "invoiced_at": "2011-04-02 10:00", "quantity": 1, "unit_price": 3.0},
]


@pytest.fixture
def early_lines():
    lines = clean(make_transactions(EARLY_ROWS)).lines
    products = ibis.memtable(pd.DataFrame({"product_id": ["p1", "p2"], "category": ["c01", "c01"]}))
    return lines, products


def test_early_features_see_only_the_first_orders_as_placed(early_lines):
    lines, products = early_lines
    two = early_features(lines, products, ["c01"], 2).execute().set_index("customer_id")
    assert set(two.index) == {"A", "C"}  # B has one order only
    a = two.loc["A"]
    # 4 x 5 + 1 x 8 as bought: the return of two units a day later is not known yet
    assert a.monetary == 28.0 and a.frequency == 2 and a.recency_days == 0 and a.tenure_days == 1
    assert a.returned_share == 0.0
    assert a.last_order_at == pd.Timestamp("2011-01-03 09:00")
    one = early_features(lines, products, ["c01"], 1).execute().set_index("customer_id")
    assert set(one.index) == {"A", "B", "C"} and one.loc["A"].monetary == 20.0


def test_several_numbers_of_first_orders_are_described_in_one_query_as_one_by_one(early_lines):
    lines, products = early_lines
    wanted = ibis.memtable(
        pd.DataFrame({"customer_id": ["A", "A", "A", "B", "B", "C"], "n_orders": [1, 2, 3, 1, 2, 2]})
    )
    together = early_features(lines, products, ["c01"], wanted).execute()
    # B has no second order, so (B, 2) is left out, as one number at a time leaves B out.
    pairs = sorted(zip(together.customer_id, together.n_orders, strict=True))
    assert pairs == [("A", 1), ("A", 2), ("A", 3), ("B", 1), ("C", 2)]
    for n_orders in (1, 2, 3):
        alone = early_features(lines, products, ["c01"], n_orders).execute()
        alone = alone[alone.customer_id.isin(together.customer_id[together.n_orders == n_orders])]
        pd.testing.assert_frame_equal(
            together[together.n_orders == n_orders].sort_values("customer_id").reset_index(drop=True),
            alone.sort_values("customer_id").reset_index(drop=True),
        )


def test_horizon_features_stop_each_customer_at_first_order_plus_horizon(early_lines):
    lines, products = early_lines
    horizon = horizon_features(lines, products, ["c01"], 90, datetime.datetime(2011, 6, 1)).execute()
    horizon = horizon.set_index("customer_id")
    assert set(horizon.index) == {"A", "B"}  # C joined less than 90 days before the end
    a = horizon.loc["A"]
    # the order of May 1st is after Jan 1st + 90 days; the return is netted (it is the truth at 90 days)
    assert a.frequency == 2 and a.monetary == 2 * 5.0 + 8.0
    assert a.tenure_days == 90 and a.recency_days == 88  # Jan 3 09:00 to Apr 1 10:00
    assert horizon.loc["B"].joined_at == pd.Timestamp("2011-02-01 10:00")


def test_customer_features_accept_one_reference_date_per_customer(early_lines):
    lines, _ = early_lines
    cutoffs = ibis.memtable(
        pd.DataFrame({"customer_id": ["A", "B"], "as_of": pd.to_datetime(["2011-01-02", "2011-03-01"])})
    )
    features = customer_features(lines, cutoffs).execute().set_index("customer_id")
    assert set(features.index) == {"A", "B"}
    assert features.loc["A"].frequency == 1 and features.loc["A"].tenure_days == 0
    assert features.loc["B"].recency_days == 27


def test_holdout_is_the_latest_joining_share():
    targets = pd.DataFrame(
        {"customer_id": list("abcdefgh"), "joined_at": pd.date_range("2011-01-01", periods=8, freq="7D")[::-1]}
    )
    test = holdout_split(targets, 0.25)
    assert set(targets.customer_id[test]) == {"a", "b"}
    assert targets.joined_at[test].min() > targets.joined_at[~test].max()


def test_lookup_classifier_gives_training_frequencies_and_the_prior_for_unseen_values():
    inputs = pd.DataFrame({"dominant_category": ["x", "x", "x", "y"]})
    model = LookupClassifier("dominant_category", smoothing=0.0).fit(inputs, ["A", "A", "B", "B"])
    probabilities = model.predict_proba(pd.DataFrame({"dominant_category": ["x", "y", "z"]}))
    assert model.classes_.tolist() == ["A", "B"]
    assert probabilities.tolist() == [[2 / 3, 1 / 3], [0.0, 1.0], [0.5, 0.5]]


def test_lookup_classifier_leans_to_the_class_the_first_orders_show():
    # Three customers whose first orders showed "A": one stayed, two became "B". "C" was never a first order.
    inputs = pd.DataFrame({"dominant_category": ["A", "A", "A", "B", "C"]})
    targets = ["A", "B", "B", "B", "C"]
    leaning = LookupClassifier("dominant_category", smoothing=2.0).fit(inputs.iloc[:4], targets[:4])
    assert leaning.predict(pd.DataFrame({"dominant_category": ["A", "B", "Z"]})).tolist() == ["A", "B", "B"]
    weak = LookupClassifier("dominant_category", smoothing=0.5).fit(inputs.iloc[:4], targets[:4])
    assert weak.predict(pd.DataFrame({"dominant_category": ["A"]})).tolist() == ["B"]
    # A class never seen as a first order still predicts itself.
    full = LookupClassifier("dominant_category", smoothing=1.0).fit(inputs.iloc[:4], ["A", "B", "B", "C"])
    assert full.predict(pd.DataFrame({"dominant_category": ["C"]})).tolist() == ["C"]


def test_the_model_is_chosen_on_a_sample_and_refitted_on_every_customer():
    # 600 customers, three of a rare kind that the search's 100 do not include: the refit on all meets them.
    from custseg.sampling import sample_positions

    rng = np.random.default_rng(0)
    kinds = np.array(["common"] * 400 + ["other"] * 200, dtype=object)
    unsearched = np.setdiff1d(np.arange(600), sample_positions(600, 100, 0))
    kinds[unsearched[-3:]] = "rare"
    inputs = pd.DataFrame(
        {
            # The first orders' category says nothing here: a learned model must beat the lookup.
            "orders": rng.normal(size=600) + 3 * (kinds == "other") + 8 * (kinds == "rare"),
            "dominant_category": "c01",
        }
    )
    model = EarlyClassifier(as_is_column="dominant_category", search_customers=100).fit(inputs, kinds)
    assert model.classes_.tolist() == ["common", "other", "rare"]
    assert model.predict_proba(inputs).shape == (600, 3)
    assert model.predict(inputs[kinds == "rare"]).tolist() == ["rare"] * 3
    chosen_among = {c["model"] for c in model.candidates_}
    assert chosen_among == {"logistic_regression", "gradient_boosting", "first_orders_lookup"}


def test_a_class_weighted_models_probabilities_are_chances_and_its_pick_is_its_own():
    # One customer in twenty ends "rare"; the balanced weights treat both kinds alike.
    rng = np.random.default_rng(1)
    kinds = np.where(rng.random(2000) < 0.05, "rare", "common").astype(object)
    inputs = pd.DataFrame({"orders": rng.normal(size=2000) + 1.0 * (kinds == "rare"), "dominant_category": "c01"})
    model = EarlyClassifier(boosting=False).fit(inputs, kinds)
    assert model.chosen_ == "logistic_regression"
    rare = model.classes_.tolist().index("rare")
    weighted_alike = model.estimator_.predict_proba(inputs)[:, rare].mean()
    chances = model.predict_proba(inputs)
    assert weighted_alike > 0.3 and chances[:, rare].mean() == pytest.approx((kinds == "rare").mean(), abs=0.02)
    assert np.allclose(chances.sum(axis=1), 1.0)
    # Its pick is the one measured by macro-F1: the balanced model's, which picks "rare" more often.
    assert (model.predict(inputs) == model.estimator_.predict(inputs)).all()
    assert (model.predict(inputs) == "rare").mean() > (model.classes_[chances.argmax(axis=1)] == "rare").mean()


def test_early_prediction_is_measured_on_customers_it_never_saw(trained):
    _, result = trained
    early = result.record.early
    assert early.horizon_days == 90 and early.eligible_customers > 300
    measured = [row for row in early.results if isinstance(row.fit, EarlyFit)]
    assert {(row.target, row.n_orders) for row in measured} >= {("segment", 1), ("category", 1)}
    for row in measured:
        fit = row.fit
        matrix = np.array(fit.confusion_matrix.rows_true_columns_predicted)
        assert matrix.sum() == row.test_customers > 0
        assert fit.chosen in {c["model"] for c in fit.candidates}
        # Gradient boosting is tried on the segment only (`BOOSTED_TARGETS`).
        boosting = {"gradient_boosting"} if row.target in BOOSTED_TARGETS else set()
        assert {c["model"] for c in fit.candidates} == {"logistic_regression", "first_orders_lookup"} | boosting
        for scores in (fit.model, fit.majority, fit.first_orders_as_is):
            assert 0 <= scores.accuracy <= 1 and 0 <= scores.macro_f1 <= 1
        # The model's hold-out scores are those of its stored confusion matrix (truth in rows).
        labels = fit.confusion_matrix.labels
        truth = np.repeat(np.repeat(labels, len(labels)), matrix.ravel())
        predicted = np.repeat(np.tile(labels, len(labels)), matrix.ravel())
        assert fit.model.accuracy == pytest.approx(np.trace(matrix) / matrix.sum(), abs=5e-5)
        recomputed = f1_score(truth, predicted, average="macro", zero_division=0)
        assert fit.model.macro_f1 == pytest.approx(recomputed, abs=5e-5)
    with duckdb.connect(str(result.out_dir / "custseg.duckdb"), read_only=True) as con:
        joined = con.sql(
            "select min(first_order_at) as first, count(*) as n from customers"
            f" where first_order_at >= '{early.test_joined_from}'"
        ).df()
    assert joined.n.iloc[0] > 0


def test_assign_predicts_new_customers_from_their_first_orders(trained, tmp_path):
    files, result = trained
    assign(files.log, result.out_dir, tmp_path / "assigned.parquet")
    assigned = pd.read_parquet(tmp_path / "assigned.parquet")
    new = assigned.tenure_days < 90
    assert new.any() and (~new).any()
    assert assigned.loc[new, "early_orders"].between(1, 3).all()
    assert assigned.loc[new, "predicted_category"].notna().all()
    assert assigned.loc[new, "predicted_category_probability"].between(0, 1).all()
    assert assigned.loc[new, "predicted_segment_name"].notna().all()
    assert assigned.loc[~new, list(EARLY_COLUMNS)].isna().all().all()
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    merged = customers.merge(assigned, on="customer_id", suffixes=("_run", "_assign"))
    for column in ("predicted_segment", "predicted_category"):
        assert merged[f"{column}_run"].equals(merged[f"{column}_assign"]), column


def test_assign_command_reports_how_many_customers_got_an_early_prediction(trained, tmp_path):
    files, result = trained
    out = tmp_path / "assigned.csv"
    outcome = CliRunner().invoke(app, ["assign", str(files.log), "--model", str(result.out_dir), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    assigned = pd.read_csv(out)
    assert summary["customers"] == len(assigned)
    assert summary["with_early_prediction"] == assigned.early_orders.notna().sum() > 0


def test_a_hold_out_with_one_class_says_so_instead_of_scoring():
    n = 80
    joined = pd.date_range("2011-01-01", periods=n, freq="D")
    early = pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(n)],
            "first_order_at": joined,
            "last_order_at": joined,
            "monetary": np.linspace(10, 100, n),
            "avg_order_value": np.linspace(10, 100, n),
            "lines": 3,
            "distinct_products": 3,
            "tenure_days": 0,
            "mean_days_between_orders": np.nan,
            "breadth": 0.5,
            "share_c01": 1.0,
            "main_country": "United Kingdom",
            "dominant_category": "c01",
        }
    )
    # the earliest customers are of two segments, the latest (the test set) all of S1
    segment = np.where((np.arange(n) % 2 == 0) | (np.arange(n) >= 60), "S1", "S2")
    early["segment_now"] = segment
    targets = pd.DataFrame(
        {"customer_id": early.customer_id, "joined_at": joined, "segment": segment, "category": None}
    )
    holdout = evaluate_early({1: early}, targets, ["c01"], options=EarlyOptions(max_orders=1))
    row = holdout.results[0]
    assert row.test_customers == 20
    assert row.fit.degenerate.startswith("all 20 test customers are in one class (S1)")


def test_without_a_customer_old_enough_the_early_prediction_is_skipped_with_a_reason(trained, tmp_path):
    from custseg.settings import Settings

    files, _ = trained
    result = run(files.log, tmp_path / "young", Settings(as_of=datetime.date(2011, 2, 15)))
    assert isinstance(result.record.early, Skipped) and isinstance(result.record.backtest, Skipped)
    assert result.record.early.reason.startswith("no customer's first order is at least 90 days before")
    assert result.record.backtest.reason.startswith("the log covers")
    customers = pd.read_parquet(tmp_path / "young" / "customers.parquet")
    assert customers.early_orders.isna().all() and customers.segment.notna().all()
