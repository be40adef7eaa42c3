"""Interest groups: what each group buys more of than the shop, and how well that tells what they buy next."""

from __future__ import annotations

import plotly.graph_objects as go

from custseg.interests import interests_in_words
from custseg.record import Skipped
from custseg.record.interests import InterestsSection
from custseg.report.charts import Chart, Section, Table, layout, share
from custseg.report.data import ReportData


def interest_groups(data: ReportData) -> Section | None:
    """Show the interest groups: sizes, what they buy more of, their habits, and their backtest."""
    section = data.record.interests
    if isinstance(section, Skipped):
        return Section("interests", "Interest groups", f"No interest groups: {section.reason}.")
    if not isinstance(section, InterestsSection):
        return None
    groups = section.groups
    names = [f"{g['interest_group']} {g['interest_group_name']}" for g in groups]
    figure = go.Figure(
        go.Bar(
            x=[g["customers_now"] for g in groups][::-1],
            y=names[::-1],
            orientation="h",
            # The first category only: the whole list is in the table, and a long text is cut at 800 px.
            text=[g["leads"].split("; ")[0] or "like the shop" for g in groups][::-1],
            textposition="auto",
            marker_color="#2ca02c",
        )
    )
    figure.update_xaxes(title_text="customers")
    largest = max(groups, key=lambda g: g["customers_now"])
    chart = Chart(
        "Customers per interest group",
        f"{len(groups)} groups by what customers buy; the largest, {largest['interest_group_name']}, holds "
        f"{largest['customers_now']:,} customers. Each bar names the category the group is most over-represented "
        "in: the members' mean share of spending on it, as a multiple of every customer's mean share, today.",
        layout(figure, 80 + 50 * len(groups)),
    )
    table = Table(
        "Interest groups",
        ["group", "name", "customers", "buys more of than the shop does", "how they buy"],
        [
            [g["interest_group"], g["interest_group_name"], f"{g['customers_now']:,}", g["leads"], g["habits"]]
            for g in groups
        ],
    )
    candidates = Table(
        "How the number of groups was chosen (backtest, out of fold)",
        ["groups", "cross-entropy of the next mix (nats)", "better than the shop's mix", "groups of 5% or more"],
        [
            [
                f"{c['groups']}" + (" (chosen)" if c["chosen"] else ""),
                f"{c['cross_entropy']:.4f}",
                share(c["reduction"]),
                str(c["groups_of_5_percent"]),
            ]
            for c in section.candidates
        ],
    )
    horizon_days = data.record.settings["backtest"]["horizon_days"]
    scores = section.backtest
    intro = (
        "Customers grouped by what they buy and how, each group named by what it buys more of than the shop. "
        f"On the shop's history, a customer's group told what they would buy in the next {horizon_days} days "
        f"{scores.reduction:.1%} better than the shop's average mix (the customer's own past: "
        f"{scores.own_past_reduction:.1%} better)."
    )
    method = (
        f"Learned on the customers as of {section.as_of.date()} and applied to every customer today (the "
        f"interest_group column of customers.parquet; interest_groups.csv). {interests_in_words(section, horizon_days)}"
    )
    return Section("interests", "Interest groups", intro, [chart], [table, candidates], method=method)
