"""The terminal's view of a run: Rich tables on a terminal, one JSON document when the output is piped.

Both read the run record (`custseg.record`) and its headline figures, as the report does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from custseg.amounts import money
from custseg.interests import interests_in_words
from custseg.record import (
    AssignRecord,
    BacktestSection,
    EarlySection,
    Migration,
    MovementSection,
    RunRecord,
    SegmentsSection,
    Skipped,
    to_dict,
)
from custseg.record.interests import InterestsSection
from custseg.record.value import ValueSection
from custseg.report.early import against_first_orders
from custseg.report.headline import headline
from custseg.value import forward_in_words, period, season_in_words

RFM_COLUMNS = (("median R days", "right"), ("median F", "right"), ("median M", "right"))


def table(title: str, columns: tuple[tuple[str, str], ...]) -> Table:
    """Return an empty Rich table with a title and (name, justify) columns."""
    shown = Table(title=title)
    for column, justify in columns:
        shown.add_column(column, justify=justify)
    return shown


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def tie_note(record: RunRecord | AssignRecord) -> str | None:
    """One line when the timestamps were read by the tie rule (several formats fit every value)."""
    described = record.input
    if described is None or not described.timestamp_format_ties:
        return None
    chosen, ties = described.timestamp_format, described.timestamp_format_ties
    return (
        f"custseg: note: every timestamp fits both {chosen!r} and {', '.join(repr(t) for t in ties)}; read as "
        f"{chosen!r}, the first in custseg's order; if that is wrong, rerun with --date-format {ties[0]!r}"
    )


# -- piped: JSON ---------------------------------------------------------------------------------


def run_summary(record: RunRecord, out_dir: Path) -> dict[str, Any]:
    """Return the run's headline as JSON-ready data, for a pipe (the whole record is in run.json)."""
    if record.course is not None:
        return {"out_dir": str(out_dir), **record.course}
    segments, backtest, value, early = record.segments, record.backtest, record.value, record.early
    learned = segments if isinstance(segments, SegmentsSection) else None
    movement = record.movement if isinstance(record.movement, MovementSection) else None
    return {
        "out_dir": str(out_dir),
        "report": record.report,
        "rows": to_dict(record.rows),
        "currency": record.input.currency,
        "reconciliation": to_dict(record.reconciliation),
        "span": to_dict(record.span),
        "customers": {"as_of": to_dict(record.customers)["as_of"], "count": record.customers.count},
        "fully_returned_customers": headline(record).fully_returned,
        "rfm_segments": {s.segment: s.customers for s in record.rfm.segments},
        "categories": {c.category: c.label for c in record.products.categories},
        "learned_segments": {p["segment"]: [p["name"], p["customers"]] for p in (learned.profiles if learned else [])},
        "segmentation": learned.chosen if learned else _reason(segments),
        "backtest": _backtest_summary(backtest, learned),
        "value": _value_summary(value),
        "movement": {
            kind: migration.sentences
            for kind, migration in (("learned", movement and movement.learned), ("rfm", movement and movement.rfm))
            if migration
        },
        "interest_groups": (
            {g["interest_group"]: [g["interest_group_name"], g["customers_now"]] for g in record.interests.groups}
            if isinstance(record.interests, InterestsSection)
            else _reason(record.interests)
        ),
        "early_prediction": [
            {
                "target": row.target,
                "n_orders": row.n_orders,
                "test_customers": row.test_customers,
                **(
                    {"skipped": row.fit.reason}
                    if isinstance(row.fit, Skipped)
                    else {
                        "chosen": row.fit.chosen,
                        "model": to_dict(row.fit.model),
                        "majority": to_dict(row.fit.majority),
                        "degenerate": row.fit.degenerate,
                    }
                ),
            }
            for row in (early.results if isinstance(early, EarlySection) else [])
        ],
    }


def _reason(section: Any) -> str:
    return section.reason if isinstance(section, Skipped) else "not run"


def _backtest_summary(backtest: BacktestSection | Skipped | None, learned: SegmentsSection | None) -> dict:
    """Return the backtest's headline: learned segments, RFM map and continuous ceilings (or why none)."""
    if not isinstance(backtest, BacktestSection):
        return {"skipped": _reason(backtest)}
    keys = ("auc", "eta_squared", "validity")
    scored = learned.backtest if learned else None
    return {
        "as_of": to_dict(backtest)["as_of"],
        "horizon_days": backtest.horizon_days,
        "learned_segments": {k: getattr(scored, k) if scored else None for k in keys},
        "rfm_map": {k: getattr(backtest.rfm, k) for k in keys},
        "ceilings": to_dict(backtest.ceilings),
    }


def _value_summary(value: ValueSection | Skipped | None) -> dict:
    """Return the value model's headline: the chosen model, its backtest and forward figures, the totals."""
    if not isinstance(value, ValueSection):
        return {"skipped": _reason(value)}
    keys = ("spearman", "r_squared_log", "auc", "revenue_ratio")
    forward = value.forward
    return {
        "chosen": value.chosen,
        "backtest": {k: getattr(value.backtest, k) for k in keys},
        "forward": (
            {"skipped": forward.reason}
            if isinstance(forward, Skipped)
            else {
                "cuts": [
                    {"scored_as_of": to_dict(check)["scored_as_of"], **{k: getattr(check, k) for k in keys}}
                    for check in forward.cuts
                ],
                "interval_held": to_dict(forward.shop),
            }
        ),
        "season": to_dict(value.season),
        "expected": to_dict(value.expected),
    }


# -- on a terminal: Rich -------------------------------------------------------------------------


def print_run(console: Console, record: RunRecord, out_dir: Path) -> None:
    """Print a finished run's tables and sentences, and where its report and tables are."""
    if record.course is not None:
        print_course(console, record.course)
        return
    figures = headline(record)
    rows = record.rows
    cleaning = table("Cleaning", (("rows", "left"), ("count", "right")))
    cleaning.add_row("input", f"{rows.input_rows:,}")
    cleaning.add_row("kept purchase lines", f"{rows.kept_rows:,}")
    for reason, count in rows.rejected_by_reason.items():
        if count:
            cleaning.add_row(f"  rejected: {reason}", f"{count:,}")
    console.print(cleaning)
    money = record.reconciliation
    amounts = table(
        "Revenue reconciliation" + (f" ({figures.currency})" if figures.currency else ""),
        (("item", "left"), ("amount", "right")),
    )
    amounts.add_row("gross sales (kept lines)", f"{money.gross_sales:,.2f}")
    amounts.add_row("returns netted against them", f"-{money.returns_matched:,.2f}")
    if money.refunds:
        amounts.add_row("orders' refunds", f"-{money.refunds:,.2f}")
    amounts.add_row("net revenue", f"{money.net_revenue:,.2f}")
    for reason, amount in money.rejected_amount.items():
        amounts.add_row(f"  rejected: {reason}", f"{amount:,.2f}")
    amounts.add_row("balanced", "yes" if money.balanced else "NO")
    console.print(amounts)
    span = record.span
    console.print(
        f"{span.customers:,} customers, {span.orders:,} orders, {span.products:,} products, "
        f"{span.first_invoiced_at} to {span.last_invoiced_at}"
    )
    products = record.products
    if not products.chosen:
        console.print(f"Product categories: {products.method}.")
    categories = table(
        f"Product categories ({products.chosen}: {products.criterion}; {products.products:,} products)",
        (("category", "left"), ("label", "left"), ("products", "right"), ("revenue", "right"), ("examples", "left")),
    )
    for category in products.categories:
        categories.add_row(
            category.category,
            category.label,
            f"{category.products:,}",
            f"{category.revenue_share:.1%}",
            category.examples,
        )
    console.print(categories)
    rfm = table(
        f"RFM segments ({figures.customers:,} customers as of {figures.as_of})",
        (("segment", "left"), ("customers", "right"), ("share", "right"), ("revenue", "right"), *RFM_COLUMNS),
    )
    for segment in record.rfm.segments:
        rfm.add_row(segment.segment, *_size_and_medians(dataclasses.asdict(segment)))
    console.print(rfm)
    _print_learned(console, record.segments)
    _print_backtest(console, record.backtest, record.segments)
    _print_value(console, record.value, figures.currency)
    if isinstance(record.movement, MovementSection):
        for label, migration in (("Learned segments", record.movement.learned), ("RFM segments", record.movement.rfm)):
            if migration is not None:
                sentences = " ".join(migration.sentences)
                console.print(f"{label}, {migration.from_date} to {migration.to_date}: {sentences}")
    _print_early(console, record.early)
    _print_interests(console, record.interests, record.settings["backtest"]["horizon_days"])
    if figures.fully_returned:
        console.print(f"{figures.fully_returned} customer(s) returned every order: no RFM segment (listed in run.json)")
    _print_brief(console, record, out_dir)
    store = "tables/" if record.settings["engine"]["name"] == "spark" else "custseg.duckdb"
    console.print(
        f"Report: [bold]{out_dir / 'report.html'}[/bold]; tables in {out_dir} ({store}, "
        "customers.parquet, segments.csv, lists/, categories.csv, "
        + ("interest_groups.csv, " if isinstance(record.interests, InterestsSection) else "")
        + "rejected.parquet, model/, run.json)"
    )


def _print_brief(console: Console, record: RunRecord, out_dir: Path) -> None:
    """Print what to do now, last, where a terminal leaves the reader: the report's brief (`brief_actions`)."""
    from custseg.lists import list_file_name
    from custseg.report.brief import brief_actions

    segments_file = out_dir / "segments.csv"
    if record.customers is None or not segments_file.exists():
        return
    rows = pd.read_csv(segments_file, keep_default_na=False, na_values=[""])
    currency = record.input.currency
    recommendation, actions, shown = brief_actions(record, rows, record.customers.count, currency)
    if not actions:
        return
    kind = "learned segments" if recommendation.segmentation == "learned" else "RFM segments"
    console.print(f"[bold]Follow the {kind}[/bold]: {escape(recommendation.reason)}.")
    unit = f" ({currency})" if currency else ""
    shown_actions = table(
        f"What to do now: the {len(actions)} segments expected to bring the most",
        (("with whom", "left"), ("what to do", "left"), ("when", "left"), (f"worth{unit}", "right")),
    )
    for action in actions:
        shown_actions.add_row(escape(action.whom), escape(action.what), escape(action.when), escape(action.worth))
    console.print(shown_actions)
    console.print(f"Their lists, to load into an email tool, in {out_dir / 'lists'}:")
    for action in actions:
        console.print(f"  {escape(action.list_file)}  ({action.customers:,} customers)")
    listed = {action.list_file for action in actions}
    for row in shown.itertuples():
        list_file = list_file_name(str(row.segment), str(row.name))
        if list_file not in listed:
            # Expected to bring less in the next days: its action is in the report.
            console.print(f"  {escape(list_file)}  ({int(row.customers):,} customers; its action is in the report)")


def print_course(console: Console, course: dict[str, Any]) -> None:
    """Print the course recipe's figures beside the published ones."""
    shown = table(
        "The published course pipeline's figures, reproduced",
        tuple((column, "left") for column in ("figure", "published", "reproduced", "tolerance", "holds")),
    )
    for row in course["comparison"]:
        holds = "yes" if row["holds"] else "NO"
        shown.add_row(row["figure"], str(row["published"]), str(row["reproduced"]), row["tolerance"], holds)
    console.print(shown)
    for key, title in (("pca_segment_means", "PCA + k-means"), ("tsne_segment_means", "t-SNE + k-means")):
        if key in course:
            console.print(
                title
                + " segment means (R days, F, M): "
                + "; ".join(
                    f"({m['recency']:.0f}, {m['frequency']:.1f}, {m['monetary']:,.0f}) x {m['customers']}"
                    for m in course[key]
                )
            )
    counts = course["counts"]
    console.print(
        f"The course drops {counts['customers'] - counts['customers_after_trim']} customers above the 95th "
        "percentile; custseg's own run keeps and segments every customer."
    )


def _print_learned(console: Console, segments: SegmentsSection | Skipped | None) -> None:
    if isinstance(segments, Skipped):
        console.print(f"Learned segments skipped: {segments.reason}")
    if not isinstance(segments, SegmentsSection):
        return
    chosen = segments.chosen
    scored = (
        f"backtest validity {chosen['validity']}, return AUC {chosen['auc']}, eta squared {chosen['eta_squared']}"
        if segments.chosen_by == "backtest"
        else f"silhouette {chosen['silhouette']}"
    )
    title = (
        f"Learned segments: {chosen['model']} on {chosen['space']}, {chosen['n_segments']} segments "
        f"({scored}; stability {chosen['stability']})"
    )
    if segments.kept is not None:
        title = f"Learned segments kept from {segments.kept.run}"
    # A rule says what the medians would: every member satisfies it; it goes under the name.
    ruled = segments.rules is not None
    learned = table(
        title,
        (
            ("id", "left"),
            ("name and rule" if ruled else "name", "left"),
            ("customers", "right"),
            ("share", "right"),
            ("revenue", "right"),
            *(() if ruled else RFM_COLUMNS),
            ("ordered again*", "right"),
        ),
    )
    for profile in segments.profiles:
        rate = profile.get("backtest_return_rate")
        size = _size_and_medians(profile)
        learned.add_row(
            profile["segment"],
            f"{profile['name']}\n[dim]{escape(profile.get('rule') or '')}[/dim]" if ruled else profile["name"],
            *(size[:3] if ruled else size),
            "-" if rate is None else f"{rate:.0%}",
        )
    console.print(learned)
    if segments.kept is not None:
        console.print(f"Kept segments: {segments.kept.advice}.")


def _print_backtest(
    console: Console, backtest: BacktestSection | Skipped | None, segments: SegmentsSection | Skipped | None
) -> None:
    if isinstance(backtest, Skipped):
        console.print(f"Backtest skipped: {backtest.reason} (learned segments chosen by silhouette)")
        return
    if not isinstance(backtest, BacktestSection) or not isinstance(segments, SegmentsSection):
        return
    learned, rfm, ceiling = segments.backtest, backtest.rfm, backtest.ceilings
    console.print(
        f"* Backtest: the {backtest.customers:,} customers as of {backtest.as_of.date()}, and what they did "
        f"in the next {backtest.horizon_days} days. Learned segments: return AUC {learned.auc:.3f}, eta "
        f"squared of log revenue {learned.eta_squared:.3f}; RFM map: {rfm.auc:.3f}, {rfm.eta_squared:.3f}; "
        f"continuous scores (ceiling): {ceiling.logistic_regression_auc:.3f}, "
        f"{ceiling.linear_regression_r_squared:.3f}."
    )


def _print_value(console: Console, value: ValueSection | Skipped | None, currency: str | None) -> None:
    if isinstance(value, Skipped):
        console.print(f"Expected value skipped: {value.reason}")
    if not isinstance(value, ValueSection):
        return
    fit, expected, forward = value.backtest, value.expected, value.forward
    interval = expected.revenue_interval
    console.print(
        f"Expected value ({value.chosen.replace('_', ' ')}): {money(expected.expected_revenue, currency)} of revenue"
        + (
            ""
            if isinstance(interval, Skipped)
            else f" ({interval.level:.0%} interval {money(interval.low, currency)} to {money(interval.high, currency)})"
        )
        + f" and {expected.expected_orders:,.0f} orders from {expected.customers:,} customers in "
        f"{period(value.window)}. On the backtest: Spearman {fit.spearman:.3f}, R² of log revenue "
        f"{fit.r_squared_log:.3f}, predicted total {fit.revenue_ratio:.0%} of the actual"
        + ("." if isinstance(forward, Skipped) else f"; {forward_in_words(forward)}.")
        + f" The forecast is {season_in_words(value.season, expected.expected_revenue)}."
    )


def _size_and_medians(segment: dict) -> tuple[str, ...]:
    """Cells of a segment row: customers, share, revenue share and median R, F, M."""
    return (
        f"{segment['customers']:,}",
        f"{segment['share']:.1%}",
        f"{segment['revenue_share']:.1%}",
        _number(segment["median_recency_days"]),
        _number(segment["median_frequency"]),
        _number(segment["median_monetary"], 2),
    )


def _print_early(console: Console, early: EarlySection | Skipped | None) -> None:
    if not isinstance(early, EarlySection):
        return
    joined_from = early.test_joined_from.date() if early.test_joined_from else "-"
    shown = table(
        f"Early prediction: target {early.horizon_days} days after the first order, tested on the "
        f"{early.test_share:.0%} latest-joining customers (from {joined_from})",
        (
            ("target", "left"),
            ("first orders", "right"),
            ("test customers", "right"),
            ("model", "left"),
            ("macro-F1", "right"),
            ("majority", "right"),
            ("as is", "right"),
            ("accuracy", "right"),
        ),
    )
    for row in early.results:
        fit = row.fit
        if row.scored is None:
            why = fit.reason if isinstance(fit, Skipped) else "one class in the test set: no score"
            shown.add_row(row.target, str(row.n_orders), f"{row.test_customers:,}", why)
            continue
        shown.add_row(
            row.target,
            str(row.n_orders),
            f"{row.test_customers:,}",
            fit.chosen,
            f"{fit.model.macro_f1:.3f}",
            f"{fit.majority.macro_f1:.3f}",
            f"{fit.first_orders_as_is.macro_f1:.3f}",
            f"{fit.model.accuracy:.1%}",
        )
    console.print(shown)
    for row in early.results:
        said = against_first_orders(row)
        if said:
            console.print(said)


def _print_interests(console: Console, interests: InterestsSection | Skipped | None, horizon_days: int) -> None:
    if isinstance(interests, Skipped):
        console.print(f"Interest groups: skipped ({interests.reason}).")
    if not isinstance(interests, InterestsSection):
        return
    groups = table(
        f"Interest groups: what customers buy ({interests.chosen} groups)",
        (("group", "left"), ("name", "left"), ("customers", "right"), ("buys more of than the shop does", "left")),
    )
    for group in interests.groups:
        groups.add_row(
            group["interest_group"], group["interest_group_name"], f"{group['customers_now']:,}", group["leads"]
        )
    console.print(groups)
    console.print(interests_in_words(interests, horizon_days))


def print_migration(console: Console, kind: str, migration: Migration) -> None:
    """Print the customers from each segment (rows, first date) to each (columns, second date) and the sentences."""
    from custseg.movement import matrix

    counts = matrix(pd.DataFrame(migration.flows))
    title = "Learned segments" if kind == "learned" else "RFM segments"
    shown = table(
        f"{title}: customers as of {migration.from_date} (rows) and {migration.to_date} (columns)",
        (("from \\ to", "left"), *((str(target), "right") for target in counts.columns), ("total", "right")),
    )
    for source, row in zip(counts.index, counts.to_numpy(), strict=True):
        shown.add_row(str(source), *(f"{count:,}" for count in row), f"{row.sum():,}")
    shown.add_row("total", *(f"{total:,}" for total in counts.sum(axis=0)), "")
    console.print(shown)
    for sentence in migration.sentences:
        console.print(sentence)
