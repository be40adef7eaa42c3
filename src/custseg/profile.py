"""Who is in each learned segment, what to call them and what to do with them.

Clusters without names and profiles are the complaint against general-purpose tools: analysts
end up profiling them "in Excel". This module describes every segment with the statistics a
marketer reads (size, revenue, recency / frequency / monetary quartiles, interests, countries),
gives it a unique business name from its place among all customers and its overlap with the
named RFM segments, and writes a one-paragraph description and a recommended action.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custseg.rfm import SegmentRule

SEGMENT_COLUMNS = (
    "kind",
    "segment",
    "name",
    "customers",
    "share",
    "revenue_share",
    "median_recency_days",
    "median_frequency",
    "median_monetary",
    "q1_recency_days",
    "q3_recency_days",
    "q1_frequency",
    "q3_frequency",
    "q1_monetary",
    "q3_monetary",
    "median_tenure_days",
    "median_avg_order_value",
    "rfm_overlap",
    "top_categories",
    "main_countries",
    "description",
    "action",
)


def segment_ids(labels) -> list[str]:
    """Segment id of each label 0, 1, ...: ``S1``, ``S2``, ... (S1 has the highest mean monetary value)."""
    return [f"S{int(label) + 1}" for label in labels]


def _level(value: float, population: pd.Series, words: tuple[str, str, str]) -> str:
    low, high = population.quantile([1 / 3, 2 / 3])
    return words[0] if value <= low else words[2] if value > high else words[1]


def describe_position(members: pd.DataFrame, population: pd.DataFrame) -> dict[str, str]:
    """Where a segment's medians sit among all customers, in words (by population tertiles)."""
    return {
        "recency": _level(members.recency_days.median(), population.recency_days, ("recent", "lapsing", "lapsed")),
        "frequency": _level(members.frequency.median(), population.frequency, ("occasional", "regular", "frequent")),
        "spend": _level(
            members.monetary.median(), population.monetary, ("low spenders", "mid spenders", "big spenders")
        ),
        "tenure": _level(members.tenure_days.median(), population.tenure_days, ("new", "established", "long-standing")),
    }


def name_segments(customers: pd.DataFrame, column: str = "segment") -> dict[str, str]:
    """Give every segment a unique business name.

    The base name is the RFM segment most of its members are in ("Champions", "At Risk"). Where
    two segments share a base name, each gets the word on which it differs from the other(s):
    spend, then recency, frequency, tenure tertile ("At Risk big spenders"); when all of those
    coincide, their rank by median spend ("Champions top spenders", "Champions high spenders").

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, n_columns)
        With ``column``, rfm_segment, recency_days, frequency, monetary and tenure_days.
    column : str
        The segment column.

    Returns
    -------
    dict of str to str
        Segment id -> name.
    """
    segments = sorted(customers[column].unique(), key=_segment_order)
    base = {s: customers.loc[customers[column] == s, "rfm_segment"].mode().sort_values().iloc[0] for s in segments}
    position = {s: describe_position(customers[customers[column] == s], customers) for s in segments}
    names = dict(base)
    for name in set(base.values()):
        sharing = [s for s in segments if base[s] == name]
        if len(sharing) == 1:
            continue
        for aspect in ("spend", "recency", "frequency", "tenure"):
            words = [position[s][aspect] for s in sharing]
            if len(set(words)) == len(words):
                for s in sharing:
                    names[s] = f"{name} {position[s][aspect]}"
                break
        else:
            # The same on every tertile word: rank them by median spend instead.
            spend = {s: customers.loc[customers[column] == s, "monetary"].median() for s in sharing}
            ranked = sorted(sharing, key=lambda s: (-spend[s], _segment_order(s)))
            for rank, s in enumerate(ranked):
                names[s] = f"{name} {SPEND_RANKS[rank]}" if rank < len(SPEND_RANKS) else f"{name} ({s})"
    return names


SPEND_RANKS = ("top spenders", "high spenders", "steady spenders", "modest spenders")


def _segment_order(segment: str) -> tuple[int, str]:
    digits = "".join(ch for ch in str(segment) if ch.isdigit())
    return (int(digits) if digits else 0, str(segment))


def profile_segments(
    customers: pd.DataFrame,
    rules: Mapping[str, SegmentRule],
    category_labels: Mapping[str, str],
    column: str = "segment",
) -> pd.DataFrame:
    """Profile every learned segment.

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, n_columns)
        The customers table with the learned ``column`` and ``rfm_segment``.
    rules : mapping of str to SegmentRule
        The RFM segment map (for the recommended actions).
    category_labels : mapping of str to str
        Category id -> label (for interests).
    column : str
        The learned segment column.

    Returns
    -------
    DataFrame of shape (n_segments, len(SEGMENT_COLUMNS))
    """
    names = name_segments(customers, column)
    total_revenue = customers.monetary.sum()
    share_columns = [c for c in customers.columns if c.startswith("share_")]
    rows = []
    for segment in sorted(customers[column].unique(), key=_segment_order):
        members = customers[customers[column] == segment]
        overlap = members.rfm_segment.value_counts(normalize=True)
        interests = members[share_columns].mean().sort_values(ascending=False) if share_columns else pd.Series()
        top_categories = [
            f"{category_labels.get(c.removeprefix('share_'), c.removeprefix('share_'))} ({v:.0%})"
            for c, v in interests.head(3).items()
        ]
        countries = members.main_country.fillna("unknown").value_counts(normalize=True).head(3)
        quartiles = members[["recency_days", "frequency", "monetary"]].quantile([0.25, 0.5, 0.75])
        row = {
            "kind": "learned",
            "segment": segment,
            "name": names[segment],
            "customers": len(members),
            "share": round(len(members) / len(customers), 4),
            "revenue_share": round(float(members.monetary.sum() / total_revenue), 4) if total_revenue else 0.0,
            "median_recency_days": float(quartiles.recency_days[0.5]),
            "median_frequency": float(quartiles.frequency[0.5]),
            "median_monetary": round(float(quartiles.monetary[0.5]), 2),
            "q1_recency_days": float(quartiles.recency_days[0.25]),
            "q3_recency_days": float(quartiles.recency_days[0.75]),
            "q1_frequency": float(quartiles.frequency[0.25]),
            "q3_frequency": float(quartiles.frequency[0.75]),
            "q1_monetary": round(float(quartiles.monetary[0.25]), 2),
            "q3_monetary": round(float(quartiles.monetary[0.75]), 2),
            "median_tenure_days": float(members.tenure_days.median()),
            "median_avg_order_value": round(float(members.avg_order_value.median()), 2),
            "rfm_overlap": "; ".join(f"{name} {share:.0%}" for name, share in overlap.head(3).items()),
            "top_categories": "; ".join(top_categories),
            "main_countries": "; ".join(f"{country} {share:.0%}" for country, share in countries.items()),
        }
        position = describe_position(members, customers)
        base = overlap.index[0]
        row["description"] = _description(row, position, base, overlap.iloc[0])
        row["action"] = _action(rules.get(base), row, top_categories)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))


def exact_sizes(profiles: pd.DataFrame, customers: ir.Table, column: str = "segment") -> pd.DataFrame:
    """Give profiles read from a sample the sizes and revenue shares of all ``customers``.

    Parameters
    ----------
    profiles : DataFrame of shape (n_segments, len(SEGMENT_COLUMNS))
        From `profile_segments` on a sample.
    customers : ibis.Table
        Every customer, with ``column`` and monetary; aggregated where it is stored.
    column : str
        The learned segment column.
    """
    sizes = (
        customers.group_by(column)
        .aggregate(customers=customers.count(), revenue=customers.monetary.sum())
        .execute()
        .set_index(column)
    )
    total_customers, total_revenue = sizes.customers.sum(), sizes.revenue.sum()
    exact = profiles.copy()
    exact["customers"] = exact.segment.map(sizes.customers).fillna(0).astype(int)
    # Rounded as `profile_segments` rounds (Python's round, not numpy's).
    exact["share"] = [round(float(c / total_customers), 4) for c in exact.customers]
    revenue = exact.segment.map(sizes.revenue).fillna(0)
    exact["revenue_share"] = [round(float(r / total_revenue), 4) for r in revenue]
    return exact


def _description(row: dict, position: dict[str, str], base: str, base_share: float) -> str:
    interests = f" They buy mostly {row['top_categories'].replace('; ', ', ')}." if row["top_categories"] else ""
    return (
        f"{row['customers']:,} customers ({row['share']:.0%} of customers, {row['revenue_share']:.0%} of revenue): "
        f"{position['recency']}, {position['frequency']}, {position['spend']}, {position['tenure']} customers. "
        f"Their last order was a median {row['median_recency_days']:.0f} days ago; they placed a median "
        f"{row['median_frequency']:.0f} orders and spent a median {row['median_monetary']:,.0f} in all "
        f"({row['median_avg_order_value']:,.0f} per order). In RFM terms {base_share:.0%} are {base}."
        f"{interests} Main countries: {row['main_countries'].replace('; ', ', ')}."
    )


def _action(rule: SegmentRule | None, row: dict, top_categories: list[str]) -> str:
    action = rule.action if rule else "Test offers on a sample before a campaign."
    if top_categories:
        action += f" Lead with {top_categories[0].rsplit(' (', 1)[0]}."
    return action


def rfm_segment_rows(rfm_summary: pd.DataFrame) -> pd.DataFrame:
    """Put the RFM segment summary in the columns of `SEGMENT_COLUMNS` (kind ``rfm``)."""
    rows = rfm_summary.assign(kind="rfm", name=rfm_summary.segment)
    for column in SEGMENT_COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    return rows[list(SEGMENT_COLUMNS)]
