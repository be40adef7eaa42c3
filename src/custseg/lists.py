"""The lists a marketer loads into an email or ads tool: one CSV per segment, and which segmentation to follow.

A run has two segmentations, the RFM map and the learned segments; a marketer acts on one. The
learned segments are recommended when the backtest scored them at least as well as the RFM map on
the shop's own history, within a standard error (or they are kept from an earlier run); otherwise
the RFM map is. Each list
is a CSV whose first column is what Klaviyo's and Mailchimp's list imports key on: ``Email Address``
when the customer ids are e-mail addresses (a Shopify export), else ``Customer ID``, to be matched
to the shop's contacts. Every customer with a segment is in exactly one list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from custseg.record import BacktestSection, RunRecord, SegmentsSection

LISTS_FOLDER = "lists"
"""The folder of a run's lists, beside report.html."""

SEGMENTATIONS = ("learned", "rfm")
"""The segmentations a list can follow: the learned segments or the RFM map."""

LIST_COLUMNS = ("customer_id", "main_country", "last_order_at", "recency_days", "frequency", "monetary")
"""The customer columns every list carries, besides the segment's and the expected value's."""


@dataclass(frozen=True)
class Recommendation:
    """Which segmentation to act on, and why, in plain words."""

    segmentation: str
    reason: str


def recommended_segmentation(record: RunRecord) -> Recommendation:
    """Say which segmentation a marketer should act on, from the backtest's scores of both."""
    segments = record.segments if isinstance(record.segments, SegmentsSection) else None
    backtest = record.backtest if isinstance(record.backtest, BacktestSection) else None
    if segments is None:
        return Recommendation("rfm", "there are no learned segments in this run, so the lists follow the RFM map")
    if segments.kept is not None:
        return Recommendation(
            "learned", f"these are the segments kept from the earlier run {segments.kept.run}, so they can be followed"
        )
    if backtest is None or segments.backtest is None:
        return Recommendation(
            "learned",
            "each learned segment is a rule true of every member; the history is too short to test either "
            "segmentation on what customers did next",
        )
    learned, rfm = segments.backtest.validity, backtest.rfm.validity
    # Closer than the larger standard error, the two told customers apart equally well.
    tied = abs(learned - rfm) < max(segments.backtest.validity_se, backtest.rfm.validity_se)
    tested = f"tested on the shop's history ({backtest.as_of.date()} and the {backtest.horizon_days} days after)"
    scores = f"score {learned:.3f} against {rfm:.3f}, out of 1"
    if tied:
        return Recommendation(
            "learned",
            f"{tested}, they told apart who would order again and what they would spend as well as the RFM map "
            f"({scores}), and each is a rule true of every member",
        )
    if learned > rfm:
        return Recommendation(
            "learned",
            f"{tested}, they told apart who would order again and what they would spend better than the RFM map "
            f"({scores}), and each is a rule true of every member",
        )
    return Recommendation(
        "rfm",
        f"{tested}, the RFM map told apart who would order again and what they would spend better than the "
        f"learned segments (score {rfm:.3f} against {learned:.3f}, out of 1)",
    )


def list_file_name(segment: str, name: str) -> str:
    """Name a segment's list file: ``S1-champions.csv``; an RFM segment, named by its id, ``can-t-lose-them.csv``."""
    words = "-".join(re.findall(r"[^\W_]+", name.casefold()))[:60].strip("-")
    if segment == name:
        return f"{words or 'segment'}.csv"
    return f"{segment}-{words}.csv" if words else f"{segment}.csv"


def segment_lists(
    customers: pd.DataFrame,
    segments: pd.DataFrame,
    *,
    segmentation: str,
    horizon_days: int,
    currency: str | None,
) -> dict[str, pd.DataFrame]:
    """Split the customers into one import-ready list per segment of one segmentation.

    Parameters
    ----------
    customers : DataFrame
        One row per customer: `LIST_COLUMNS`, ``segment`` and ``rfm_segment``, and the expected value
        columns ``p_order_again_{H}d`` and ``expected_revenue_{H}d`` where the value stage ran.
    segments : DataFrame
        segments.csv's rows (``kind``, ``segment``, ``name``, ``action``).
    segmentation : {"learned", "rfm"}
        Which segmentation the lists follow (`recommended_segmentation`).
    horizon_days : int
        H, the days the expected value covers.
    currency : str or None
        The ISO 4217 code of the amounts, written in the amount columns' names and a column of its own.

    Returns
    -------
    dict of str to DataFrame
        File name (`list_file_name`) -> the segment's customers, highest expected revenue first, with
        the columns an import reads: ``Email Address`` or ``Customer ID`` first, then the segment, its
        name and action, the expected value, the last order date and the country.
    """
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"segmentation={segmentation!r} must be one of {', '.join(SEGMENTATIONS)}")
    column = "segment" if segmentation == "learned" else "rfm_segment"
    rows = segments[segments["kind"] == segmentation].set_index("segment")
    unit = f" ({currency})" if currency else ""
    with_emails = bool(len(customers)) and customers["customer_id"].astype(str).str.contains("@", regex=False).all()
    key = "Email Address" if with_emails else "Customer ID"
    revenue, chance = f"expected_revenue_{horizon_days}d", f"p_order_again_{horizon_days}d"
    lists = {}
    for segment, row in rows.iterrows():
        members = customers[customers[column].astype(str) == str(segment)]
        if revenue in members.columns:
            members = members.sort_values([revenue, "customer_id"], ascending=[False, True], kind="stable")
        listed = pd.DataFrame(
            {
                key: members["customer_id"].astype(str).to_numpy(),
                "Segment": segment,
                "Segment Name": row["name"],
                "Action": row["action"],
            }
        )
        if revenue in members.columns:
            listed[f"Chance Of Ordering In {horizon_days} Days"] = members[chance].round(3).to_numpy()
            listed[f"Expected Revenue {horizon_days} Days{unit}"] = members[revenue].round(2).to_numpy()
        listed["Last Order Date"] = pd.to_datetime(members["last_order_at"]).dt.strftime("%Y-%m-%d").to_numpy()
        listed["Orders"] = members["frequency"].to_numpy()
        listed[f"Spent In All{unit}"] = members["monetary"].round(2).to_numpy()
        listed["Country"] = members["main_country"].to_numpy()
        listed["Currency"] = currency or ""
        lists[list_file_name(str(segment), str(row["name"]))] = listed
    return lists


def write_lists(folder: Path, lists: dict[str, pd.DataFrame]) -> list[Path]:
    """Write each list as UTF-8 CSV (no index) into ``folder``, emptied of earlier lists first."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    written = []
    for file_name, listed in lists.items():
        target = folder / file_name
        listed.to_csv(target, index=False, encoding="utf-8")
        written.append(target)
    return written
