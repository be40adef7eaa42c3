"""The brief: the report's first screen, what a marketer needs to act this week.

The shop in four figures (customers, revenue, what the next H days should bring, segments), which
segmentation to follow and why, then the actions worth doing now: for the segments expected to
bring the most in the next H days, what to do, with whom, why, when, what it is worth and the list
to load. Plain words only: the measurements behind them are in the sections below, and in the
brief's own "How this was measured".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from custseg.amounts import money
from custseg.lists import LISTS_FOLDER, Recommendation, list_file_name, recommended_segmentation
from custseg.profile import REORDER_TIMING
from custseg.record import MovementSection, RunRecord
from custseg.record.value import ValueSection
from custseg.report.charts import Figure, Link, Section, Table, segment_label
from custseg.report.data import ReportData
from custseg.value import period

MAX_ACTIONS = 5
MIN_ACTIONS = 3
MIN_WORTH_SHARE = 0.02
"""The brief lists the segments with the highest expected revenue in the next H days, at most
`MAX_ACTIONS`; past `MIN_ACTIONS`, only those expected to bring at least `MIN_WORTH_SHARE` of the total."""

WHEN: dict[str, str] = {
    "new": "In their first weeks, before the shop's usual time between orders has passed",
    "recent": "Now, while their last order is fresh",
    "active": "This month; then each one when they pass their own usual time between orders",
    "overdue": "This week: they are past their usual time to reorder",
    "lapsing": "This week, before they lapse",
    "lapsed": "Once, in the next seasonal campaign; stop if they do not respond",
    "": "With the shop's regular news",
}
"""When to act on a segment, by where it stands (`custseg.profile.STATES` and the rules' states)."""


@dataclass(frozen=True)
class Action:
    """One action worth doing now: what, with whom, why, when, what it is worth, and the list to load."""

    segment: str
    what: str
    whom: str
    why: str
    when: str
    worth: str
    customers: int
    list_file: str


def brief_actions(
    record: RunRecord, rows: pd.DataFrame, customer_count: int, currency: str | None
) -> tuple[Recommendation, list[Action], pd.DataFrame]:
    """Choose the segmentation to follow and the actions worth doing now (`MAX_ACTIONS`).

    Parameters
    ----------
    record : RunRecord
        The finished run.
    rows : DataFrame
        segments.csv's rows.
    customer_count : int
        Every customer with a segment.
    currency : str or None
        The ISO 4217 code of the amounts.

    Returns
    -------
    recommendation : Recommendation
    actions : list of Action
    shown : DataFrame
        The rows of the recommended segmentation, every segment.
    """
    recommendation = recommended_segmentation(record)
    kind = recommendation.segmentation
    shown = rows[rows.kind == kind]
    horizon = record.settings["backtest"]["horizon_days"]
    total = f"expected_revenue_{horizon}d_total"
    trend = _trend(record, kind)
    actions = [
        Action(
            segment=segment_label(row.segment, row.name) if kind == "learned" else str(row.segment),
            what=_what(row),
            whom=_whom(row, kind, trend, customer_count, horizon),
            why=_why(row, horizon, currency),
            when=_when(row, kind),
            worth=_worth(row, total, currency),
            customers=int(row.customers),
            list_file=list_file_name(str(row.segment), str(row.name)),
        )
        for row in _chosen(shown, total).itertuples()
    ]
    return recommendation, actions, shown


def brief(data: ReportData) -> Section | None:
    """Build the first screen: the shop in figures, which segments to follow and the actions worth doing now."""
    record, rows = data.record, data.segments
    if rows is None or record.customers is None:
        return None
    recommendation, actions, shown = brief_actions(record, rows, data.customer_count, data.currency)
    if shown.empty:
        return None
    kind = recommendation.segmentation
    value = record.value if isinstance(record.value, ValueSection) else None
    horizon = record.settings["backtest"]["horizon_days"]
    total = f"expected_revenue_{horizon}d_total"
    unit = f" ({data.currency})" if data.currency else ""
    table = Table(
        f"Do this now: the {len(actions)} segments expected to bring the most"
        + (f" in {period(value.window)}" if value else ""),
        ["with whom", "what to do", "why: what such customers did next", "when", f"worth{unit}", "list"],
        [
            [
                action.whom,
                action.what,
                action.why,
                action.when,
                action.worth,
                Link(f"{action.customers:,} customers", f"{LISTS_FOLDER}/{action.list_file}"),
            ]
            for action in actions
        ],
    )
    everyone = Table(
        f"Every {'learned' if kind == 'learned' else 'RFM'} segment and its list",
        ["segment", "customers", f"expected{unit}", "list"],
        [
            [
                segment_label(row.segment, row.name),
                f"{row.customers:,}",
                _worth(row, total, data.currency),
                Link(list_file_name(str(row.segment), str(row.name)), _list_href(row)),
            ]
            for row in shown.itertuples()
        ],
    )
    figures = _figures(data, value, shown)
    segments_word = "learned segments" if kind == "learned" else "RFM segments"
    intro = f"Follow the {segments_word}: {recommendation.reason}."
    return Section(
        "brief",
        "What to do now",
        intro,
        tables=[table, everyone],
        figures=figures,
        method=(
            f"The actions are those of the segments with the highest expected revenue in the next {horizon} days, "
            f"at most {MAX_ACTIONS}, and past {MIN_ACTIONS} only those worth at least {MIN_WORTH_SHARE:.0%} of the "
            "total. The range of a segment's worth is how far the forecasts made from earlier dates of this log "
            "missed what happened (see What are the customers worth next?). 'Why' is what such customers did in "
            "the backtest: the customers as of "
            f"{horizon} days before the end of the log, and what they did in the {horizon} days after. The "
            "segmentation to follow is the one with the higher backtest validity, the mean of the return Gini "
            "(how well it orders who will buy again) and the eta squared of log revenue (how much of the spread "
            "in spend it explains), both out of fold. Each list is a CSV whose first column is Email Address "
            "(when customers are known by their e-mail) or Customer ID, the key Klaviyo's and Mailchimp's list "
            "imports read; `custseg export --segments rfm` writes the other segmentation's lists."
        ),
    )


def _figures(data: ReportData, value: ValueSection | None, shown: pd.DataFrame) -> list[Figure]:
    """Give the shop in four figures, each with the words that say what it counts."""
    record = data.record
    customers, span = record.customers, record.span
    returned = customers.fully_returned.count
    figures = [
        Figure(
            f"{customers.count:,}",
            "customers with a segment"
            + (f" ({customers.count + returned:,} bought; {returned:,} returned everything)" if returned else ""),
        )
    ]
    if record.reconciliation is not None and span is not None:
        figures.append(
            Figure(
                data.money(record.reconciliation.net_revenue),
                f"net revenue, {span.first_invoiced_at.date()} to {span.last_invoiced_at.date()}",
            )
        )
    if value is not None:
        expected = value.expected
        figures.append(Figure(data.money(expected.expected_revenue), f"expected in {period(value.window)}"))
    figures.append(Figure(f"{len(shown)}", "segments, each with a list to load"))
    return figures


def _chosen(shown: pd.DataFrame, total: str) -> pd.DataFrame:
    """Choose the segments whose actions the brief lists (`MAX_ACTIONS`, `MIN_ACTIONS`, `MIN_WORTH_SHARE`)."""
    if total not in shown.columns:
        return shown.sort_values("customers", ascending=False, kind="stable").head(MIN_ACTIONS)
    ranked = shown.sort_values(total, ascending=False, kind="stable")
    worth = ranked[total].fillna(0.0)
    enough = worth >= MIN_WORTH_SHARE * worth.sum()
    keep = [rank < MIN_ACTIONS or bool(big) for rank, big in enumerate(enough)]
    return ranked[keep].head(MAX_ACTIONS)


def _trend(record: RunRecord, kind: str) -> dict[str, tuple[int, int]]:
    """Segment -> its customers H days ago and now, where the movement stage compared them."""
    movement = record.movement if isinstance(record.movement, MovementSection) else None
    migration = None if movement is None else movement.learned if kind == "learned" else movement.rfm
    if migration is None:
        return {}
    return {
        segment: (migration.sizes_before.get(segment, 0), after) for segment, after in migration.sizes_after.items()
    }


def _when(row, kind: str) -> str:
    """Say when to act: by where the segment stands, or by each customer's own rhythm where its action says so."""
    if REORDER_TIMING in str(row.action):
        return "When each passes 1.5 times their own usual time between orders"
    state = row.state if kind == "learned" and isinstance(row.state, str) else ""
    return WHEN.get(state, WHEN[""])


def _what(row) -> str:
    """Return the segment's action without what other columns say: for whom (its rule) and the backtest's figures."""
    action = str(row.action)
    rule = row.rule if isinstance(getattr(row, "rule", None), str) else ""
    prefix = f"For customers with {rule}: "
    if rule and action.startswith(prefix):
        action = action[len(prefix)].upper() + action[len(prefix) + 1 :]
    return action.split(" In the backtest, ")[0].replace(f" {REORDER_TIMING}", "")


def _whom(row, kind: str, trend: dict[str, tuple[int, int]], customers: int, horizon: int) -> str:
    """Say who: the segment's name, size and how its size moved in the last H days (its rule is in its list)."""
    name = segment_label(row.segment, row.name) if kind == "learned" else row.segment
    size = f"{row.customers:,} customers ({row.customers / customers:.0%})" if customers else f"{row.customers:,}"
    before, now = trend.get(str(row.segment), (None, None))
    moved = ""
    if before:
        change = (now - before) / before
        if abs(change) >= 0.01:
            moved = f", {'up' if change > 0 else 'down'} {abs(change):.0%} in {horizon} days"
    return f"{name}: {size}{moved}"


def _why(row, horizon: int, currency: str | None) -> str:
    """Say what such customers did next on the shop's own history, in words."""
    rate = row.backtest_return_rate
    if rate != rate:
        return "Too few such customers in the history to say what they did next"
    spent = row.backtest_mean_revenue
    return f"{rate:.0%} of such customers ordered again within {horizon} days" + (
        f", spending {money(spent, currency)} each" if spent == spent else ""
    )


def _worth(row, total: str, currency: str | None) -> str:
    """Write the segment's expected revenue in the next H days, with its interval where measured."""
    expected = getattr(row, total, float("nan"))
    if expected != expected:
        return "not estimated"
    low, high = getattr(row, f"{total}_low", float("nan")), getattr(row, f"{total}_high", float("nan"))
    shown = money(expected, currency)
    if low == low and high == high:
        # The range is where past forecasts' errors put the outcome; it need not hold the forecast itself.
        bias = "past forecasts ran low; " if expected < low else "past forecasts ran high; " if expected > high else ""
        shown += f" ({bias}range {money(low, currency)} to {money(high, currency)})"
    return shown


def _list_href(row) -> str:
    """Return the relative link to a segment's list in the run's folder."""
    return f"{LISTS_FOLDER}/{list_file_name(str(row.segment), str(row.name))}"
