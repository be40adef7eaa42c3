from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from custseg.cluster import ClusterOptions, Segmentation
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
    return data, np.repeat([0, 1, 2], sizes)


FAST = dict(spaces=["features"], stability_resamples=5)


def test_obvious_groups_are_found_and_ordered_by_value():
    data, truth = blobs()
    model = Segmentation(options=ClusterOptions(**FAST)).fit(data)
    assert model.n_segments_ == 3
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    # S1 (label 0) is the group with the highest mean spend
    assert data.monetary[model.labels_ == 0].mean() > data.monetary[model.labels_ == 2].mean()
    assert (model.predict(data) == model.labels_).all()


def test_same_data_and_seed_give_identical_labels_and_table():
    data, _ = blobs()
    options = ClusterOptions(stability_resamples=5)
    first = Segmentation(options=options, random_state=3).fit(data)
    second = Segmentation(options=options, random_state=3).fit(data)
    assert first.labels_.tolist() == second.labels_.tolist()
    pd.testing.assert_frame_equal(first.candidates_, second.candidates_)


def test_selection_rule_prefers_more_segments_within_the_silhouette_tolerance():
    table = pd.DataFrame(
        {
            "space": "features",
            "model": ["kmeans"] * 4,
            "n_segments": [3, 4, 5, 6],
            "silhouette": [0.60, 0.56, 0.50, 0.58],
            "stability": [0.99, 0.95, 0.99, 0.70],
            "smallest_share": [0.2, 0.1, 0.1, 0.1],
        }
    )
    chosen = Segmentation._choose(table, ClusterOptions())
    # 6 is unstable, 5 is too far below the best silhouette: 4 is the most segments that qualify
    assert chosen.loc[chosen.chosen, "n_segments"].item() == 4
    assert chosen.eligible.tolist() == [True, True, True, False]
    tiny = table.assign(smallest_share=0.001)
    fallback = Segmentation._choose(tiny, ClusterOptions())
    assert fallback.loc[fallback.chosen, "n_segments"].item() == 3  # the most stable


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


def test_planted_segments_of_a_simulated_shop_are_recovered(tmp_path):
    files = simulate_to_files(tmp_path / "shop.parquet", 3000, seed=0)
    result = run(files.log, tmp_path / "out")
    customers = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    truth = pd.read_parquet(files.customers)
    truth["customer_id"] = truth.customer_id.astype(str)
    merged = customers.merge(truth, on="customer_id")
    assert len(merged) == len(customers)
    ari = adjusted_rand_score(merged.planted_segment, merged.segment)
    assert result.manifest["segments"]["chosen"]["n_segments"] == 6
    assert ari >= 0.8, ari
