from __future__ import annotations

import json

import numpy as np
import pandas as pd

from custseg.early import model_inputs
from custseg.model import load_model
from custseg.pipeline import run

# run.json holds timings, custseg.duckdb its own page layout, and skops files the memory addresses
# of the objects they stored (so model.json's SHA-256 of them differs too); everything else a user
# reads must match byte for byte.
COMPARED = (
    "customers.parquet",
    "rejected.parquet",
    "segments.csv",
    "categories.csv",
    "report.html",
)


def test_the_same_input_settings_and_seed_give_the_same_output(trained, tmp_path):
    files, first = trained
    again = run(files.log, tmp_path / "again")
    for name in COMPARED:
        assert (first.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    manifests = [json.loads((out / "model" / "model.json").read_text()) for out in (first.out_dir, again.out_dir)]
    model_files = {"segmentation.skops", "early.skops", "value.skops"}
    assert set(manifests[0].pop("files")) == set(manifests[1].pop("files")) == model_files
    assert manifests[0] == manifests[1]
    assert first.record.early == again.record.early
    assert first.record.segments == again.record.segments
    # The stored models answer alike.
    customers = pd.read_parquet(first.out_dir / "customers.parquet")
    one, two = load_model(first.out_dir), load_model(again.out_dir)
    assert (one.segmentation.predict(customers) == two.segmentation.predict(customers)).all()
    inputs = model_inputs(customers.assign(segment_now=customers.segment), one.manifest["products"]["category_order"])
    for target, by_orders in one.early.items():
        for n_orders, model in by_orders.items():
            other = two.early[target][n_orders]
            assert np.array_equal(model.predict_proba(inputs), other.predict_proba(inputs)), (target, n_orders)
