"""Segments as rules: learned from what customers did next, true of every member, named from the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from custseg.features import Unit
from custseg.pipeline import assign, run
from custseg.record import read_record
from custseg.rules import GRIDS, NEW_TENURE_DAYS, Condition, RuleTree, bounds, describe, rule_names
from custseg.settings import load_settings
from custseg.simulate import simulate_to_files

COLUMNS = ["recency_days", "frequency", "monetary", "tenure_days"]


def shop(n=4000, seed=0):
    """Customers spread over every recency, tenure, frequency and spend, without groups."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 700, n)
    return pd.DataFrame(
        {
            "recency_days": (tenure * rng.random(n)).astype(int),
            "frequency": rng.integers(1, 30, n),
            "monetary": rng.lognormal(6, 1.2, n).round(2),
            "tenure_days": tenure,
        }
    )


def grouped_shop(seed=0):
    """Three groups of customers (new, loyal, gone), and which each customer is in."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], [500, 700, 900])
    recency = np.array([rng.integers(0, 20, 500), rng.integers(0, 40, 700), rng.integers(200, 400, 900)], dtype=object)
    tenure = np.array(
        [rng.integers(0, 25, 500), rng.integers(300, 700, 700), rng.integers(400, 700, 900)], dtype=object
    )
    frequency = np.array([rng.integers(1, 3, 500), rng.integers(8, 40, 700), rng.integers(1, 3, 900)], dtype=object)
    spend = np.array([rng.lognormal(4, 0.5, 500), rng.lognormal(8, 0.5, 700), rng.lognormal(4, 0.5, 900)], dtype=object)
    customers = pd.DataFrame(
        {
            "recency_days": np.concatenate(recency),
            "frequency": np.concatenate(frequency),
            "monetary": np.concatenate(spend).round(2),
            "tenure_days": np.concatenate(tenure),
        }
    )
    customers["recency_days"] = np.minimum(customers.recency_days, customers.tenure_days)
    return customers, groups


def satisfied(customers: pd.DataFrame, conditions: list[Condition]) -> np.ndarray:
    holds = np.ones(len(customers), dtype=bool)
    for condition in conditions:
        holds &= condition.holds(customers[condition.column].to_numpy(dtype=float))
    return holds


@pytest.mark.parametrize("n_segments", [4, 7, 10])
def test_the_rules_partition_the_customers_and_every_member_satisfies_its_rule(n_segments):
    customers = shop()
    tree = RuleTree(n_segments=n_segments, columns=COLUMNS).fit(customers[COLUMNS].to_numpy(float))
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
    assert tree.agreement_ == pytest.approx(
        pd.crosstab(tree.labels_, tree.groups_).max(axis=1).sum() / len(customers), abs=1e-4
    )


def test_the_rules_state_the_groups_the_customers_form():
    customers, groups = grouped_shop()
    tree = RuleTree(n_segments=3, columns=COLUMNS).fit(customers[COLUMNS].to_numpy(float))
    assert adjusted_rand_score(groups, tree.labels_) >= 0.95 and tree.agreement_ >= 0.95
    names = rule_names(tree.rules(), gap_days=30, frequent_from=8, big_from=1000, small_from=100)
    by_group = [names[pd.Series(tree.labels_[groups == g]).mode()[0]] for g in range(3)]
    assert by_group[0].startswith("New") and by_group[2].startswith(("Lapsing", "Lapsed")), by_group


def test_a_rule_reads_as_a_segment_builder_would_say_it():
    assert describe([Condition("frequency", True, 2), Condition("recency_days", False, 30)]) == (
        "2+ orders, last order within 30 days"
    )
    assert describe(
        [Condition("monetary", True, 500), Condition("frequency", False, 2), Condition("recency_days", True, 90)]
    ) == ("1 order, spent 500 or more, no order for 90+ days")
    assert describe([Condition("frequency", True, 2), Condition("frequency", False, 3)]) == "2 orders"
    # A bound the others imply is not said: the last order is never before the first.
    assert describe([Condition("recency_days", False, 270), Condition("tenure_days", False, 60)]) == (
        "first order within 60 days"
    )
    assert describe([Condition("tenure_days", True, 90), Condition("recency_days", True, 120)]) == (
        "no order for 120+ days"
    )
    assert describe([Condition("recency_own_gaps", True, 1.5)]) == "no order for 1.5x their usual gap or more"
    # A rule that names nothing else is told by what only it says.
    alone = rule_names(
        [
            [Condition("monetary", False, 500), Condition("tenure_days", True, 60)],
            [Condition("tenure_days", False, 60)],
        ],
        30,
        frequent_from=10,
        big_from=1e9,
    )
    assert alone == ["Customers (spent under 500, first order 60+ days ago)", "New customers"]
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
    # Bounded within three typical gaps but not one: recent, not active.
    recent = rule_names(
        [[Condition("recency_days", False, 90), Condition("tenure_days", True, 90)]], 30, frequent_from=10, big_from=1e9
    )
    assert recent == ["Recent customers"]
    overdue = rule_names(
        [[Condition("recency_own_gaps", True, 1), Condition("frequency", True, 2)]], 30, frequent_from=10, big_from=1e9
    )
    assert overdue == ["Overdue repeat buyers"]
    assert rule_names([[Condition("monetary", False, 100)]], 30, frequent_from=10, big_from=1e9, small_from=150) == [
        "Low spenders"
    ]
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
            assert learned.loc[entry["segment"], "rule"] == entry["rule"] == describe(rule, record.input.currency)
    # A name is true of every member (the typical gap is rounded in run.json: a day's leeway).
    gap = record.segments.typical_gap_days
    for segment, row in learned.iterrows():
        members = customers[customers.segment == segment]
        own = members.recency_own_gaps
        if row["name"].startswith("New"):
            assert (members.tenure_days <= max(2 * gap + 1, NEW_TENURE_DAYS)).all(), row["name"]
        if "one-time" in row["name"]:
            assert (members.frequency == 1).all(), row["name"]
        if row["name"].startswith("Active"):
            assert ((members.recency_days <= gap + 1) | (own < 1)).all(), row["name"]
        if row["name"].startswith("Lapsing"):
            assert ((members.recency_days >= gap - 1) | (own >= 1.5)).all(), row["name"]
        if row["name"].startswith("Lapsed"):
            assert ((members.recency_days >= 3 * gap - 1) | (own >= 3)).all(), row["name"]
        if row["name"].startswith("Overdue"):
            assert (own >= 1).all(), row["name"]
        if row["name"].startswith("Recent"):
            assert (members.recency_days <= 3 * gap + 1).all(), row["name"]
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


def test_an_earlier_runs_segments_are_kept_for_todays_customers(ruled, tmp_path):
    files, fresh = ruled
    month_ago = (fresh.record.span.last_invoiced_at - pd.Timedelta(days=30)).date()
    earlier = run(files.log, tmp_path / "earlier", load_settings(None, as_of=str(month_ago)))
    kept = run(files.log, tmp_path / "kept", load_settings(None, model="rules", segments_from=str(earlier.out_dir)))
    # The same rules and names, applied to today's customers: each satisfies the rule of their segment.
    assert kept.record.segments.rules == earlier.record.segments.rules
    before = pd.read_csv(earlier.out_dir / "segments.csv").query("kind == 'learned'").set_index("segment").name
    after = pd.read_csv(tmp_path / "kept" / "segments.csv").query("kind == 'learned'").set_index("segment").name
    assert after.to_dict() == before.reindex(after.index).to_dict()
    customers = pd.read_parquet(tmp_path / "kept" / "customers.parquet")
    for entry in kept.record.segments.rules:
        rule = [Condition(c["column"], c["at_least"], c["value"]) for c in entry["conditions"]]
        assert (satisfied(customers, rule) == (customers.segment == entry["segment"])).all()
    # The run says how the kept segments compare with a fresh fit on the same backtest.
    section = kept.record.segments.kept
    assert section.run == str(earlier.out_dir) and section.validity == kept.record.segments.backtest.validity
    assert section.fresh_validity == fresh.record.segments.backtest.validity
    assert ("keep them" in section.advice) != ("refit" in section.advice)
    assert read_record(tmp_path / "kept").segments.kept == section


def test_a_near_tie_between_thresholds_goes_to_the_rounder_number():
    # Two groups apart at 9 orders, with a few customers at 9: splitting at 8 states the groups
    # exactly, at 10 it misplaces those few. A month more data would move such a near tie either
    # way, so it goes to 10; only an exact fit (round_tolerance 0) takes 8.
    rng = np.random.default_rng(0)
    frequency = np.concatenate([rng.integers(1, 8, 1000), np.full(20, 9), rng.integers(10, 31, 1000)])
    customers = pd.DataFrame(
        {"recency_days": 10, "frequency": frequency, "monetary": 100.0, "tenure_days": 400}, index=range(len(frequency))
    )
    points = customers[COLUMNS].to_numpy(float)
    exact = RuleTree(n_segments=2, columns=COLUMNS, round_tolerance=0.0).fit(points)
    rounder = RuleTree(n_segments=2, columns=COLUMNS).fit(points)
    assert exact.rules() == [[Condition("frequency", False, 8.0)], [Condition("frequency", True, 8.0)]]
    assert rounder.rules() == [[Condition("frequency", False, 10.0)], [Condition("frequency", True, 10.0)]]
    assert exact.agreement_ == 1.0 and rounder.agreement_ < 1.0


def test_a_rule_no_customer_satisfies_today_is_still_a_segment(ruled):
    # A kept segment can be empty this month (say, no one new): it stays in the profiles, with no members.
    from custseg.profile import profile_segments

    _, result = ruled
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    rules = [
        [Condition(c["column"], c["at_least"], c["value"]) for c in entry["conditions"]]
        for entry in result.record.segments.rules
    ]
    without_first = customers[customers.segment != "S1"]
    profiles = profile_segments(without_first, {}, gap_days=30.0, rules=rules).set_index("segment")
    assert list(profiles.index) == [f"S{i + 1}" for i in range(len(rules))]
    empty = profiles.loc["S1"]
    assert empty.customers == 0 and empty.share == 0 and empty.description.endswith("none as of the reference date.")
    assert empty.action.startswith(f"For customers with {empty.rule}: ")
    assert profiles.drop("S1").customers.to_dict() == without_first.segment.value_counts().to_dict()


def test_a_rules_amounts_are_written_in_the_shops_currency():
    spend = [Condition("monetary", True, 500), Condition("monetary", False, 2000)]
    assert describe(spend, "GBP") == "spent £500 to under £2,000"
    assert describe([Condition("monetary", True, 7.5)], "CHF") == "spent CHF 7.50 or more"
    assert describe([Condition("monetary", False, 500)]) == "spent under 500"
