from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from custseg.cluster import ClusterOptions, Segmentation, choose
from custseg.errors import ConfigError
from custseg.pipeline import run
from custseg.simulate import simulate_to_files


def blobs(seed=0, sizes=(120, 90, 60)):
    """Customers in three obvious groups of recency, frequency and spend."""
    rng = np.random.default_rng(seed)
    centres = [(10, 20, 5000), (60, 4, 800), (300, 1, 100)]
    frames = []
    for (recency, frequency, monetary), size in zip(centres, sizes, strict=True):
        frames.append(
            pd.DataFrame(
                {
                    "recency_days": rng.normal(recency, recency * 0.03, size).clip(0),
                    "frequency": np.full(size, float(frequency)),
                    "monetary": rng.normal(monetary, monetary * 0.03, size).clip(1),
                    "tenure_days": recency + 15.0 * frequency + rng.normal(0, 3, size).clip(0),
                }
            )
        )
    data = pd.concat(frames, ignore_index=True)
    data["customer_id"] = [f"c{i}" for i in range(len(data))]
    data["recency_own_gaps"] = data.recency_days * data.frequency / data.tenure_days.clip(lower=1)
    return data, np.repeat([0, 1, 2], sizes)


FAST = dict(stability_resamples=5, min_segments=3, map_customers=0)


def test_obvious_groups_are_found_and_ordered_by_value():
    data, truth = blobs()
    model = Segmentation(options=ClusterOptions(**FAST)).fit(data)
    assert model.n_segments_ == 3
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    # S1 (label 0) is the group with the highest mean spend
    assert data.monetary[model.labels_ == 0].mean() > data.monetary[model.labels_ == 2].mean()
    assert (model.predict(data) == model.labels_).all()
    assert "no backtest" in model.rule_


def test_same_data_and_seed_give_identical_labels_and_table():
    data, _ = blobs()
    options = ClusterOptions(stability_resamples=5, min_segments=3)
    first = Segmentation(options=options, random_state=3).fit(data)
    second = Segmentation(options=options, random_state=3).fit(data)
    assert first.labels_.tolist() == second.labels_.tolist()
    pd.testing.assert_frame_equal(first.candidates_, second.candidates_)


def candidate_table(**columns):
    base = {
        "space": "features",
        "model": "kmeans",
        "n_segments": [4, 5, 6, 7],
        "validity": [0.300, 0.340, 0.345, 0.350],
        "gap_se": [0.004, 0.004, 0.004, 0.0],
        "silhouette": [0.60, 0.56, 0.50, 0.58],
        "stability": [0.99, 0.95, 0.99, 0.95],
        "smallest_share": [0.2, 0.1, 0.1, 0.1],
    }
    return pd.DataFrame({**base, **columns})


def test_validity_rule_takes_the_fewest_segments_within_the_margin_of_the_best():
    chosen, reason = choose(candidate_table(), ClusterOptions(), by_validity=True)
    # best 0.350; the margin is 2% of it (0.007): 6 (0.345) and 5 (0.340 is 0.010 away, out) -> 6
    assert chosen.loc[chosen.chosen, "n_segments"].item() == 6
    assert chosen.within_margin.tolist() == [False, False, True, True]
    assert "fewer segments" in reason
    # a wide standard error of the difference widens the margin: 5 is then as good
    wide, _ = choose(candidate_table(gap_se=[0.004, 0.02, 0.004, 0.0]), ClusterOptions(), by_validity=True)
    assert wide.loc[wide.chosen, "n_segments"].item() == 5
    # an unstable or tiny-segment candidate cannot win, however valid
    shaky, _ = choose(candidate_table(stability=[0.99, 0.95, 0.7, 0.6]), ClusterOptions(), by_validity=True)
    assert shaky.loc[shaky.chosen, "n_segments"].item() == 5
    assert shaky.eligible.tolist() == [True, True, False, False]


def test_segment_range_and_silhouette_rule_without_a_backtest():
    table = candidate_table(n_segments=[3, 4, 5, 6], stability=[0.99, 0.95, 0.99, 0.70])
    chosen, _ = choose(table, ClusterOptions(min_segments=3), by_validity=False)
    # 6 is unstable, 5 is too far below the best silhouette: 4 is the most segments that qualify
    assert chosen.loc[chosen.chosen, "n_segments"].item() == 4
    assert chosen.eligible.tolist() == [True, True, True, False]
    # the default range starts at 4 segments: 3 is not eligible
    default, _ = choose(table, ClusterOptions(), by_validity=False)
    assert default.eligible.tolist() == [False, True, True, False]
    tiny, reason = choose(table.assign(smallest_share=0.001), ClusterOptions(min_segments=3), by_validity=False)
    assert tiny.loc[tiny.chosen, "n_segments"].item() == 3 and "most stable" in reason


def backtest_shop(seed=0, n=1200):
    """Customers as of T - H whose return depends on recency, and the same customers 90 days on."""
    rng = np.random.default_rng(seed)
    recency = rng.uniform(1, 300, n)
    frequency = rng.integers(1, 15, n).astype(float)
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": frequency * rng.lognormal(4, 0.5, n),
            "tenure_days": recency + rng.uniform(0, 200, n),
            "mean_days_between_orders": np.where(frequency > 1, 30.0, np.nan),
        }
    )
    customers["recency_own_gaps"] = recency * frequency / customers.tenure_days
    p = 1 / (1 + np.exp((recency - 100) / 30)) * np.minimum(1, frequency / 5)
    returned = (rng.random(n) < p).astype(int)
    backtest = customers.assign(returned=returned, next_orders=returned, next_revenue=returned * 100.0 * frequency)
    return customers, backtest


def test_with_a_backtest_every_candidate_is_scored_and_the_winner_predicts():
    customers, backtest = backtest_shop()
    options = ClusterOptions(models=["rules", "kmeans", "tiers"], stability_resamples=4, map_customers=0)
    model = Segmentation(options=options).fit(customers, backtest=backtest)
    table = model.candidates_
    assert {"auc", "eta_squared", "validity", "validity_se", "gap_se"} <= set(table.columns)
    assert set(zip(table.space, table.model, strict=True)) == {
        ("rules", "rules"),
        ("rules_next", "rules"),
        ("features", "kmeans"),
        ("predicted", "tiers"),
    }
    assert table.chosen.sum() == 1 and table[table.chosen].eligible.all()
    chosen = model.chosen_
    assert 4 <= chosen["n_segments"] <= 10 and chosen["within_margin"]
    assert chosen["auc"] > 0.75  # return depends on recency and frequency; the segments see it
    assert "backtest" in model.rule_
    assert (model.predict(customers) == model.labels_).all()
    assert model.labels_.max() + 1 == model.n_segments_


def test_a_forced_model_and_number_is_used():
    data, _ = blobs()
    model = Segmentation(options=ClusterOptions(model="gmm", n_segments=4, **FAST)).fit(data)
    assert model.n_segments_ == 4
    assert set(model.candidates_.model) == {"gmm"}


def test_hdbscan_noise_joins_the_nearest_segment_and_is_flagged():
    data, _ = blobs()
    outlier = pd.DataFrame(
        {
            "customer_id": ["far"],
            "recency_days": [150.0],
            "frequency": [60.0],
            "monetary": [90000.0],
            "tenure_days": [300.0],
        }
    )
    data = pd.concat([data, outlier], ignore_index=True)
    model = Segmentation(options=ClusterOptions(model="hdbscan", **FAST)).fit(data)
    assert model.noise_[-1]
    assert model.labels_[-1] >= 0 and len(model.labels_) == len(data)


def test_too_few_customers_and_unknown_models_are_refused():
    data, _ = blobs(sizes=(3, 3, 3))
    with pytest.raises(ConfigError, match="too few to learn segments"):
        Segmentation().fit(data)
    data, _ = blobs()
    with pytest.raises(ConfigError, match="unknown model or space: dbscan"):
        Segmentation(options=ClusterOptions(models=["dbscan"])).fit(data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_segments_of_a_simulated_shop_are_recovered_and_named(tmp_path, seed):
    files = simulate_to_files(tmp_path / "shop.parquet", 3000, seed=seed)
    result = run(files.log, tmp_path / "out", until="segments")
    with duckdb.connect(str(tmp_path / "out" / "custseg.duckdb"), read_only=True) as con:
        customers = con.sql("select customer_id, segment, segment_name from customers").df()
    truth = pd.read_parquet(files.customers)
    truth["customer_id"] = truth.customer_id.astype(str)
    merged = customers.merge(truth, on="customer_id")
    assert len(merged) == len(customers)
    assert result.record.segments.chosen_by == "backtest"
    assert result.record.segments.chosen["model"] == "rules"
    # Each learned segment is one planted segment; the backtest may split one of them once more
    # (the one-off buyers whose second order is still due, seeds 1 and 4), never merge two.
    purity = pd.crosstab(merged.segment, merged.planted_segment, normalize="index").max(axis=1)
    assert (purity >= 0.8).all(), purity
    agreement = adjusted_rand_score(merged.planted_segment, merged.segment)
    assert agreement >= (0.9 if result.record.segments.chosen["n_segments"] == 6 else 0.85)
    # the planted new customers are in a segment named as new
    new = merged[merged.planted_segment == "new_customers"].segment_name.value_counts()
    assert new.index[0].startswith("New") and new.iloc[0] >= 0.9 * new.sum()
    lapsed = merged[merged.planted_segment == "lost_customers"].segment_name.value_counts()
    assert lapsed.index[0].startswith("Lapsed")
