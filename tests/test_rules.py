"""Segments as rules: learned from what customers did next, true of every member, named from the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custseg.backtest import Outcomes
from custseg.features import Unit
from custseg.pipeline import assign, run
from custseg.record import read_record
from custseg.rules import GRIDS, Condition, RuleTree, bounds, describe, rule_names
from custseg.settings import load_settings
from custseg.simulate import simulate_to_files

COLUMNS = ["recency_days", "frequency", "monetary", "tenure_days"]


def shop(n=4000, seed=0):
    """Customers whose next quarter depends on recency, frequency and spend, and what they did in it."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 700, n)
    customers = pd.DataFrame(
        {
            "recency_days": (tenure * rng.random(n)).astype(int),
            "frequency": rng.integers(1, 30, n),
            "monetary": rng.lognormal(6, 1.2, n).round(2),
            "tenure_days": tenure,
        }
    )
    chance = 1 / (1 + np.exp(customers.recency_days / 60 - np.log(customers.frequency)))
    returned = (rng.random(n) < chance).astype(int)
    revenue = returned * customers.monetary * rng.lognormal(-1, 0.5, n)
    return customers, Outcomes(returned=returned, revenue=revenue.to_numpy())


def satisfied(customers: pd.DataFrame, conditions: list[Condition]) -> np.ndarray:
    holds = np.ones(len(customers), dtype=bool)
    for condition in conditions:
        holds &= condition.holds(customers[condition.column].to_numpy(dtype=float))
    return holds


@pytest.mark.parametrize("n_segments", [4, 7, 10])
def test_the_rules_partition_the_customers_and_every_member_satisfies_its_rule(n_segments):
    customers, outcomes = shop()
    tree = RuleTree(n_segments=n_segments, columns=COLUMNS).fit(customers[COLUMNS].to_numpy(float), outcomes)
    rules = tree.rules()
    assert 2 <= len(rules) <= n_segments
    held = np.column_stack([satisfied(customers, rule) for rule in rules])
    # Exactly one rule per customer, and it is the rule of the segment the tree gives them.
    assert (held.sum(axis=1) == 1).all()
    assert (held.argmax(axis=1) == tree.labels_).all()
    # Every threshold is a number of the column's grid.
    grids = {"recency_days": Unit.DAYS, "tenure_days": Unit.DAYS, "frequency": Unit.ORDERS, "monetary": Unit.CURRENCY}
    for rule in rules:
        for condition in rule:
            assert condition.value in GRIDS[grids[condition.column]]
    # Segment 0 is the best next quarter: its customers returned most.
    rates = [outcomes.returned[tree.labels_ == s].mean() for s in range(len(rules))]
    assert rates[0] == max(rates)


def test_a_rule_reads_as_a_segment_builder_would_say_it():
    assert describe([Condition("frequency", True, 2), Condition("recency_days", False, 30)]) == (
        "2+ orders, last order within 30 days"
    )
    assert describe(
        [Condition("monetary", True, 500), Condition("frequency", False, 2), Condition("recency_days", True, 90)]
    ) == ("1 order, spent 500 or more, no order for 90+ days")
    assert describe([Condition("frequency", True, 2), Condition("frequency", False, 3)]) == "2 orders"
    # Only the tightest bound of each side is said.
    tight = bounds([Condition("recency_days", False, 90), Condition("recency_days", False, 30)])
    assert tight["recency_days"].upper == 30 and tight["recency_days"].lower is None


def test_a_name_says_only_what_the_rule_makes_true_of_every_member():
    rules = [
        [Condition("tenure_days", False, 30)],
        [Condition("tenure_days", True, 30), Condition("frequency", False, 2), Condition("recency_days", True, 180)],
        [Condition("tenure_days", True, 30), Condition("frequency", True, 2), Condition("recency_days", False, 14)],
        [Condition("tenure_days", True, 30), Condition("frequency", True, 2), Condition("recency_days", True, 14)],
        [Condition("tenure_days", True, 30), Condition("frequency", False, 2), Condition("recency_days", False, 180)],
    ]
    names = rule_names(rules, gap_days=30, frequent_from=10, big_from=1000)
    assert names[0] == "New customers"
    assert names[1] == "Lapsed one-time buyers"
    assert names[2] == "Active repeat buyers"
    # Without a bound on recency from below, a segment is neither lapsing nor lapsed.
    assert names[3] == "Repeat buyers"
    # One order first placed 30+ days ago was also last placed 30+ days ago: a typical gap.
    assert names[4] == "Lapsing one-time buyers"
    assert len(set(names)) == len(names)
    # One order: the first is the last, so a bound on tenure bounds recency too.
    one = rule_names(
        [[Condition("frequency", False, 2), Condition("tenure_days", True, 120)]], 30, frequent_from=10, big_from=1e9
    )
    assert one == ["Lapsed one-time buyers"]
    # Two rules that give the same name are told apart by what differs.
    twins = rule_names(
        [[Condition("monetary", True, 500)], [Condition("monetary", False, 500)]], 30, frequent_from=10, big_from=1e9
    )
    assert twins == ["Customers (spent 500 or more)", "Customers (spent under 500)"]


@pytest.fixture(scope="module")
def ruled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rules")
    files = simulate_to_files(folder / "shop.parquet", 1500, seed=4)
    return files, run(files.log, folder / "out", load_settings(None, model="rules"))


def test_a_run_with_rules_gives_every_customer_a_segment_whose_rule_they_satisfy(ruled):
    _, result = ruled
    record = result.record
    assert record.segments.chosen["model"] == "rules" and record.segments.chosen_by == "backtest"
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    segments = pd.read_csv(result.out_dir / "segments.csv")
    learned = segments[segments.kind == "learned"].set_index("segment")
    assert 4 <= len(learned) <= 10 and learned.name.is_unique
    for entry in record.segments.rules:
        rule = [Condition(c["column"], c["at_least"], c["value"]) for c in entry["conditions"]]
        members = customers.segment == entry["segment"]
        # Every member satisfies its rule, and nobody else does.
        assert (satisfied(customers, rule) == members).all(), entry
        if entry["segment"] in learned.index:
            assert learned.loc[entry["segment"], "rule"] == entry["rule"] == describe(rule)
    # A name is true of every member (the typical gap is rounded in run.json: a day's leeway).
    gap = record.segments.typical_gap_days
    for segment, row in learned.iterrows():
        members = customers[customers.segment == segment]
        own = members.recency_own_gaps
        if row["name"].startswith("New"):
            assert (members.tenure_days <= 2 * gap + 1).all(), row["name"]
        if "one-time" in row["name"]:
            assert (members.frequency == 1).all(), row["name"]
        if row["name"].startswith("Active"):
            assert ((members.recency_days <= gap + 1) | (own < 1)).all(), row["name"]
        if row["name"].startswith("Lapsing"):
            assert ((members.recency_days >= gap - 1) | (own >= 1.5)).all(), row["name"]
        if row["name"].startswith("Lapsed"):
            assert ((members.recency_days >= 3 * gap - 1) | (own >= 3)).all(), row["name"]
    # The rule leads every action, so that no two segments share their first sentence.
    first = learned.action.str.split(": ").str[0]
    assert first.is_unique and all(a.startswith("For customers with ") for a in learned.action)
    assert read_record(result.out_dir).segments.rules == record.segments.rules


def test_the_stored_rules_give_tomorrows_customers_the_same_segments(ruled, tmp_path):
    files, result = ruled
    assigned = assign(files.log, result.out_dir, tmp_path / "a.parquet")
    assert assigned.segments.assigned > 0
    again = pd.read_parquet(tmp_path / "a.parquet").set_index("customer_id")
    customers = pd.read_parquet(result.out_dir / "customers.parquet").set_index("customer_id")
    assert (again.segment == customers.segment.reindex(again.index)).all()
