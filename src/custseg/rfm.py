"""Which classic RFM segment every customer is in, with scores new customers can be given later.

Marketers think in RFM codes ("555" is a champion). This module scores recency, frequency and
monetary value 1-5 against cut points learned from the customers (and stored, so that tomorrow's
customers are scored the same way), and maps the codes to named segments with a description and
a recommended action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custseg.errors import ConfigError

MEASURES = {"recency": "recency_days", "frequency": "frequency", "monetary": "monetary"}
"""RFM measure -> column of the customers table."""

RFM_COLUMNS = ("r_score", "f_score", "m_score", "rfm_code", "rfm_segment")


@dataclass(frozen=True)
class SegmentRule:
    """A named RFM segment, what it means and what to do with it.

    ``patterns`` are regular expressions over ``"RFM"`` codes on the 1-5 scale, e.g. ``"[4-5][4-5][4-5]"``.
    """

    name: str
    patterns: tuple[str, ...]
    description: str
    action: str


RFM_SEGMENTS: tuple[SegmentRule, ...] = (
    SegmentRule(
        "Champions",
        ("[4-5][4-5][4-5]",),
        "Bought recently, buy often and spend the most.",
        "Reward them: early access, loyalty perks, ask for reviews; they will promote the shop.",
    ),
    SegmentRule(
        "Loyal Customers",
        ("[3-5][3-5][3-5]",),
        "Buy regularly and spend well, not quite at the top.",
        "Upsell higher-value products, enrol in a loyalty programme, ask for referrals.",
    ),
    SegmentRule(
        "Can't Lose Them",
        ("[1-2][4-5][4-5]",),
        "Used to buy often and spend a lot, but not for a long time.",
        "Win them back in person: a call or a personal offer; find out what went wrong.",
    ),
    SegmentRule(
        "At Risk",
        ("[1-2][3-5].",),
        "Bought several times, but their last order was long ago.",
        "Send a personalised reactivation offer on what they used to buy, before they are lost.",
    ),
    SegmentRule(
        "Recent Customers",
        ("51.",),
        "Bought for the first time very recently.",
        "Welcome them: onboarding mails, a second-order incentive, show the range.",
    ),
    SegmentRule(
        "Promising",
        ("41.",),
        "Recent one-time buyers, not yet back.",
        "Build the relationship: recommendations from their first basket, a time-limited offer.",
    ),
    SegmentRule(
        "Potential Loyalists",
        ("[4-5][2-5].",),
        "Recent customers with a few orders and average spend.",
        "Offer membership or a loyalty programme; recommend related products to grow the basket.",
    ),
    SegmentRule(
        "About to Sleep",
        ("31.",),
        "One order some time ago; will be lost without a reason to return.",
        "Share popular and seasonal products and a small discount to bring them back.",
    ),
    SegmentRule(
        "Need Attention",
        ("3[2-5].",),
        "Average recency and frequency; neither loyal nor lost yet.",
        "Limited-time offers based on their history; ask what would make them buy more.",
    ),
    SegmentRule(
        "Hibernating",
        ("2[1-2].",),
        "Few, small orders and a long time since the last.",
        "Include them in broad seasonal campaigns only; keep the cost of contact low.",
    ),
    SegmentRule(
        "Lost",
        ("1[1-2].",),
        "Lowest recency and frequency: gone.",
        "Try one reactivation campaign, then stop spending on them.",
    ),
)
"""The default map: 11 named segments over the 125 R-F-M codes, first matching rule wins."""

RF_GRID_SEGMENTS: tuple[SegmentRule, ...] = (
    SegmentRule("Hibernating", ("[1-2][1-2].",), RFM_SEGMENTS[9].description, RFM_SEGMENTS[9].action),
    SegmentRule("At Risk", ("[1-2][3-4].",), RFM_SEGMENTS[3].description, RFM_SEGMENTS[3].action),
    SegmentRule("Can't Lose Them", ("[1-2]5.",), RFM_SEGMENTS[2].description, RFM_SEGMENTS[2].action),
    SegmentRule("About to Sleep", ("3[1-2].",), RFM_SEGMENTS[7].description, RFM_SEGMENTS[7].action),
    SegmentRule("Need Attention", ("33.",), RFM_SEGMENTS[8].description, RFM_SEGMENTS[8].action),
    SegmentRule("Loyal Customers", ("[3-4][4-5].",), RFM_SEGMENTS[1].description, RFM_SEGMENTS[1].action),
    SegmentRule("Promising", ("41.",), RFM_SEGMENTS[5].description, RFM_SEGMENTS[5].action),
    SegmentRule("New Customers", ("51.",), RFM_SEGMENTS[4].description, RFM_SEGMENTS[4].action),
    SegmentRule("Potential Loyalists", ("[4-5][2-3].",), RFM_SEGMENTS[6].description, RFM_SEGMENTS[6].action),
    SegmentRule("Champions", ("5[4-5].",), RFM_SEGMENTS[0].description, RFM_SEGMENTS[0].action),
)
"""The common 10-cell grid on recency and frequency only."""

BUILT_IN_MAPS = {"rfm": RFM_SEGMENTS, "rf_grid": RF_GRID_SEGMENTS}
ALL_CODES = tuple("".join(map(str, code)) for code in product(range(1, 6), repeat=3))


def code_map(rules: Sequence[SegmentRule]) -> dict[str, str]:
    """Map every one of the 125 codes to exactly one segment (the first rule whose pattern matches).

    Raises
    ------
    ConfigError
        If a pattern is not a valid regular expression, or some codes match no rule.
    """
    compiled = []
    for rule in rules:
        for pattern in rule.patterns:
            try:
                compiled.append((re.compile(f"^(?:{pattern})$"), rule.name))
            except re.error as exc:
                raise ConfigError(f"RFM segment {rule.name!r}: pattern {pattern!r} is not valid: {exc}") from None
    mapping = {}
    for code in ALL_CODES:
        mapping[code] = next((name for regex, name in compiled if regex.match(code)), None)
    unmatched = [code for code, name in mapping.items() if name is None]
    if unmatched:
        raise ConfigError(
            f"the RFM segment map leaves {len(unmatched)} code(s) without a segment: {', '.join(unmatched[:12])}"
            + (" ..." if len(unmatched) > 12 else "")
        )
    return mapping


def segment_codes(rules: Sequence[SegmentRule]) -> dict[str, list[tuple[int, int, int]]]:
    """Segment -> the (recency, frequency, monetary) scores (1-5) of the codes the map gives it."""
    codes: dict[str, list[tuple[int, int, int]]] = {}
    for code, name in code_map(rules).items():
        codes.setdefault(name, []).append((int(code[0]), int(code[1]), int(code[2])))
    return codes


def to_five_point(score: int, bins: int) -> int:
    """Place a score on 1..``bins`` on the 1-5 scale of the segment maps (nearest point)."""
    return 1 + int(round((score - 1) * 4 / (bins - 1))) if bins > 1 else 3


def quantile_positions(n: int, bins: int) -> np.ndarray:
    """Positions (0-based, in ascending order of n values) of the inverted-CDF quantiles 1/bins ... (bins-1)/bins.

    The positions numpy's ``quantile(..., method="inverted_cdf")`` reads, computed without the values.
    """
    virtual = n * (np.arange(1, bins) / bins) - 1
    below = np.floor(virtual)
    return np.where(virtual - below > 0, below + 1, below).clip(0, n - 1).astype(np.int64)


def cut_points(values: np.ndarray | ir.Column, bins: int) -> list[float]:
    """Quantile cut points of ``values`` (inverted CDF, so each is a value that occurs).

    A value scores 1 + the number of cut points it exceeds; equal values always score the same.
    ``values`` may be a column of a table in an engine: then only the cut points leave it.
    """
    if isinstance(values, ir.Column):
        table = values.name("value").as_table()
        table = table.filter(table.value.notnull())
        positions = quantile_positions(int(table.count().execute()), bins)
        ranked = table.mutate(position=ibis.row_number().over(order_by=table.value))
        found = ranked.filter(ranked.position.isin(sorted({int(p) for p in positions}))).execute()
        at = dict(zip(found.position, found.value, strict=True))
        return [float(at[p]) for p in positions]
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    quantiles = np.arange(1, bins) / bins
    return [float(v) for v in np.quantile(values, quantiles, method="inverted_cdf")]


@dataclass(frozen=True)
class RFMOptions:
    """Settings of the RFM stage.

    Attributes
    ----------
    bins : int
        Score levels per measure, 3 to 5 (default 5).
    recency_cuts, frequency_cuts, monetary_cuts : list of float or None
        Custom cut points (ascending); None learns quantile cut points from the customers.
    segment_map : str
        ``"rfm"`` (11 segments over R, F and M), ``"rf_grid"`` (10 cells on R and F) or ``"custom"``.
    segments : list of dict
        With ``segment_map = "custom"``: ``{name, codes (regex list), description, action}`` items.
    """

    bins: int = 5
    recency_cuts: list[float] | None = None
    frequency_cuts: list[float] | None = None
    monetary_cuts: list[float] | None = None
    segment_map: str = "rfm"
    segments: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rules()

    def rules(self) -> tuple[SegmentRule, ...]:
        """Return the segment rules these options select."""
        if self.segment_map in BUILT_IN_MAPS:
            return BUILT_IN_MAPS[self.segment_map]
        if self.segment_map != "custom":
            raise ConfigError(f"segment_map={self.segment_map!r} must be one of rfm, rf_grid, custom")
        if not self.segments:
            raise ConfigError("segment_map='custom' needs [[rfm.segments]] entries in custseg.toml")
        rules = []
        for item in self.segments:
            missing = {"name", "codes"} - set(item)
            if missing:
                raise ConfigError(f"[[rfm.segments]] {item}: missing {', '.join(sorted(missing))}")
            rules.append(
                SegmentRule(
                    str(item["name"]),
                    tuple(str(code) for code in item["codes"]),
                    str(item.get("description", "")),
                    str(item.get("action", "")),
                )
            )
        return tuple(rules)


class RFMScorer:
    """Score recency, frequency and monetary value and name each customer's RFM segment.

    Parameters
    ----------
    bins : int, default 5
        Score levels, 3 to 5. Recency is reversed: the most recent customers get ``bins``.
    cuts : dict of str to list of float, optional
        Fixed cut points per measure (``recency``, ``frequency``, ``monetary``); the others are
        learned by `fit` as quantiles of the customers.
    rules : sequence of SegmentRule, optional
        The segment map; default `RFM_SEGMENTS`.

    Attributes
    ----------
    cut_points_ : dict of str to list of float
        The ``bins - 1`` ascending cut points of each measure. A value scores 1 + the number of
        cut points it exceeds (recency: ``bins`` minus that number).
    code_map_ : dict of str to str
        Each of the 125 codes on the 1-5 scale -> segment name.
    """

    def __init__(
        self, *, bins: int = 5, cuts: Mapping[str, Sequence[float]] | None = None, rules: Sequence[SegmentRule] = ()
    ) -> None:
        self.bins = bins
        self.cuts = cuts
        self.rules = rules

    @classmethod
    def from_options(cls, options: RFMOptions) -> RFMScorer:
        """Build a scorer from the ``[rfm]`` settings."""
        cuts = {
            measure: getattr(options, f"{measure}_cuts")
            for measure in MEASURES
            if getattr(options, f"{measure}_cuts") is not None
        }
        return cls(bins=options.bins, cuts=cuts, rules=options.rules())

    def fit(self, customers: ir.Table | pd.DataFrame) -> RFMScorer:
        """Learn the cut points of every measure not fixed in ``cuts``.

        Parameters
        ----------
        customers : ibis.Table or DataFrame of shape (n_customers, n_features)
            With recency_days, frequency and monetary; of a table only the cut points come back.
        """
        if not 3 <= self.bins <= 5:
            raise ConfigError(f"bins={self.bins} must be 3, 4 or 5")
        count = int(customers.count().execute()) if isinstance(customers, ir.Table) else len(customers)
        if count == 0:
            raise ConfigError("RFM scoring needs at least one customer")
        fixed = dict(self.cuts or {})
        self.cut_points_ = {}
        for measure, column in MEASURES.items():
            if measure in fixed:
                points = [float(p) for p in fixed[measure]]
                if len(points) != self.bins - 1 or points != sorted(points):
                    raise ConfigError(
                        f"{measure}_cuts={points} must be {self.bins - 1} ascending numbers for bins={self.bins}"
                    )
            else:
                values = customers[column] if isinstance(customers, ir.Table) else customers[column].to_numpy()
                points = cut_points(values, self.bins)
            self.cut_points_[measure] = points
        self.code_map_ = code_map(self.rules or RFM_SEGMENTS)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "cut_points_"):
            raise RuntimeError("this RFMScorer is not fitted yet; call fit first")

    def transform(self, customers: ir.Table) -> ir.Table:
        """Add `RFM_COLUMNS` to the customers table.

        ``rfm_code`` is always on the 1-5 scale of the segment map (with 3 or 4 bins, scores are
        placed on the nearest point of that scale); the scores keep their own scale.
        """
        self._check_fitted()

        def exceeded(column: str, points: list[float]) -> ir.IntegerValue:
            total = ibis.literal(0, dt.int64)
            for point in points:
                total = total + (customers[column] > point).cast(dt.int64)
            return total

        scored = customers.mutate(
            r_score=self.bins - exceeded("recency_days", self.cut_points_["recency"]),
            f_score=1 + exceeded("frequency", self.cut_points_["frequency"]),
            m_score=1 + exceeded("monetary", self.cut_points_["monetary"]),
        )
        # Built in steps, so that each expression refers to a column and the SQL stays small.
        coded = scored.mutate(
            rfm_code=self._five_point(scored.r_score).concat(
                self._five_point(scored.f_score), self._five_point(scored.m_score)
            )
        )
        segment = coded.rfm_code.substitute(self.code_map_, else_=ibis.null(dt.string))
        return coded.mutate(rfm_segment=segment)

    def _five_point(self, score: ir.IntegerValue) -> ir.StringValue:
        return score.substitute(
            {s: str(to_five_point(s, self.bins)) for s in range(1, self.bins + 1)}, else_=ibis.null(dt.string)
        )

    def segment_rules(self) -> dict[str, SegmentRule]:
        """Segment name -> its rule, in map order."""
        return {rule.name: rule for rule in (self.rules or RFM_SEGMENTS)}

    def state(self) -> dict[str, Any]:
        """Return what a model folder keeps of the fitted scorer (JSON): bins, cut points, code map, rules."""
        self._check_fitted()
        return {
            "bins": self.bins,
            "cut_points": self.cut_points_,
            "code_map": self.code_map_,
            "rules": [
                {"name": r.name, "patterns": list(r.patterns), "description": r.description, "action": r.action}
                for r in self.segment_rules().values()
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RFMScorer:
        """Rebuild a fitted scorer from `state` (no refitting)."""
        rules = [SegmentRule(r["name"], tuple(r["patterns"]), r["description"], r["action"]) for r in state["rules"]]
        scorer = cls(bins=state["bins"], rules=rules)
        scorer.cut_points_ = {k: list(v) for k, v in state["cut_points"].items()}
        scorer.code_map_ = dict(state["code_map"])
        return scorer


def segment_summary(
    customers: ir.Table | pd.DataFrame, rules: Mapping[str, SegmentRule], column: str = "rfm_segment"
) -> pd.DataFrame:
    """Per segment: customers, share, revenue share, median R/F/M, description and action.

    Parameters
    ----------
    customers : ibis.Table or DataFrame of shape (n_customers, n_features)
        With the segment column, recency_days, frequency and monetary; a table is aggregated
        where it is stored (only one row per segment comes back).
    rules : mapping of str to SegmentRule
        Every segment of the map, in the order to list them (empty segments are listed with 0).
    column : str
        The segment column of ``customers``.

    Returns
    -------
    DataFrame of shape (n_segments, 9)
    """
    if isinstance(customers, pd.DataFrame):
        customers = ibis.memtable(customers)
    grouped = (
        customers.group_by(column)
        .aggregate(
            customers=customers.count(),
            revenue=customers.monetary.sum(),
            median_recency_days=customers.recency_days.median(),
            median_frequency=customers.frequency.median(),
            median_monetary=customers.monetary.median(),
        )
        .execute()
    )
    table = grouped.set_index(column).astype(float).reindex(list(rules))
    total_customers, total_revenue = int(grouped.customers.sum()), float(grouped.revenue.sum())
    table["customers"] = table.customers.fillna(0).astype(int)
    table["share"] = (table.customers / total_customers).round(4)
    table["revenue_share"] = (table.revenue.fillna(0) / total_revenue).round(4)
    table["median_monetary"] = table.median_monetary.round(2)
    table["description"] = [rules[name].description for name in table.index]
    table["action"] = [rules[name].action for name in table.index]
    table = table.rename_axis("segment").reset_index()
    return table[
        [
            "segment",
            "customers",
            "share",
            "revenue_share",
            "median_recency_days",
            "median_frequency",
            "median_monetary",
            "description",
            "action",
        ]
    ]
