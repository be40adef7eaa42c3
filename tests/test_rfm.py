from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from custseg.errors import ConfigError
from custseg.rfm import (
    ALL_CODES,
    RF_GRID_SEGMENTS,
    RFM_SEGMENTS,
    RFMOptions,
    RFMScorer,
    SegmentRule,
    code_map,
    cut_points,
    quantile_positions,
    segment_summary,
    to_five_point,
)
from custseg.settings import load_settings


def customers(recency, frequency, monetary):
    n = len(recency)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": [float(m) for m in monetary],
        }
    )


def score(frame, scorer=None):
    scorer = scorer or RFMScorer().fit(frame)
    return scorer.transform(ibis.memtable(frame)).order_by("customer_id").to_pandas(), scorer


def test_default_map_is_a_partition_of_the_125_codes_into_11_segments():
    mapping = code_map(RFM_SEGMENTS)
    assert sorted(mapping) == sorted(ALL_CODES) and len(mapping) == 125
    assert set(mapping.values()) == {rule.name for rule in RFM_SEGMENTS}
    assert len(set(mapping.values())) == 11
    assert mapping["555"] == "Champions"
    assert mapping["155"] == "Can't Lose Them"
    assert mapping["511"] == "Recent Customers"
    assert mapping["111"] == "Lost"


def test_rf_grid_has_10_cells_and_ignores_monetary():
    mapping = code_map(RF_GRID_SEGMENTS)
    assert len(set(mapping.values())) == 10
    for r in "12345":
        for f in "12345":
            assert len({mapping[r + f + m] for m in "12345"}) == 1


def test_cut_points_are_quantiles_and_scores_follow_them():
    frame = customers(range(10), range(1, 11), range(10, 110, 10))
    assert cut_points(frame.frequency.to_numpy(), 5) == [2.0, 4.0, 6.0, 8.0]
    scored, scorer = score(frame)
    assert scored.f_score.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # recency is reversed: the most recent customers get 5
    assert scored.r_score.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert scored.rfm_code.tolist()[0] == "511"
    assert scorer.cut_points_["recency"] == [1.0, 3.0, 5.0, 7.0]


def test_equal_values_always_get_the_same_score():
    frame = customers([5] * 6, [1, 1, 1, 1, 2, 9], [10] * 6)
    scored, _ = score(frame)
    assert scored.f_score.tolist()[:4] == [1, 1, 1, 1]
    assert scored.r_score.nunique() == 1


def test_new_customers_are_scored_with_the_stored_cut_points():
    _, scorer = score(customers(range(10), range(1, 11), range(10, 110, 10)))
    new, _ = score(customers([0, 100], [50, 1], [1000.0, 1.0]), scorer)
    assert new.rfm_code.tolist() == ["555", "111"]
    assert new.rfm_segment.tolist() == ["Champions", "Lost"]


def test_three_bins_and_custom_cut_points():
    frame = customers([0, 10, 400], [1, 3, 9], [5, 50, 500])
    scorer = RFMScorer(bins=3, cuts={"recency": [30, 180], "frequency": [1, 4]}).fit(frame)
    scored, _ = score(frame, scorer)
    assert scored.r_score.tolist() == [3, 3, 1]
    assert scored.f_score.tolist() == [1, 2, 3]
    assert scored.m_score.tolist() == [1, 2, 3]
    assert scored.rfm_code.tolist() == ["511", "533", "155"]
    assert [to_five_point(s, 3) for s in (1, 2, 3)] == [1, 3, 5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bins": 6}, "bins=6 must be 3, 4 or 5"),
        ({"cuts": {"recency": [10, 5, 20, 30]}}, r"recency_cuts=\[10.0, 5.0, 20.0, 30.0\] must be 4 ascending"),
        ({"rules": [SegmentRule("All but 111", ("(?!111)...",), "", "")]}, "leaves 1 code"),
    ],
)
def test_bad_rfm_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RFMScorer(**kwargs).fit(customers([1, 2], [1, 2], [1, 2]))


def test_user_map_from_custseg_toml(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text(
        '[rfm]\nsegment_map = "custom"\n'
        '[[rfm.segments]]\nname = "Best"\ncodes = ["5.."]\naction = "Thank them"\n'
        '[[rfm.segments]]\nname = "Rest"\ncodes = ["[1-4].."]\n'
    )
    options = load_settings(config).rfm
    scored, _ = score(
        customers(range(10), range(1, 11), range(10)),
        RFMScorer.from_options(options).fit(customers(range(10), range(1, 11), range(10))),
    )
    assert set(scored.rfm_segment) == {"Best", "Rest"}
    config.write_text('[rfm]\nsegment_map = "custom"\n[[rfm.segments]]\nname = "Only"\ncodes = ["5.."]\n')
    with pytest.raises(ConfigError, match="leaves 100 code"):
        RFMScorer.from_options(load_settings(config).rfm).fit(customers([1], [1], [1]))
    with pytest.raises(ConfigError, match="segment_map='x' must be one of"):
        RFMOptions(segment_map="x").rules()


def test_segment_summary_lists_every_segment_with_shares():
    frame = customers([1, 2, 300], [10, 8, 1], [100, 300, 100])
    frame["rfm_segment"] = ["Champions", "Champions", "Lost"]
    table = segment_summary(frame, {rule.name: rule for rule in RFM_SEGMENTS})
    assert len(table) == 11
    row = table.set_index("segment").loc["Champions"]
    assert (row.customers, row.share, row.revenue_share, row.median_monetary) == (2, 0.6667, 0.8, 200.0)
    assert table.set_index("segment").loc["At Risk"].customers == 0


def test_cut_points_in_the_engine_are_numpys():
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 10, 99, 100, 101, 997, 1000, 4324]:
        for bins in (3, 4, 5):
            assert (
                quantile_positions(n, bins).tolist()
                == np.quantile(np.arange(n), np.arange(1, bins) / bins, method="inverted_cdf").astype(int).tolist()
            ), (n, bins)
    values = np.round(rng.lognormal(5, 2, 1001), 2)
    values[::7] = values[3]  # ties
    table = ibis.memtable(pd.DataFrame({"monetary": values, "frequency": rng.integers(1, 30, 1001)}))
    for column in ("monetary", "frequency"):
        for bins in (3, 4, 5):
            assert cut_points(table[column], bins) == cut_points(table[column].execute().to_numpy(), bins)
