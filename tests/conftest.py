from __future__ import annotations

from pathlib import Path

import ibis
import pandas as pd
import pytest

from custseg.schema import ColumnMapping, to_canonical

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real UCI Online Retail files; absent files fail the test, they never skip it."""
    if not (SHARED_DATA / "online_retail.parquet").exists():
        pytest.fail(f"the real data is missing: expected {SHARED_DATA}/online_retail.parquet")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A model trained on a small simulated shop: (simulated files, run result)."""
    from custseg.pipeline import run
    from custseg.simulate import simulate_to_files

    folder = tmp_path_factory.mktemp("trained")
    files = simulate_to_files(folder / "shop.parquet", 800, seed=5)
    return files, run(files.log, folder / "out")


def make_transactions(rows: list[dict]) -> ibis.Table:
    """Canonical transactions from hand-written rows (canonical column names, row_id = position)."""
    defaults = {
        "customer_id": "c1",
        "invoice_id": None,
        "invoiced_at": "2011-01-01 10:00",
        "product_id": "p1",
        "description": "THING",
        "quantity": 1.0,
        "unit_price": 1.0,
        "country": "United Kingdom",
    }
    frame = pd.DataFrame([{**defaults, **row} for row in rows])
    frame["invoice_id"] = frame["invoice_id"].fillna(
        pd.Series([f"i{n}" for n in range(1, len(frame) + 1)], index=frame.index)
    )
    frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"], format="mixed")
    frame["quantity"] = frame["quantity"].astype(float)
    frame["unit_price"] = frame["unit_price"].astype(float)
    frame["row"] = range(1, len(frame) + 1)
    mapping = ColumnMapping(preset="canonical", columns={c: c for c in defaults})
    return to_canonical(ibis.memtable(frame), mapping, timestamp_format=None, row_id="row")
