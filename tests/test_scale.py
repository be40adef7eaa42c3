"""More customers than the driver may hold: learn from a sample, let the engine assign everyone.

With ``[engine] max_driver_customers`` below the number of customers, the segmentation and the
early models learn from a sample fetched from the engine, and the engine assigns every customer
batch by batch. Given the same sample, that must give every customer the same segment and early
prediction as the run that holds all customers in memory; profiles then come from the sample
with exact sizes.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from custseg.cluster import ClusterOptions
from custseg.early import EarlyOptions
from custseg.engine import EngineOptions
from custseg.pipeline import run
from custseg.settings import Settings

SAMPLE = 300
"""Customers the models learn from: fewer than the 800 of the simulated shop."""

ASSIGNED = [
    "segment",
    "segment_noise",
    "tsne_x",
    "tsne_y",
    "early_orders",
    "predicted_segment",
    "predicted_segment_probability",
    "predicted_category",
    "predicted_category_probability",
]


def sampled_settings(**engine) -> Settings:
    """Models learn from SAMPLE customers; ``engine`` sets the engine's options."""
    return Settings(
        cluster=dataclasses.replace(ClusterOptions(), max_fit_customers=SAMPLE),
        early=dataclasses.replace(EarlyOptions(), max_train_customers=SAMPLE),
        engine=EngineOptions(**engine),
    )


@pytest.fixture(scope="module")
def on_driver(trained, tmp_path_factory):
    files, _ = trained
    return run(files.log, tmp_path_factory.mktemp("driver") / "out", sampled_settings())


@pytest.fixture(scope="module")
def in_engine(trained, tmp_path_factory):
    files, _ = trained
    return run(files.log, tmp_path_factory.mktemp("engine") / "out", sampled_settings(max_driver_customers=SAMPLE))


def test_the_engine_assigns_every_customer_as_the_driver_would(on_driver, in_engine):
    expected = pd.read_parquet(on_driver.out_dir / "customers.parquet")
    got = pd.read_parquet(in_engine.out_dir / "customers.parquet")
    assert len(got) == len(expected) == on_driver.record.customers.count > SAMPLE
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got[ASSIGNED], expected[ASSIGNED])
    assert got.segment.notna().all()
    assert got.early_orders.notna().sum() == in_engine.record.early.predicted_customers > 0
    # Only the sample has t-SNE coordinates and noise flags.
    assert got.tsne_x.notna().sum() == SAMPLE


def test_only_the_sample_reaches_the_driver_and_sizes_stay_exact(on_driver, in_engine):
    segments = in_engine.record.segments
    assert segments.fitted_on_customers == on_driver.record.segments.fitted_on_customers == SAMPLE
    assert segments.profiled_on_customers == SAMPLE
    assert on_driver.record.segments.profiled_on_customers == on_driver.record.customers.count
    assert in_engine.record.early.learned_from_customers == SAMPLE
    assert in_engine.record.early.results == on_driver.record.early.results
    got = pd.DataFrame(segments.profiles).set_index("segment")
    expected = pd.DataFrame(on_driver.record.segments.profiles).set_index("segment")
    for column in ("customers", "share", "revenue_share"):
        pd.testing.assert_series_equal(got[column], expected[column])
    assert got.customers.sum() == in_engine.record.customers.count
    report = (in_engine.out_dir / "report.html").read_text()
    assert f"Distributions from a random sample of {SAMPLE:,} of the" in report


def test_the_sample_is_what_the_driver_limit_says(trained, tmp_path):
    files, _ = trained
    result = run(files.log, tmp_path / "out", sampled_settings(max_driver_customers=200), until="segments")
    assert result.record.segments.fitted_on_customers == 200


def test_spark_assigns_in_batches_as_duckdb_does(in_engine, trained, tmp_path):
    files, _ = trained
    settings = sampled_settings(name="spark", spark_master="local[2]", max_driver_customers=SAMPLE)
    spark = run(files.log, tmp_path / "spark", settings)
    assert spark.record.segments.fitted_on_customers == SAMPLE
    expected = pd.read_parquet(in_engine.out_dir / "customers.parquet")
    got = pd.read_parquet(spark.out_dir / "customers.parquet").sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(got[list(expected.columns)], expected, check_dtype=False)
    assert spark.record.early.results == in_engine.record.early.results
