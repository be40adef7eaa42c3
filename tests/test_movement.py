"""Segment movement: who moved where between two dates, counted in the engine and read in sentences."""

from __future__ import annotations

import datetime
import json

import ibis
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import make_transactions
from custseg.clean import clean
from custseg.cli import app
from custseg.errors import MissingColumnsError
from custseg.features import customer_features
from custseg.movement import GONE, NEW, matrix, migration, migration_summary
from custseg.pipeline import assign, compare

A, B = datetime.datetime(2011, 2, 1), datetime.datetime(2011, 3, 1)


@pytest.fixture(scope="module")
def dates():
    """Customers as of A and B of a hand-made log, segmented active (last order within 14 days) or lapsed."""
    rows = [
        {"customer_id": "c1", "invoiced_at": "2011-01-25 10:00", "unit_price": 10.0},  # active, stays active
        {"customer_id": "c1", "invoiced_at": "2011-02-20 10:00", "unit_price": 20.0},
        {"customer_id": "c2", "invoiced_at": "2011-01-28 10:00", "unit_price": 5.0},  # active, then lapsed
        {"customer_id": "c3", "invoiced_at": "2010-12-01 10:00", "unit_price": 7.0},  # lapsed, stays lapsed
        {"customer_id": "c4", "invoiced_at": "2010-10-15 10:00", "unit_price": 3.0},  # lapsed, then active
        {"customer_id": "c4", "invoiced_at": "2011-02-25 10:00", "unit_price": 4.0},
        {"customer_id": "c5", "invoiced_at": "2011-02-22 10:00", "unit_price": 8.0},  # new, active
    ]
    lines = clean(make_transactions(rows)).lines

    def segmented(as_of):
        features = customer_features(lines, as_of)
        return features.mutate(segment=ibis.ifelse(features.recency_days < 14, "active", "lapsed"))

    return segmented(A), segmented(B)


def test_the_migration_of_a_hand_made_log_is_the_one_planted(dates):
    before, after = dates
    flows = migration(before, after, "segment").execute()
    assert flows.to_dict(orient="records") == [
        {"from_segment": NEW, "to_segment": "active", "customers": 1, "revenue_before": 0.0, "revenue_between": 8.0},
        {
            "from_segment": "active",
            "to_segment": "active",
            "customers": 1,
            "revenue_before": 10.0,
            "revenue_between": 20.0,
        },
        {
            "from_segment": "active",
            "to_segment": "lapsed",
            "customers": 1,
            "revenue_before": 5.0,
            "revenue_between": 0.0,
        },
        {
            "from_segment": "lapsed",
            "to_segment": "active",
            "customers": 1,
            "revenue_before": 0.0,
            "revenue_between": 4.0,
        },
        {
            "from_segment": "lapsed",
            "to_segment": "lapsed",
            "customers": 1,
            "revenue_before": 7.0,
            "revenue_between": 0.0,
        },
    ]
    table = matrix(flows)
    assert table.index.tolist() == ["active", "lapsed", NEW] and table.columns.tolist() == ["active", "lapsed"]
    sizes_before = before.execute().segment.value_counts()
    sizes_after = after.execute().segment.value_counts()
    # Rows sum to the sizes at the first date (plus the new customers), columns to the sizes at the second.
    assert table.drop(index=NEW).sum(axis=1).to_dict() == sizes_before.to_dict() == {"active": 2, "lapsed": 2}
    assert table.loc[NEW].sum() == len(after.execute()) - len(before.execute()) == 1
    assert table.sum(axis=0).to_dict() == sizes_after.to_dict() == {"active": 3, "lapsed": 2}


def test_customers_missing_at_the_second_date_are_gone(dates):
    before, after = dates
    flows = migration(before, after.filter(after.customer_id != "c3"), "segment").execute()
    gone = flows[flows.to_segment == GONE]
    assert gone[["from_segment", "customers", "revenue_between"]].to_dict(orient="records") == [
        {"from_segment": "lapsed", "customers": 1, "revenue_between": 0.0}
    ]
    assert matrix(flows).columns.tolist()[-1] == GONE


def test_the_summary_names_the_largest_moves_down_and_up(dates):
    before, after = dates
    summary = migration_summary(migration(before, after, "segment").execute(), {}, A.date(), B.date())
    # Active customers of A spent 20 between the dates (10 each), lapsed ones 4 (2 each).
    assert summary.worth == {"active": 10.0, "lapsed": 2.0}
    assert summary.sizes_before == {"active": 2, "lapsed": 2} and summary.sizes_after == {
        "active": 3,
        "lapsed": 2,
    }
    assert summary.stayed == 2
    assert summary.sentences == [
        "Of the 4 customers as of 2011-02-01, 2 (50%) were in the same segment as of 2011-03-01.",
        "The largest move down: 1 active (50%) moved to lapsed, with 5 of revenue in the 90 days before 2011-02-01 "
        "and 0 since.",
        "The largest move up: 1 lapsed (50%) moved to active, with 0 of revenue in the 90 days before 2011-02-01 "
        "and 4 since.",
        "1 new customers arrived; the most (1) are in active.",
    ]


def test_a_run_writes_the_migration_and_compare_gives_it_again_from_the_stored_model(trained, tmp_path):
    files, result = trained
    movement = result.record.movement
    learned = movement.learned
    first = learned.from_date
    profiles = result.record.segments.profiles
    assert learned.sizes_after == {p["segment"]: p["customers"] for p in profiles}
    assert sum(learned.sizes_before.values()) == result.record.backtest.customers
    for kind in ("learned", "rfm"):
        flows = pd.DataFrame(getattr(movement, kind).flows)
        assert flows.customers.sum() == result.record.customers.count
    # The same model applied by custseg assign at the two dates gives the same flows.
    assign(files.log, result.out_dir, tmp_path / "then.parquet", as_of=first)
    assign(files.log, result.out_dir, tmp_path / "now.parquet")
    again = compare(tmp_path / "then.parquet", tmp_path / "now.parquet")
    for kind in ("learned", "rfm"):
        assert again[kind].flows == getattr(movement, kind).flows, kind
        assert again[kind].sentences == getattr(movement, kind).sentences, kind
    outcome = CliRunner().invoke(
        app,
        ["compare", str(tmp_path / "then.parquet"), str(tmp_path / "now.parquet"), "--out", str(tmp_path / "f.csv")],
    )
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["rfm"]["flows"] == movement.rfm.flows
    written = pd.read_csv(tmp_path / "f.csv")
    assert (
        set(written.kind) == {"learned", "rfm"} and written.customers.sum() == 2 * result.record.customers.count
    )


def test_compare_names_a_file_that_custseg_assign_did_not_write(tmp_path):
    pd.DataFrame({"customer_id": ["1"], "segment": ["S1"]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(MissingColumnsError, match=r"x.parquet: missing column\(s\) segment_name, rfm_segment"):
        compare(tmp_path / "x.parquet", tmp_path / "x.parquet")
    outcome = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing.parquet"), str(tmp_path / "x.parquet")])
    assert outcome.exit_code == 1
    assert (
        outcome.stderr
        == f"custseg: error: {tmp_path / 'nothing.parquet'}: no such file; give a file written by custseg assign\n"
    )


def test_compare_refuses_files_that_different_models_assigned(trained, tmp_path):
    from custseg.errors import InvalidValueError
    from custseg.model import load_model

    files, result = trained
    assign(files.log, result.out_dir, tmp_path / "a.parquet")
    assigned = pd.read_parquet(tmp_path / "a.parquet")
    # custseg assign writes the model's id beside every customer.
    assert set(assigned.model_id) == {load_model(result.out_dir).model_id}
    assigned.assign(model_id="0123456789abcdef").to_parquet(tmp_path / "b.parquet")
    message = (
        f"{tmp_path / 'a.parquet'} and {tmp_path / 'b.parquet'} were assigned by different models "
        f"({assigned.model_id.iloc[0]} and 0123456789abcdef): a segment id of one need not name the same customers "
        "in the other; assign both with the same --model"
    )
    with pytest.raises(InvalidValueError) as raised:
        compare(tmp_path / "a.parquet", tmp_path / "b.parquet")
    assert str(raised.value) == message
    outcome = CliRunner().invoke(app, ["compare", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")])
    assert outcome.exit_code == 1 and outcome.stderr == f"custseg: error: {message}\n"
