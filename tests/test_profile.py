from __future__ import annotations

import pandas as pd

from custseg.profile import name_segments, profile_segments
from custseg.rfm import RFM_SEGMENTS


def customers():
    rows = []

    def add(segment, rfm, n, recency, frequency, monetary, tenure):
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
                    "share_c01": 0.7,
                    "share_c02": 0.3,
                }
            )

    add("S1", "Champions", 10, 5, 20, 5000, 360)
    add("S2", "At Risk", 10, 200, 6, 3000, 350)
    add("S3", "At Risk", 10, 220, 3, 200, 340)
    add("S4", "Lost", 10, 330, 1, 90, 330)
    return pd.DataFrame(rows)


def test_names_come_from_rfm_overlap_and_are_made_unique():
    names = name_segments(customers())
    assert (names["S1"], names["S4"]) == ("Champions", "Lost")
    # both S2 and S3 are mostly "At Risk": each gets the first word on which they differ
    assert names["S2"] == "At Risk recent" and names["S3"] == "At Risk lapsing"
    assert len(set(names.values())) == 4


def test_profiles_have_sizes_shares_quartiles_interests_and_actions():
    profiles = profile_segments(customers(), {r.name: r for r in RFM_SEGMENTS}, {"c01": "bags", "c02": "cards"})
    row = profiles.set_index("segment").loc["S1"]
    assert (row.customers, row.share) == (10, 0.25)
    assert row.median_recency_days == 5 and row.median_frequency == 20
    assert row.q1_monetary < row.median_monetary < row.q3_monetary
    assert row.top_categories == "bags (70%); cards (30%)"
    assert row.rfm_overlap == "Champions 100%"
    assert "10 customers (25% of customers" in row.description
    assert row.action.startswith("Reward them") and row.action.endswith("Lead with bags.")
    assert profiles.revenue_share.sum() == 1.0 or abs(profiles.revenue_share.sum() - 1) < 0.001


def test_segments_alike_on_every_tertile_are_ranked_by_spend():
    data = customers()
    data.loc[data.segment == "S3", ["monetary", "recency_days", "frequency", "tenure_days"]] = [3500.0, 200, 6, 350]
    names = name_segments(data)
    assert (names["S2"], names["S3"]) == ("At Risk high spenders", "At Risk top spenders")
