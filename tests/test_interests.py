from __future__ import annotations

import datetime
import json

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest import make_transactions
from custseg.clean import clean
from custseg.features import interest_columns
from custseg.interests import (
    ENOUGH_GAIN,
    HABIT_COLUMNS,
    MIN_LEAD_INDEX,
    InterestGroups,
    buying_habits,
    choose_groups,
    describe_groups,
    interest_batch,
    mix_weights,
    next_mix,
    next_mix_scores,
)


def planted(n_per_group: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers of three planted interests over four categories, their past shares noisy."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.45, 0.45]])
    truth = np.repeat([0, 1, 2], [n_per_group * 2, n_per_group, n_per_group])
    shares = np.vstack([rng.dirichlet(centres[g] * 30) for g in truth])
    frame = pd.DataFrame(shares, columns=[f"share_c0{i + 1}" for i in range(4)])
    frame.insert(0, "customer_id", [f"k{i:04d}" for i in range(len(truth))])
    for column in HABIT_COLUMNS:
        frame[column] = 1.0
    frame["lines_per_order"] = np.where(truth == 2, 30.0, 5.0)
    frame["lines"] = rng.integers(1, 60, len(truth)).astype(float)
    frame[[f"revenue_share_q{q}" for q in range(1, 5)]] = 0.25
    return frame, truth


def test_planted_interests_are_found_numbered_by_size_and_kept_in_a_model_folder():
    customers, truth = planted()
    model = InterestGroups(n_groups=3).fit(customers)
    groups = model.predict(customers)
    assert adjusted_rand_score(truth, groups) > 0.95
    assert groups[truth == 0][0] == 0  # the largest planted group is I1
    again = InterestGroups.from_state(json.loads(json.dumps(model.state())))
    assert (again.predict(customers) == groups).all()
    batch = interest_batch(customers.head(3), again, {"I1": "a", "I2": "b", "I3": "c"})
    assert batch.columns.tolist() == ["customer_id", "interest_group", "interest_group_name"]
    assert batch.interest_group.tolist() == ["I1"] * 3 and batch.interest_group_name.tolist() == ["a"] * 3


def test_a_mix_read_from_more_lines_counts_more_in_placing_the_groups():
    customers, _ = planted(seed=4)
    weights = mix_weights(customers)
    assert np.allclose(weights, np.log(1 + customers.lines))
    roots = np.sqrt(customers.filter(like="share_c").to_numpy())
    one = InterestGroups(n_groups=1).fit(customers, sample_weight=weights)
    assert np.allclose(one.centres_[0], np.average(roots, axis=0, weights=weights))
    assert not np.allclose(one.centres_[0], roots.mean(axis=0), atol=1e-3)


def test_groups_that_know_the_next_mix_score_better_than_the_shop_and_random_ones_do_not():
    rng = np.random.default_rng(1)
    customers, truth = planted()
    past = customers.filter(like="share_c").to_numpy()
    centres = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.45, 0.45]])
    actual = np.vstack([rng.dirichlet(centres[g] * 5) for g in truth])
    folds = rng.integers(0, 5, len(truth))
    known = next_mix_scores(truth, past, actual, folds)
    guessed = next_mix_scores(rng.integers(0, 3, len(truth)), past, actual, folds)
    assert known.gain > 0.2 and known.groups < known.shop
    assert abs(guessed.gain) < 0.02
    assert known.own_past < known.shop


def test_the_number_of_groups_is_the_fewest_near_the_best_and_every_candidate_is_reported():
    rng = np.random.default_rng(2)
    customers, truth = planted()
    centres = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.45, 0.45]])
    actual = np.vstack([rng.dirichlet(centres[g] * 5) for g in truth])
    scored = np.arange(len(truth))
    choice = choose_groups(customers, actual, scored, rng.integers(0, 5, len(truth)))
    assert choice.model.n_groups == 3
    table = choice.candidates
    assert table.groups.tolist() == list(range(2, 13)) and table.chosen.sum() == 1
    assert table.loc[table.chosen, "reduction"].item() >= ENOUGH_GAIN * table.reduction.max()


def test_groups_are_named_by_what_they_buy_more_of_and_how():
    customers, truth = planted()
    labels = {"c01": "Candles and incense", "c02": "Bags, stickers and charms", "c03": "Cake cases", "c04": "Tins"}
    table = describe_groups(customers, truth, labels, 3)
    assert table.interest_group.tolist() == ["I1", "I2", "I3"]
    assert table.interest_group_name.tolist() == [
        "Candles",
        "Bags",
        "Cake cases and tins, large baskets",
    ]
    assert table.customers.tolist() == [400, 200, 200]


def test_buying_habits_and_the_next_mix_come_from_the_lines():
    rows = [
        {
            "customer_id": "a",
            "invoice_id": "1",
            "product_id": "p1",
            "quantity": 10,
            "unit_price": 1.0,
            "invoiced_at": datetime.datetime(2011, 11, 1),
        },
        {
            "customer_id": "a",
            "invoice_id": "1",
            "product_id": "p2",
            "quantity": 2,
            "unit_price": 5.0,
            "invoiced_at": datetime.datetime(2011, 11, 1),
        },
        {
            "customer_id": "a",
            "invoice_id": "2",
            "product_id": "p2",
            "quantity": 4,
            "unit_price": 5.0,
            "invoiced_at": datetime.datetime(2012, 2, 1),
        },
    ]
    lines = clean(make_transactions(rows)).lines
    habits = buying_habits(lines, datetime.datetime(2012, 1, 1)).to_pandas().iloc[0]
    assert (
        habits.lines_per_order == 2 and habits.units_per_line == 6 and habits.price_per_unit == pytest.approx(20 / 12)
    )
    assert habits.revenue_share_q4 == 1 and habits.revenue_share_q1 == 0
    products = ibis.memtable({"product_id": ["p1", "p2"], "category": ["c01", "c02"]})
    following = next_mix(
        lines, products, ["c01", "c02"], datetime.datetime(2012, 1, 1), datetime.datetime(2012, 3, 1)
    ).to_pandas()
    assert following.share_c01.tolist() == [0.0] and following.share_c02.tolist() == [1.0]


def test_a_run_groups_every_customer_and_assign_and_the_model_give_the_same_group(trained, tmp_path):
    from custseg.pipeline import assigned_customers

    files, result = trained
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    assert customers.interest_group.notna().all()
    section = result.record.interests
    groups = pd.read_csv(result.out_dir / "interest_groups.csv")
    assert len(groups) == section.chosen and groups.customers_now.sum() == len(customers)
    # The simulated customers prefer kinds of product: their groups tell what they buy next.
    assert section.backtest.reduction > 0.02
    # A group is named for what its members buy, as of the run's date: every category in its name
    # is, among them, at least MIN_LEAD_INDEX times every customer's mean share.
    categories = pd.read_csv(result.out_dir / "categories.csv").set_index("label").category
    column_of = interest_columns(categories.tolist())
    named = groups.dropna(subset=["leads"])
    assert len(named) >= 1
    for group in named.itertuples():
        members = customers.interest_group == group.interest_group
        for lead in group.leads.split("; "):
            label, times = lead.rsplit(" (", 1)
            share = customers[column_of[categories[label]]]
            index = share[members].mean() / share.mean()
            assert index >= MIN_LEAD_INDEX and float(times.removesuffix("x)")) == pytest.approx(index, abs=0.051)
    assigned, _ = assigned_customers(files.log, result.out_dir)
    merged = customers.merge(assigned, on="customer_id", suffixes=("", "_assigned"))
    assert (merged.interest_group == merged.interest_group_assigned).all()


def test_a_segments_action_leads_with_its_members_groups_and_contacts_a_seasonal_group_before_its_season():
    from custseg.interests import interest_lead

    groups = pd.DataFrame(
        {
            "interest_group": ["I1", "I2", "I3"],
            "interest_group_name": ["A bit of everything", "Decorations", "Bags"],
            "lead": ["", "decorations", "bags"],
            "season": ["", "q4", ""],
            "customers_now": [70, 20, 10],
        }
    )
    members = pd.DataFrame({"interest_group": ["I1"] * 5 + ["I2"] * 3 + ["I3"] * 2})
    lead = interest_lead(members, groups)
    # The most over-represented first: bags (20% of the members, 10% of everyone), then decorations.
    assert lead == (
        "Lead with bags for the 20% in I3 Bags and with decorations for the 30% in I2 Decorations (they buy "
        "mostly October to December: contact them from September)."
    )
    assert interest_lead(pd.DataFrame({"interest_group": ["I1"] * 10}), groups) is None
    # A group holding as many of the members as of everyone says nothing about them.
    assert interest_lead(pd.DataFrame({"interest_group": ["I1"] * 7 + ["I2"] * 2 + ["I3"]}), groups) is None
    assert interest_lead(members, None) is None
    # A group whose name says its season is not told it twice.
    named = groups.assign(
        interest_group_name=["A bit of everything", "Decorations, buy mostly October to December", "Bags"]
    )
    assert "in I2 Decorations, buy mostly October to December (contact them from September)" in interest_lead(
        members, named
    )


def test_a_shop_without_product_text_says_so_and_has_no_interest_groups(tmp_path):
    from rich.console import Console

    from custseg.pipeline import run
    from custseg.record import Skipped
    from custseg.report.terminal import print_run
    from custseg.simulate import simulate_to_files

    files = simulate_to_files(tmp_path / "shop.parquet", 600, seed=3)
    log = pd.read_parquet(files.log).drop(columns=["Description"])
    log.to_parquet(tmp_path / "no_text.parquet")
    result = run(tmp_path / "no_text.parquet", tmp_path / "out")
    assert result.record.products.chosen == 0 and "cannot be told apart" in result.record.products.method
    assert (
        isinstance(result.record.interests, Skipped) and "none without product text" in result.record.interests.reason
    )
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    assert customers.interest_group.isna().all()
    assert not (result.out_dir / "interest_groups.csv").exists()
    console = Console(record=True, width=120)
    print_run(console, result.record, result.out_dir)
    shown = console.export_text()
    assert "Interest groups: skipped (fewer than 2 product categories" in shown
    assert "interest_groups.csv" not in shown


def test_groups_that_tell_nothing_about_the_next_mix_are_not_chosen():
    rng = np.random.default_rng(4)
    customers, _ = planted()
    actual = rng.dirichlet(np.ones(4), size=len(customers))  # the next mix has nothing to do with the past
    choice = choose_groups(customers, actual, np.arange(len(customers)), rng.integers(0, 5, len(customers)))
    assert choice.model is None and choice.scores is None
    assert (choice.candidates.reduction <= 0).all() and not choice.candidates.chosen.any()
