"""Who is in each learned segment, what to call them and what to do with them.

Clusters without names and profiles are the complaint against general-purpose tools: analysts
end up profiling them "in Excel". This module describes every segment with the statistics a
marketer reads (size, revenue, recency / frequency / monetary quartiles, interests, countries),
names a segment of rules from its rule alone (`custseg.rules.rule_names`: a name true of every
member), and clusters from where their medians stand against the shop's (recency against the shop's
own typical gap between orders, so that a grocery and a gift shop are read each on its own clock),
and writes a description and an action led by the categories the segment buys more of than the shop
does, with what such a customer was worth in the backtest.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custseg.amounts import money
from custseg.interests import interest_lead
from custseg.products import in_sentence
from custseg.rules import Condition, describe, position, rule_names, value_of

SEGMENT_COLUMNS = (
    "kind",
    "segment",
    "name",
    "rule",
    "state",
    "value",
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
    "over_indexed_categories",
    "main_countries",
    "backtest_customers",
    "backtest_return_rate",
    "backtest_mean_revenue",
    "backtest_revenue_lift",
    "description",
    "action",
)


def segment_ids(labels) -> list[str]:
    """Segment id of each label 0, 1, ...: ``S1``, ``S2``, ... (S1 has the highest mean monetary value)."""
    return [f"S{int(label) + 1}" for label in labels]


STATES = ("new", "active", "lapsing", "lapsed")
"""Where a segment stands in its customers' life with the shop (see `segment_position`)."""
VALUES = ("champions", "regulars", "big spenders", "occasional", "one-time")
"""What a segment is worth to the shop (see `segment_position`)."""
NAMES: dict[tuple[str, str], str] = {
    ("new", "champions"): "New high-value customers",
    ("new", "regulars"): "New regulars",
    ("new", "big spenders"): "New big spenders",
    ("new", "occasional"): "New repeat customers",
    ("new", "one-time"): "New customers",
    ("active", "champions"): "Champions",
    ("active", "regulars"): "Loyal regulars",
    ("active", "big spenders"): "Active big spenders",
    ("active", "occasional"): "Active occasional buyers",
    ("active", "one-time"): "Recent one-time buyers",
    ("lapsing", "champions"): "At-risk champions",
    ("lapsing", "regulars"): "At-risk regulars",
    ("lapsing", "big spenders"): "At-risk big spenders",
    ("lapsing", "occasional"): "Fading occasional buyers",
    ("lapsing", "one-time"): "Fading one-time buyers",
    ("lapsed", "champions"): "Lapsed champions",
    ("lapsed", "regulars"): "Lapsed regulars",
    ("lapsed", "big spenders"): "Lapsed big spenders",
    ("lapsed", "occasional"): "Lost occasional buyers",
    ("lapsed", "one-time"): "Lost one-time buyers",
}
"""The name of each (state, value): the table in the README."""
ACTIONS: dict[str, str] = {
    "new": "Welcome them: an onboarding series and a reason to place a second order within the shop's usual gap.",
    "active valuable": "Reward and keep them: early access, loyalty perks, ask for reviews and referrals.",
    "active": "Grow how often they buy: recommendations from their baskets and a timed offer for the next order.",
    "recent valuable": "Thank them and stay close: a personal note and a first look at what is new, before their "
    "next order is due.",
    "recent": "Give them a reason to come back while they remember the shop: a follow-up on what they bought.",
    "overdue valuable": "Reach out now, in person where it pays: they are past their usual time to reorder.",
    "overdue": "Send the reminder now: they are past their usual time to reorder; show what they usually buy.",
    "lapsing valuable": "Win them back before they go: a personal reactivation offer on what they buy.",
    "lapsing": "Remind them: popular and seasonal products with a small incentive.",
    "lapsed valuable": "One targeted win-back campaign on their favourite categories; ask what went wrong.",
    "lapsed": "Keep the cost of contact low: broad seasonal campaigns only, and stop if they do not respond.",
    "valuable": "Keep them buying: first news of new ranges and a thank-you on their next order.",
    "": "Keep in touch: the shop's regular news, and an offer on what they bought before.",
}
"""The recommended action by state, and for the valuable segments (champions, regulars, big spenders);
the last two for a segment of rules that bounds neither recency nor tenure (its state is not known)."""
REORDER_TIMING = "Time the next contact for when a customer passes 1.5 times their own usual gap between orders."
"""The timing of the action of a valuable segment that is active or of unknown state."""
NEW_TENURE_GAPS = 2
"""A segment is new when its median tenure is at most this many typical gaps between orders."""
ACTIVE_RECENCY_GAPS = 1
LAPSING_RECENCY_GAPS = 3
"""Active: median recency within one typical gap; lapsing: within three; lapsed beyond."""
MIN_CATEGORY_SUPPORT = 0.05
MIN_CATEGORY_INDEX = 1.1
"""A category leads a segment's action when it holds at least `MIN_CATEGORY_SUPPORT` of the segment's
revenue and the segment's share in it is at least `MIN_CATEGORY_INDEX` times the shop's."""


def segment_position(members: pd.DataFrame, population: pd.DataFrame, gap_days: float) -> dict[str, str]:
    """Where a segment's medians stand against the shop's.

    State: ``new`` when the median tenure is at most `NEW_TENURE_GAPS` typical gaps between orders
    (``gap_days``) and the median recency at most one, else ``active`` / ``lapsing`` / ``lapsed`` by
    the median recency (within
    `ACTIVE_RECENCY_GAPS`, within `LAPSING_RECENCY_GAPS` gaps, beyond). Value: ``one-time`` when
    the median customer placed one order; otherwise by the shop's top thirds of frequency and of
    spend: ``champions`` (both), ``regulars`` (frequency), ``big spenders`` (spend), ``occasional``.
    A grocery household 12 days out is still active; a gift-shop customer may be lapsing.
    """
    recency, tenure = members.recency_days.median(), members.tenure_days.median()
    if tenure <= NEW_TENURE_GAPS * gap_days and recency <= ACTIVE_RECENCY_GAPS * gap_days:
        state = "new"
    elif recency <= ACTIVE_RECENCY_GAPS * gap_days:
        state = "active"
    elif recency <= LAPSING_RECENCY_GAPS * gap_days:
        state = "lapsing"
    else:
        state = "lapsed"
    frequency, spend = members.frequency.median(), members.monetary.median()
    value = value_of(
        one_order=frequency <= 1,
        frequent=frequency > population.frequency.quantile(2 / 3),
        big=spend > population.monetary.quantile(2 / 3),
    )
    return {"state": state, "value": value or "occasional"}


RANK_WORDS = {
    "monetary": ("top spenders", "high spenders", "mid spenders", "low spenders"),
    "recency_days": ("most recent", "recent", "less recent", "least recent"),
    "frequency": ("most frequent", "frequent", "less frequent", "least frequent"),
    "tenure_days": ("longest-standing", "long-standing", "newer", "newest"),
}
PAIR_WORDS = {
    "monetary": ("higher spenders", "lower spenders"),
    "recency_days": ("more recent", "less recent"),
    "frequency": ("more frequent", "less frequent"),
    "tenure_days": ("longer-standing", "newer"),
}
"""Qualifiers of segments that share a name, by their rank on the aspect that differs most."""


def name_segments(customers: pd.DataFrame, gap_days: float, column: str = "segment") -> dict[str, str]:
    """Give every segment a unique name from where it stands (`segment_position`, the `NAMES` table).

    Segments that share a name are told apart by the aspect on which their medians differ most
    (spend, recency, frequency or tenure, on a log scale), ranked on it: "Lost one-time buyers
    (more recent)", "Lost one-time buyers (less recent)".

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, n_columns)
        With ``column``, recency_days, frequency, monetary and tenure_days.
    gap_days : float
        The shop's typical days between orders (`custseg.features.typical_gap_days`).
    column : str
        The segment column.

    Returns
    -------
    dict of str to str
        Segment id -> name.
    """
    segments = sorted(customers[column].unique(), key=_segment_order)
    groups = {s: customers[customers[column] == s] for s in segments}
    base = {s: NAMES[tuple(segment_position(groups[s], customers, gap_days).values())] for s in segments}
    names = dict(base)
    for name in set(base.values()):
        sharing = [s for s in segments if base[s] == name]
        if len(sharing) == 1:
            continue
        medians = pd.DataFrame({s: np.log1p(groups[s][list(RANK_WORDS)].median().clip(lower=0)) for s in sharing}).T
        aspect = (medians.max() - medians.min()).idxmax()
        ascending = aspect == "recency_days"
        ranked = medians[aspect].sort_values(ascending=ascending, kind="mergesort").index
        words = PAIR_WORDS[aspect] if len(ranked) == 2 else RANK_WORDS[aspect]
        for rank, s in enumerate(ranked):
            names[s] = f"{name} ({words[rank]})" if rank < len(words) else f"{name} ({s})"
    return names


def _segment_order(segment: str) -> tuple[int, str]:
    digits = "".join(ch for ch in str(segment) if ch.isdigit())
    return (int(digits) if digits else 0, str(segment))


def over_indexed(members: pd.DataFrame, population: pd.DataFrame, labels: Mapping[str, str]) -> list[tuple[str, float]]:
    """Categories a segment buys more of than the shop does: (label, index), highest index first.

    Index = the category's share of the segment's revenue over its share of the shop's revenue;
    only categories holding at least `MIN_CATEGORY_SUPPORT` of the segment's revenue, with an
    index of at least `MIN_CATEGORY_INDEX`.
    """
    shares = [c for c in members.columns if c.startswith("share_")]
    if not shares:
        return []

    def revenue_shares(frame: pd.DataFrame) -> pd.Series:
        spend = frame.monetary.clip(lower=0).to_numpy(dtype=float)
        revenue = (frame[shares].fillna(0.0).to_numpy(dtype=float) * spend[:, None]).sum(axis=0)
        total = revenue.sum()
        return pd.Series(revenue / total if total > 0 else revenue, index=shares)

    own, shop = revenue_shares(members), revenue_shares(population)
    index = (own / shop.where(shop > 0)).where(own >= MIN_CATEGORY_SUPPORT).dropna()
    index = index[index >= MIN_CATEGORY_INDEX].sort_values(ascending=False, kind="mergesort")
    return [
        (labels.get(c.removeprefix("share_"), c.removeprefix("share_")), round(float(v), 2)) for c, v in index.items()
    ]


def profile_segments(
    customers: pd.DataFrame,
    category_labels: Mapping[str, str],
    *,
    gap_days: float,
    worth: pd.DataFrame | None = None,
    horizon_days: int = 90,
    column: str = "segment",
    rules: list[list[Condition]] | None = None,
    names: Mapping[str, str] | None = None,
    interest_groups: pd.DataFrame | None = None,
    currency: str | None = None,
) -> pd.DataFrame:
    """Profile every learned segment: size, quartiles, interests, name, rule, description and action.

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, n_columns)
        The customers table with the learned ``column`` and ``rfm_segment``.
    category_labels : mapping of str to str
        Category id -> label (for interests).
    gap_days : float
        The shop's typical days between orders (for the names, `segment_position`).
    worth : DataFrame or None
        `custseg.backtest.segment_outcomes` of these segments on the backtest customers: what a
        customer of each segment did in the backtest's ``horizon_days``. None without a backtest.
    horizon_days : int
        The backtest's horizon, for the wording.
    column : str
        The learned segment column.
    rules : list of list of Condition, optional
        Each segment's rule (segment ``S1`` first), when the segments are rules
        (`custseg.rules.RuleTree`): names, state and value then come from the rule, true of every
        member, and the rule leads the description and the action.
    names : mapping of str to str, optional
        Segment id -> name, to keep the names of segments kept from an earlier run.
    interest_groups : DataFrame, optional
        `custseg.interests.describe_groups` of the ``interest_group`` column: the action leads with
        what the members' interest groups buy, timed to when they buy (`custseg.interests.interest_lead`).
    currency : str, optional
        The ISO 4217 code of the amounts, written with every amount of a rule, name, description and action.

    Returns
    -------
    DataFrame of shape (n_segments, len(SEGMENT_COLUMNS))
    """
    levels = {
        "frequent_from": customers.frequency.quantile(2 / 3),
        "big_from": customers.monetary.quantile(2 / 3),
        "small_from": customers.monetary.quantile(1 / 3),
    }
    if names is None and rules is not None:
        names = dict(
            zip(segment_ids(range(len(rules))), rule_names(rules, gap_days, **levels, currency=currency), strict=True)
        )
    elif names is None:
        names = name_segments(customers, gap_days, column)
    total_revenue = customers.monetary.sum()
    share_columns = [c for c in customers.columns if c.startswith("share_")]
    worth = worth.set_index("segment") if worth is not None else None
    rows = []
    segments = set(customers[column].unique())
    if rules is not None:
        # A rule no customer satisfies today (a kept segment, say no one new this month) is still a segment.
        segments |= set(segment_ids(range(len(rules))))
    for segment in sorted(segments, key=_segment_order):
        members = customers[customers[column] == segment]
        overlap = members.rfm_segment.value_counts(normalize=True)
        interests = (
            members[share_columns].mean().sort_values(ascending=False)
            if share_columns and len(members)
            else pd.Series(dtype=float)
        )
        top_categories = [
            f"{category_labels.get(c.removeprefix('share_'), c.removeprefix('share_'))} ({v:.0%})"
            for c, v in interests.head(3).items()
        ]
        leading = over_indexed(members, customers, category_labels)
        countries = members.main_country.fillna("unknown").value_counts(normalize=True).head(3)
        quartiles = members[["recency_days", "frequency", "monetary"]].quantile([0.25, 0.5, 0.75])
        if rules is not None:
            rule = rules[int(segment[1:]) - 1]
            state, value = position(rule, gap_days, **levels)
            position_of = {"state": state or "", "value": value or ""}
        else:
            rule, position_of = None, segment_position(members, customers, gap_days)
        row = {
            "kind": "learned",
            "segment": segment,
            "name": names[segment],
            "rule": describe(rule, currency) if rule is not None else "",
            "state": position_of["state"],
            "value": position_of["value"],
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
            "over_indexed_categories": "; ".join(f"{label} ({index:.1f}x)" for label, index in leading[:3]),
            "main_countries": "; ".join(f"{country} {share:.0%}" for country, share in countries.items()),
            "backtest_customers": np.nan,
            "backtest_return_rate": np.nan,
            "backtest_mean_revenue": np.nan,
            "backtest_revenue_lift": np.nan,
        }
        if worth is not None and segment in worth.index:
            seen = worth.loc[segment]
            row.update(
                backtest_customers=int(seen.customers),
                backtest_return_rate=float(seen.return_rate),
                backtest_mean_revenue=float(seen.mean_revenue),
                backtest_revenue_lift=float(seen.revenue_lift),
            )
        row["description"] = _description(row, gap_days, currency)
        row["action"] = _action(
            row, leading, interests, category_labels, horizon_days, interest_lead(members, interest_groups), currency
        )
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


def _description(row: dict, gap_days: float, currency: str | None) -> str:
    if not row["customers"]:
        return f"Customers with {row['rule']}: none as of the reference date."
    interests = f" They buy mostly {row['top_categories'].replace('; ', ', ')}." if row["top_categories"] else ""
    gaps = row["median_recency_days"] / gap_days
    standing = " ".join(word for word in (row["state"], row["value"]) if word)
    who = f"Customers with {row['rule']}: " if row["rule"] else ""
    return (
        f"{who}{row['customers']:,} customers ({row['share']:.0%} of customers, {row['revenue_share']:.0%} of "
        f"revenue){', ' + standing if standing else ''}. Their last order was a median "
        f"{row['median_recency_days']:.0f} days ago "
        f"({gaps:.1f} times the shop's typical {gap_days:.0f} days between orders), their first "
        f"{row['median_tenure_days']:.0f} days ago; they placed a median {row['median_frequency']:.0f} orders and "
        f"spent a median {money(row['median_monetary'], currency)} in all "
        f"({money(row['median_avg_order_value'], currency)} per order)."
        f"{interests} Main countries: {row['main_countries'].replace('; ', ', ')}."
    )


def _action(
    row: dict,
    leading: list[tuple[str, float]],
    interests: pd.Series,
    labels,
    horizon_days: int,
    lead: str | None,
    currency: str | None,
) -> str:
    valuable = row["value"] in ("champions", "regulars", "big spenders")
    key = row["state"] if row["state"] == "new" or not valuable else f"{row['state']} valuable".strip()
    action = ACTIONS[key]
    if row["rule"]:
        # The rule says for whom, so that no two segments share their first sentence.
        action = f"For customers with {row['rule']}: {action[0].lower()}{action[1:]}"
    if row["value"] in ("champions", "regulars", "repeat") and row["state"] in ("active", ""):
        action += f" {REORDER_TIMING}"
    if lead:
        action += f" {lead}"
    elif leading:
        label, index = leading[0]
        action += f" Lead with {in_sentence(label)} ({index:.1f}x the shop's share of their revenue)."
    elif len(interests):
        top = interests.index[0].removeprefix("share_")
        action += f" Lead with {in_sentence(labels.get(top, top))}, their biggest category."
    if row["backtest_return_rate"] == row["backtest_return_rate"]:
        action += (
            f" In the backtest, {row['backtest_return_rate']:.0%} of such customers ordered within {horizon_days} "
            f"days, spending a mean {money(row['backtest_mean_revenue'], currency)} "
            f"({row['backtest_revenue_lift']:.1f}x the average customer)."
        )
    return action


SNAKE_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days")
"""The features of a segment's snake profile, before its interest shares."""


def standardised_means(customers: pd.DataFrame, column: str = "segment") -> pd.DataFrame:
    """Each segment's mean of the log features and the interest shares, in standard deviations from all customers.

    Returns
    -------
    DataFrame of shape (n_segments, 4 + n_categories)
        Indexed by segment: `SNAKE_FEATURES` (log1p) then the ``share_*`` columns.
    """
    shares = [c for c in customers.columns if c.startswith("share_")]
    logged = np.log1p(customers[list(SNAKE_FEATURES)].clip(lower=0).astype(float))
    values = pd.concat([logged, customers[shares].astype(float).fillna(0.0)], axis=1)
    standardised = (values - values.mean()) / values.std(ddof=0).replace(0, 1)
    return standardised.groupby(customers[column]).mean()


def neighbours_alike(points: np.ndarray, segments: np.ndarray, k: int = 10) -> tuple[float, pd.Series]:
    """Share of each customer's k nearest neighbours in the same segment: overall, and per segment.

    How well the segments hold together on a map (points of shape (n_customers, 2)).
    """
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(points) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    alike = (segments[index[:, 1:]] == segments[:, None]).mean(axis=1)
    return float(alike.mean()), pd.Series(alike).groupby(segments).mean()


def rfm_segment_rows(rfm_summary: pd.DataFrame) -> pd.DataFrame:
    """Put the RFM segment summary in the columns of `SEGMENT_COLUMNS` (kind ``rfm``)."""
    rows = rfm_summary.assign(kind="rfm", name=rfm_summary.segment)
    for column in SEGMENT_COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    return rows[list(SEGMENT_COLUMNS)]


# -- per segment ----------------------------------------------------------------------------------


def segment_value_columns(columns: dict[str, str]) -> list[str]:
    """Columns segments.csv gains for the value of the next H days (``columns``: `custseg.value.value_columns`).

    The mean chance of ordering again, orders and revenue per customer, the segment's total with
    its interval (``_low``, ``_high``: `custseg.forward.LEVEL`, from the forward checks), and the
    revenue the backtest predicted per customer.
    """
    total = f"{columns['expected_revenue']}_total"
    return [*columns.values(), total, f"{total}_low", f"{total}_high", "backtest_predicted_revenue"]


def segment_value(customers: ir.Table, column: str, columns: dict[str, str]) -> ir.Table:
    """Each segment's expected value over the next H days, aggregated in the engine.

    Returns
    -------
    ibis.Table of shape (n_segments, 5)
        segment; the mean p_order_again, expected orders and expected revenue per customer; and
        the expected revenue of the whole segment (``<expected_revenue column>_total``).
    """
    segmented = customers.filter(customers[column].notnull())
    revenue = columns["expected_revenue"]
    return (
        segmented.group_by(segment=segmented[column])
        .aggregate(
            **{name: segmented[name].mean() for name in columns.values()},
            **{f"{revenue}_total": segmented[revenue].sum()},
        )
        .order_by("segment")
    )


def segment_table_with_value(
    table: pd.DataFrame,
    expected: dict[str, pd.DataFrame] | None,
    calibrated: dict[str, pd.DataFrame] | None,
    columns: dict[str, str],
) -> pd.DataFrame:
    """Add the expected value of each segment, and its backtest check, to the segments table.

    Parameters
    ----------
    table : DataFrame
        segments.csv rows (kind ``learned`` or ``rfm``, `custseg.profile.SEGMENT_COLUMNS`).
    expected : dict of str to DataFrame, or None
        Per kind, `segment_value` as of T (None: the value columns stay empty).
    calibrated : dict of str to DataFrame, or None
        Per kind, `calibration` of the backtest customers by their segment as of T - H: the
        predicted mean revenue becomes ``backtest_predicted_revenue``, beside the actual
        ``backtest_mean_revenue`` (filled in for the RFM rows too).
    columns : dict of str to str
        `value_columns` of the horizon.

    Returns
    -------
    DataFrame
        ``table`` with the value columns before description and action.
    """
    result = table.copy()
    for column in segment_value_columns(columns):
        result[column] = np.nan
    for kind, frame in (expected or {}).items():
        rows = result.kind == kind
        values = frame.set_index("segment")
        for column in values.columns:
            result.loc[rows, column] = result.loc[rows, "segment"].map(values[column]).to_numpy(dtype=float)
    check = {
        "backtest_predicted_revenue": "predicted_mean",
        "backtest_customers": "customers",
        "backtest_return_rate": "ordered_again",
        "backtest_mean_revenue": "actual_mean",
    }
    for kind, frame in (calibrated or {}).items():
        if kind == "deciles":
            continue
        rows = result.kind == kind
        values = frame.set_index("group")
        for column, source in check.items():
            mapped = result.loc[rows, "segment"].map(values[source]).to_numpy(dtype=float)
            result.loc[rows, column] = result.loc[rows, column].fillna(pd.Series(mapped, index=result.index[rows]))
    last = [c for c in ("description", "action") if c in result.columns]
    return result[[c for c in result.columns if c not in last] + last]
