"""Customer interest groups: customers grouped by what they buy and how, certified by what they buy next.

A marketer's second question after "who is worth what" is "who wants what": which customers decorate
for Christmas, which bake, which buy party supplies by the box. Customers are grouped by their mix of
product categories (each category's share of their revenue) and by how they buy (lines per order,
units per line, price per unit, and when in the year). A grouping is kept only if it tells what
customers buy next: on the backtest, a customer's group as of T - H must predict the category mix of
what they bought in the last H days better than the shop's average mix, out of fold.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.features import SHARE_PREFIX, AsOf, customer_interests, interest_columns, lines_before
from custseg.products import UNKNOWN, in_sentence, unique_labels
from custseg.record.interests import InterestsSection
from custseg.schema import exact_sum

INTEREST_COLUMNS = ("interest_group", "interest_group_name")
"""The columns a customer gets: the group's id (``I1``, the largest first when learned) and its name."""

QUARTERS = ("q1", "q2", "q3", "q4")
QUARTER_MONTHS = {
    "q1": "January to March",
    "q2": "April to June",
    "q3": "July to September",
    "q4": "October to December",
}
CONTACT_FROM = {"q1": "December", "q2": "March", "q3": "June", "q4": "September"}
"""The month before each quarter: when a group that buys mostly in it is contacted."""
HABIT_COLUMNS = ("lines_per_order", "units_per_line", "price_per_unit", *(f"revenue_share_{q}" for q in QUARTERS))
"""How a customer buys: basket size, wholesale-size quantities, price level, and when in the year (each
quarter's share of their revenue)."""
LOGGED_HABITS = ("lines_per_order", "units_per_line", "price_per_unit")

SMOOTHING = 1.0
"""Pseudo-customers of the shop's mix added to each group's mix when it predicts (a small group's
mix is pulled towards the shop's)."""

GROUP_RANGE = (2, 12)
"""The numbers of groups tried."""

ENOUGH_GAIN = 0.9
"""The fewest groups that reach this share of the largest reduction in cross-entropy are chosen. At
0.8, the simulated shops of seeds 0 and 1 (customers of seven planted tastes) got 2 groups, 13.6%
and 13.0% better than the shop's mix where 5 do 16.4% and 16.0%; at 0.9 they get those 5, and the
UCI file 8 groups (3.9%) instead of 6 (3.4%)."""

MIN_REDUCTION = 0.01
"""Groups are kept only when they predict the next mix at least this much better than the shop's mix
(a smaller reduction is within what chance gives a few thousand customers)."""

MIN_LEAD_SHARE = 0.1
"""A category names a group when it holds at least this share of the group's mean mix ..."""
MIN_LEAD_INDEX = 1.5
"""... and the group's share is at least this many times the shop's, as for a habit (`HABIT_RATIO`).
At 1.3, two groups of the UCI file were both named for bags, at 1.4 and 4.9 times the shop's share:
a marketer could not tell the group that buys bags from one that buys a little more of them."""

HABIT_RATIO = 1.5
"""A habit names a group when the group's median is this many times the shop's median (or 1 / it)."""


def buying_habits(lines: ir.Table, as_of: AsOf) -> ir.Table:
    """How each customer buys, from their lines before ``as_of``.

    Returns
    -------
    ibis.Table of shape (n_customers, 8)
        customer_id and `HABIT_COLUMNS`: lines per order, units per line, price per unit (revenue
        over units, in the log's currency) and each quarter's share of the customer's revenue.
    """
    before = lines_before(lines, as_of)
    before = before.filter(before.net_revenue > 0)
    quarter = before.invoiced_at.quarter()
    sums = before.group_by("customer_id").aggregate(
        n_lines=before.count(),
        n_orders=before.invoice_id.nunique(),
        units=exact_sum(before.net_quantity),
        revenue=exact_sum(before.net_revenue),
        **{q: exact_sum(ibis.cases((quarter == i + 1, before.net_revenue), else_=0.0)) for i, q in enumerate(QUARTERS)},
    )
    return sums.select(
        "customer_id",
        lines_per_order=(sums.n_lines / sums.n_orders).cast(dt.float64),
        units_per_line=(sums.units / sums.n_lines).cast(dt.float64),
        price_per_unit=(sums.revenue / sums.units).cast(dt.float64),
        **{f"revenue_share_{q}": (sums[q] / sums.revenue).cast(dt.float64) for q in QUARTERS},
    )


def next_mix(
    lines: ir.Table, products: ir.Table, categories: list[str], start: datetime.datetime, end: datetime.datetime
) -> ir.Table:
    """Each customer's category mix of what they bought in [start, end): ``share_*`` columns.

    Only customers with positive net revenue in the window.
    """
    inside = lines.filter(lines.invoiced_at >= ibis.timestamp(start))
    return customer_interests(inside, products, categories, end).drop("dominant_category", "breadth")


class InterestGroups(BaseEstimator):
    """Group customers by their category mix (k-means on the square roots of their shares).

    On square roots, distances between mixes are Hellinger distances: a category a customer buys a
    little of counts, not only their main one. A customer's weight in `fit` (`mix_weights`) says
    how much their mix counts. Groups are numbered by size, the largest first.
    Buying habits are not part of the distance: on the UCI backtest, adding them (scaled to their
    interquartile range, at weights 0.05 to 0.5) made the groups predict the next mix worse
    (reduction 3.6% -> 2.9% to 0.1% with 8 groups); they describe and name the groups instead.
    Refining the groups by cross-entropy (each customer to the group whose mix gives theirs the
    lowest, until none moves) did better on the UCI backtest and worse on simulated shops at every
    number of groups (docs/segments.md, "Interest groups").

    Parameters
    ----------
    n_groups : int, default 6
        Number of groups.
    random_state : int, default 0
        Seed of k-means' initialisation.

    Attributes
    ----------
    share_columns_ : list of str
        The ``share_*`` columns read, in order.
    centres_ : ndarray of shape (n_groups, n_categories)
        Each group's centre, on square roots of the shares.
    """

    def __init__(self, *, n_groups: int = 6, random_state: int = 0) -> None:
        self.n_groups = n_groups
        self.random_state = random_state

    def fit(self, customers: pd.DataFrame, y=None, sample_weight: np.ndarray | None = None) -> InterestGroups:
        """Learn the groups of ``customers`` (its ``share_*`` columns).

        ``sample_weight`` (shape (n_customers,), None: equal) is how much each customer's mix
        counts in placing the groups (`mix_weights`).
        """
        self.share_columns_ = share_columns(customers)
        kmeans = KMeans(self.n_groups, n_init=4, random_state=self.random_state).fit(
            self._points(customers), sample_weight=sample_weight
        )
        by_size = np.argsort(-np.bincount(kmeans.labels_, minlength=self.n_groups), kind="stable")
        self.centres_ = kmeans.cluster_centers_[by_size]
        return self

    def predict(self, customers: pd.DataFrame) -> np.ndarray:
        """Return each customer's group (0 = the largest when fitted), shape (n_customers,)."""
        check_is_fitted(self, "centres_")
        points = self._points(customers)
        distances = ((points[:, None, :] - self.centres_[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def state(self) -> dict[str, Any]:
        """Return what a model folder keeps (JSON): the share columns and the centres."""
        check_is_fitted(self, "centres_")
        return {"share_columns": self.share_columns_, "centres": np.round(self.centres_, 9).tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> InterestGroups:
        """Rebuild fitted groups from `state`."""
        groups = cls(n_groups=len(state["centres"]))
        groups.share_columns_ = list(state["share_columns"])
        groups.centres_ = np.asarray(state["centres"], dtype=float)
        return groups

    def _points(self, customers: pd.DataFrame) -> np.ndarray:
        shares = customers.reindex(columns=self.share_columns_).astype(float).fillna(0.0).to_numpy()
        return np.sqrt(np.clip(shares, 0, 1))


def mix_weights(customers: pd.DataFrame) -> np.ndarray:
    """Return how much each customer's mix counts in placing the groups: log(1 + lines), shape (n_customers,).

    A mix read from many lines is surer than one from a single basket, but the largest buyers must
    not place the groups alone. Against equal weights, on the UCI backtest and the simulated shops
    of seeds 0 and 1, the groups predicted the next mix better at 30 of the 33 numbers of groups
    from 2 to 12, as well at 2 and worse at 1, by 0.04 points (UCI: 3.9% against 3.6% better than
    the shop's mix with 8 groups; simulated: 16.4% against 14.5% and 16.0% against 13.4% with 5).
    Weights of the square root of the lines did about as well, the lines themselves worse on a
    simulated shop (3.3% against 13.6% with 2 groups).
    """
    return np.log1p(customers["lines"].to_numpy(dtype=float))


def share_columns(customers: pd.DataFrame) -> list[str]:
    """Return the category share columns of a customer table (``share_c01``, ...), in order."""
    return [c for c in customers.columns if c.startswith(SHARE_PREFIX)]


def interest_batch(customers: pd.DataFrame, model: InterestGroups, names: dict[str, str]) -> pd.DataFrame:
    """Return customer_id and `INTEREST_COLUMNS` of a batch of customers (``share_*`` columns)."""
    ids = [f"I{g + 1}" for g in model.predict(customers)] if len(customers) else []
    return pd.DataFrame(
        {
            "customer_id": customers.customer_id.to_numpy(),
            "interest_group": ids,
            "interest_group_name": [names[i] for i in ids],
        }
    )


def cross_entropy(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Cross-entropy of each actual mix under its predicted mix (nats), shape (n_customers,)."""
    return -(actual * np.log(np.clip(predicted, 1e-9, None))).sum(axis=1)


@dataclass(frozen=True)
class MixScores:
    """Out-of-fold mean cross-entropy (nats) of the next mix: by group, by the shop's mix, by the own past mix."""

    groups: float
    shop: float
    own_past: float

    @property
    def gain(self) -> float:
        """How much lower the groups' cross-entropy is than the shop's mix's, as a share of it."""
        return (self.shop - self.groups) / self.shop if self.shop > 0 else 0.0


def next_mix_scores(groups: np.ndarray, past: np.ndarray, actual: np.ndarray, folds: np.ndarray) -> MixScores:
    """Score how well groups predict the next category mix, out of fold.

    Each customer's predicted mix is the mean next mix of the other folds' customers of their group,
    with `SMOOTHING` pseudo-customers of those folds' shop mix. The own-past ceiling predicts each
    customer's next mix from their own past mix, blended with the shop's mix at the weight that
    scores best on the other folds.

    Parameters
    ----------
    groups : ndarray of shape (n_customers,)
        Group of each customer as of T - H.
    past, actual : ndarray of shape (n_customers, n_categories)
        Category mix before T - H and in the H days after (rows sum to 1).
    folds : ndarray of shape (n_customers,)
        Fold of each customer.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    by_group = np.zeros_like(actual)
    by_shop = np.zeros_like(actual)
    by_own = np.zeros_like(actual)
    blends = np.linspace(0.1, 0.9, 9)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        shop = actual[train].mean(axis=0)
        sums = np.zeros((n_groups, actual.shape[1]))
        np.add.at(sums, groups[train], actual[train])
        counts = np.bincount(groups[train], minlength=n_groups)[:, None]
        mixes = (sums + SMOOTHING * shop) / (counts + SMOOTHING)
        by_group[test] = mixes[groups[test]]
        by_shop[test] = shop
        blend = min(blends, key=lambda w: cross_entropy(actual[train], w * past[train] + (1 - w) * shop).mean())
        by_own[test] = blend * past[test] + (1 - blend) * shop
    return MixScores(
        groups=float(cross_entropy(actual, by_group).mean()),
        shop=float(cross_entropy(actual, by_shop).mean()),
        own_past=float(cross_entropy(actual, by_own).mean()),
    )


@dataclass(frozen=True)
class Choice:
    """The chosen grouping, its scores and every number of groups tried.

    ``model`` and ``scores`` are None when no number of groups predicts the next mix `MIN_REDUCTION`
    better than the shop's average mix: the groups would not tell what customers buy.
    """

    model: InterestGroups | None
    scores: MixScores | None
    candidates: pd.DataFrame


def choose_groups(
    customers: pd.DataFrame, actual: np.ndarray, scored: np.ndarray, folds: np.ndarray, *, seed: int = 0
) -> Choice:
    """Choose the number of groups by how well the groups predict the next category mix.

    For every number in `GROUP_RANGE`, groups are learned on all backtest customers as of T - H
    (the grouping does not see what they did next), and scored by `next_mix_scores` on those who
    bought in the H days after. The fewest groups reaching `ENOUGH_GAIN` of the largest reduction
    are chosen; none when no reduction reaches `MIN_REDUCTION`.

    Parameters
    ----------
    customers : DataFrame of shape (n_customers, ...)
        The backtest customers as of T - H, with ``share_*`` columns.
    actual : ndarray of shape (n_scored, n_categories)
        The next mix of the customers who bought in the H days after T - H.
    scored : ndarray of shape (n_scored,)
        Their rows in ``customers``.
    folds : ndarray of shape (n_scored,)
        Their folds.
    seed : int
        k-means' seed.
    """
    columns = share_columns(customers)
    past = customers[columns].astype(float).fillna(0.0).to_numpy()[scored]
    weights = mix_weights(customers)
    low, high = GROUP_RANGE
    tried = []
    # One OpenMP thread: a run starts its workers meanwhile (`custseg.workers`), and k-means' threads
    # waiting for a busy core took twice as long on the UCI file (1.8 s against 0.9 s); on an idle
    # machine one thread costs 0.2 s.
    with threadpool_limits(1, user_api="openmp"):
        for n_groups in range(low, min(high, len(customers) - 1) + 1):
            model = InterestGroups(n_groups=n_groups, random_state=seed).fit(customers, sample_weight=weights)
            labels = model.predict(customers)
            scores = next_mix_scores(labels[scored], past, actual, folds)
            sizes = np.bincount(labels, minlength=n_groups) / len(labels)
            tried.append((model, scores, int((sizes >= 0.05).sum())))
    best = max((scores.gain for _, scores, _ in tried), default=0.0)
    model, scores = None, None
    if best >= MIN_REDUCTION:
        model, scores, _ = next(t for t in tried if t[1].gain >= ENOUGH_GAIN * best)
    candidates = pd.DataFrame(
        {
            "groups": [m.n_groups for m, _, _ in tried],
            "cross_entropy": [round(s.groups, 4) for _, s, _ in tried],
            "reduction": [round(s.gain, 4) for _, s, _ in tried],
            "groups_of_5_percent": [n for _, _, n in tried],
            "chosen": [m is model for m, _, _ in tried],
        }
    )
    return Choice(model=model, scores=scores, candidates=candidates)


def describe_groups(
    customers: pd.DataFrame,
    groups: np.ndarray,
    category_labels: dict[str, str],
    n_groups: int,
    *,
    full_year: bool = True,
) -> pd.DataFrame:
    """Name each group by what distinguishes it: the categories it buys more of, and its habits.

    Parameters
    ----------
    customers : DataFrame
        Customers with ``share_*`` and `HABIT_COLUMNS` columns.
    groups : ndarray of shape (n_customers,)
        Each customer's group.
    category_labels : dict
        Category id (``c01``) -> label.
    n_groups : int
        Number of groups (a group may have no customer here).
    full_year : bool
        Whether the log covers a full year before the customers' date: without it, a quarter's
        share says when the log starts, not when a group buys, and no season is named.

    Returns
    -------
    DataFrame of shape (n_groups, 8)
        interest_group (``I1``, ...), interest_group_name, customers, share, leads (the categories
        that name it, with their index), habits (the habits that name it), lead (the first product
        type it buys more of, "" for none) and season (the quarter it buys mostly in, ``q4``, or "").
    """
    columns = share_columns(customers)
    shares = customers[columns].astype(float).fillna(0.0)
    shop = shares.mean()
    # Share columns are sanitised ids (a mapping file's "Home & Garden" is share_home_garden).
    label_of = {column: category_labels[c] for c, column in interest_columns(list(category_labels)).items()}
    named = [c for c in columns if c in label_of and c != interest_columns([UNKNOWN])[UNKNOWN]]
    habits = customers[list(HABIT_COLUMNS)].astype(float)
    rows = []
    for group in range(n_groups):
        inside = groups == group
        mix = shares[inside].mean() if inside.any() else shop * 0
        index = (mix / shop.where(shop > 0)).fillna(0.0)
        index = index[named]
        leading = index[(mix[named] >= MIN_LEAD_SHARE) & (index >= MIN_LEAD_INDEX)]
        leading = leading.sort_values(ascending=False, kind="mergesort")
        leads = [(label_of[c], float(index[c])) for c in leading.index[:2]]
        traits, season = _habit_traits(habits[inside], habits, full_year) if inside.any() else ([], "")
        if leads:
            what = " and ".join(_first_type(label) for label, _ in leads)
        elif inside.any():
            what = "a bit of everything"
        else:
            what = "no customer as of the reference date"
        rows.append(
            {
                "interest_group": f"I{group + 1}",
                "interest_group_name": (what[0].upper() + what[1:] + (f", {', '.join(traits)}" if traits else "")),
                "customers": int(inside.sum()),
                "share": round(float(inside.mean()), 4) if len(groups) else 0.0,
                "leads": "; ".join(f"{label} ({i:.1f}x)" for label, i in leads),
                "habits": ", ".join(traits),
                "lead": _first_type(leads[0][0]) if leads else "",
                "season": season,
            }
        )
    table = pd.DataFrame(rows)
    table["interest_group_name"] = unique_labels(table.interest_group_name.tolist())
    return table


def _first_type(label: str) -> str:
    """Return the first product type of a category label ("Cake cases, cake stands and tins" -> "cake cases")."""
    return in_sentence(label.split(", ")[0].split(" and ")[0])


def _habit_traits(group: pd.DataFrame, everyone: pd.DataFrame, full_year: bool) -> tuple[list[str], str]:
    """Return the habits in which a group differs from everyone by `HABIT_RATIO` or more, and its season.

    The season is the quarter holding half or more of the group's revenue, on average, and
    `HABIT_RATIO` times everyone's share in it ("" for none).
    """
    median, shop = group.median(), everyone.median()
    traits = []
    if median.lines_per_order >= HABIT_RATIO * shop.lines_per_order:
        traits.append("large baskets")
    if median.units_per_line >= HABIT_RATIO * shop.units_per_line:
        traits.append("wholesale quantities")
    if median.price_per_unit >= HABIT_RATIO * shop.price_per_unit:
        traits.append("higher-priced items")
    elif median.price_per_unit * HABIT_RATIO <= shop.price_per_unit:
        traits.append("lower-priced items")
    quarter_columns = [f"revenue_share_{q}" for q in QUARTERS]
    quarters, shop_quarters = group[quarter_columns].mean(), everyone[quarter_columns].mean()
    peak = quarters.idxmax()
    season = ""
    if full_year and quarters[peak] >= 0.5 and quarters[peak] >= HABIT_RATIO * shop_quarters[peak]:
        season = peak.removeprefix("revenue_share_")
        traits.append(f"buy mostly {QUARTER_MONTHS[season]}")
    return traits, season


def interests_in_words(section: InterestsSection, horizon_days: int) -> str:
    """Say how well the interest groups tell what customers buy next, for a marketer and an analyst."""
    scores = section.backtest
    return (
        f"Knowing a customer's interest group as of {section.as_of.date()} predicts the mix of product categories "
        f"they bought in the next {horizon_days} days {scores.reduction:.1%} better than the shop's average mix "
        f"(out-of-fold cross-entropy {scores.groups:.3f} against {scores.shop:.3f} nats, {scores.customers:,} "
        f"customers who bought again); each customer's own past mix does {scores.own_past_reduction:.1%} better "
        f"(the ceiling of a grouping). {section.chosen} groups, chosen by: {section.criterion}."
    )


MIN_GROUP_SHARE = 0.15
"""An interest group leads a segment's action when it holds at least this share of the segment's members."""


def interest_lead(members: pd.DataFrame, groups: pd.DataFrame | None) -> str | None:
    """Say what to lead with for a segment's members, by their interest groups, and when to contact them.

    Of the groups holding `MIN_GROUP_SHARE` of the members, buying some categories more than the
    shop and over-represented among the members against all customers (``customers_now`` of
    ``groups``), the (at most two) most over-represented, so that segments lead with what sets
    them apart; a group that buys mostly in one quarter is contacted the month before it
    (`CONTACT_FROM`). None when no group qualifies or the members have no groups.
    """
    if groups is None or "interest_group" not in members or members.interest_group.isna().all():
        return None
    described = groups.set_index("interest_group")
    shares = members.interest_group.value_counts(normalize=True)
    everyone = described.customers_now / max(described.customers_now.sum(), 1)
    lift = (shares / everyone.reindex(shares.index)).fillna(0.0)
    parts = []
    for group in sorted(shares.index, key=lambda g: (-lift[g], g)):
        share, row = shares[group], described.loc[group]
        if share < MIN_GROUP_SHARE or lift[group] <= 1 or not row.lead or len(parts) == 2:
            continue
        timing = ""
        if row.season:
            season = f"they buy mostly {QUARTER_MONTHS[row.season]}: "
            # A group named for its season ("..., buy mostly January to March") needs only the month.
            said = f"buy mostly {QUARTER_MONTHS[row.season]}" in row.interest_group_name
            timing = f" ({'' if said else season}contact them from {CONTACT_FROM[row.season]})"
        parts.append(f"{row.lead} for the {share:.0%} in {group} {row.interest_group_name}{timing}")
    return f"Lead with {' and with '.join(parts)}." if parts else None
