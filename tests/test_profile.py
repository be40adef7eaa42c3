from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custseg.profile import (
    NAMES,
    name_segments,
    neighbours_alike,
    over_indexed,
    profile_segments,
    segment_position,
    standardised_means,
)


def customers():
    rows = []

    def add(segment, rfm, n, recency, frequency, monetary, tenure, shares=(0.7, 0.3)):
        for i in range(n):
            rows.append(
                {
                    "customer_id": f"{segment}{i}",
                    "segment": segment,
                    "rfm_segment": rfm,
                    "recency_days": recency,
                    "frequency": frequency,
                    "monetary": monetary + i,
                    "tenure_days": tenure,
                    "avg_order_value": monetary / frequency,
                    "main_country": "United Kingdom",
                    "share_c01": shares[0],
                    "share_c02": shares[1],
                }
            )

    # the shop's typical gap between orders is 30 days in these tests
    add("S1", "Champions", 10, 5, 20, 5000, 360)
    add("S2", "At Risk", 10, 60, 6, 3000, 350)
    add("S3", "Recent Customers", 10, 10, 1, 80, 10, shares=(0.1, 0.9))
    add("S4", "Lost", 10, 330, 1, 90, 330)
    add("S5", "Lost", 10, 200, 1, 60, 200)
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "segment, state, value",
    [
        ("S1", "active", "champions"),  # 5 days out, one sixth of a gap
        ("S2", "lapsing", "big spenders"),  # 60 days: two gaps; 6 orders is not in the top third
        ("S3", "new", "one-time"),  # first order 10 days ago
        ("S4", "lapsed", "one-time"),  # 11 gaps out
    ],
)
def test_state_comes_from_recency_against_the_shops_gap_and_value_from_its_thirds(segment, state, value):
    data = customers()
    assert segment_position(data[data.segment == segment], data, gap_days=30) == {"state": state, "value": value}


def test_the_same_customers_are_lapsing_in_a_grocery_and_active_in_a_slow_shop():
    data = customers()
    members = data[data.segment == "S2"]
    assert segment_position(members, data, gap_days=10)["state"] == "lapsed"  # six gaps
    assert segment_position(members, data, gap_days=90)["state"] == "active"


def test_names_follow_the_table_and_are_made_unique():
    names = name_segments(customers(), gap_days=30)
    assert names["S1"] == "Champions" and names["S2"] == "At-risk big spenders" and names["S3"] == "New customers"
    # S4 and S5 are both lost one-time buyers: told apart by recency, where they differ most
    assert (names["S4"], names["S5"]) == ("Lost one-time buyers (less recent)", "Lost one-time buyers (more recent)")
    assert len(set(names.values())) == 5
    assert len(set(NAMES.values())) == len(NAMES)


def test_over_indexed_categories_are_against_the_shops_revenue_share():
    data = customers()
    labels = {"c01": "bags", "c02": "cards"}
    # S3 puts 90% of its spend in cards; the shop's revenue is mostly bags (the big spenders)
    leading = over_indexed(data[data.segment == "S3"], data, labels)
    assert leading[0][0] == "cards" and leading[0][1] > 2
    assert [label for label, _ in leading] == ["cards"]
    assert over_indexed(data[data.segment == "S1"], data, labels) == []  # S1 buys like the shop


def test_profiles_have_sizes_quartiles_interests_worth_and_actions():
    worth = pd.DataFrame(
        {
            "segment": ["S1", "S2", "S3", "S4", "S5"],
            "customers": [10, 10, 10, 10, 10],
            "return_rate": [0.9, 0.4, 0.3, 0.02, 0.05],
            "mean_revenue": [900.0, 200.0, 30.0, 1.0, 2.0],
            "median_revenue": [800.0, 0.0, 0.0, 0.0, 0.0],
            "return_lift": [2.7, 1.2, 0.9, 0.06, 0.15],
            "revenue_lift": [3.9, 0.9, 0.13, 0.0, 0.01],
        }
    )
    profiles = profile_segments(customers(), {"c01": "bags", "c02": "cards"}, gap_days=30, worth=worth)
    row = profiles.set_index("segment").loc["S1"]
    assert (row.customers, row.share, row.state, row.value) == (10, 0.2, "active", "champions")
    assert row.median_recency_days == 5 and row.median_frequency == 20
    assert row.q1_monetary < row.median_monetary < row.q3_monetary
    assert row.top_categories == "bags (70%); cards (30%)"
    assert row.action.startswith("Reward and keep them")
    assert "In the backtest, 90% of such customers ordered within 90 days" in row.action
    new = profiles.set_index("segment").loc["S3"]
    assert new.action.startswith("Welcome them") and "Lead with cards" in new.action
    assert new.over_indexed_categories.startswith("cards (")
    assert "10 customers (20% of customers" in new.description
    assert abs(profiles.revenue_share.sum() - 1) < 0.001


def test_the_snake_profile_is_each_segments_mean_in_standard_deviations():
    customers = pd.DataFrame(
        {
            "segment": ["S1", "S1", "S2", "S2"],
            "recency_days": [np.e - 1, np.e - 1, 0.0, 0.0],  # log1p: 1, 1, 0, 0
            "frequency": [3, 3, 3, 3],  # no spread: 0 everywhere
            "monetary": [0.0, 0.0, np.e - 1, np.e - 1],
            "tenure_days": [0.0, np.e - 1, 0.0, np.e - 1],
            "share_c01": [1.0, None, 0.0, 0.0],
        }
    )
    means = standardised_means(customers)
    assert means.loc["S1", "recency_days"] == pytest.approx(1.0) and means.loc["S2", "recency_days"] == pytest.approx(
        -1.0
    )
    assert means.loc["S1", "monetary"] == pytest.approx(-1.0)
    assert (means.frequency == 0).all() and (means.tenure_days.abs() < 1e-12).all()
    assert list(means.columns) == ["recency_days", "frequency", "monetary", "tenure_days", "share_c01"]


def test_neighbours_alike_is_the_share_of_near_customers_in_the_same_segment():
    points = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0], [4.0, 0.5]])
    segments = np.array(["S1", "S1", "S2", "S2", "S1"])
    overall, own = neighbours_alike(points, segments, k=1)
    assert own.to_dict() == {"S1": 1.0, "S2": 1.0} and overall == 1.0
    overall, own = neighbours_alike(points, segments, k=2)
    assert own.to_dict() == {"S1": 1.0, "S2": 0.5} and overall == pytest.approx(0.8)
