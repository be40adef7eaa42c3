"""The notebook's view of a run: one screen with the input, the cleaning, the customers and the segments."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from custseg.record import RunRecord, SegmentsSection, Skipped
from custseg.report.headline import headline


def summary_html(record: RunRecord, report_path: Path | None) -> str:
    """Return the HTML a notebook shows for a `custseg.Run` (its ``_repr_html_``)."""
    escape, figures = html.escape, headline(record)
    parts = [f"<h4>custseg run of {escape(record.input.path if record.input else '')}</h4>"]
    if record.course is not None:
        counts, comparison = record.course["counts"], record.course["comparison"]
        held = sum(row["holds"] for row in comparison)
        parts.append(
            f"<p>The published course pipeline (<code>--recipe course</code>): {counts['rows_raw']:,} rows to "
            f"{counts['rows_final']:,}, {counts['customers']:,} customers, {counts['customers_after_trim']:,} after "
            f"its trim of the top customers; {held} of {len(comparison)} published figures reproduced.</p>"
        )
    elif record.rows is None:
        parts.append("<p>No cleaning (the run stopped before it).</p>")
    else:
        rows = record.rows
        reasons = sorted(((n, r) for r, n in rows.rejected_by_reason.items() if n), reverse=True)
        text = f"{rows.input_rows:,} rows: {figures.kept_rows:,} kept, {figures.rejected_rows:,} rejected"
        if reasons:
            text += " (" + ", ".join(f"{escape(r)} {n:,}" for n, r in reasons[:4]) + ")"
        if figures.net_revenue is not None:
            currency = f" {escape(figures.currency)}" if figures.currency else ""
            text += (
                f"; revenue {'reconciled' if figures.balanced else 'NOT reconciled'}: "
                f"{figures.net_revenue:,.2f}{currency} net"
            )
        parts.append(f"<p>{text}.</p>")
    if figures.customers is not None:
        parts.append(f"<p>{figures.customers:,} customers as of {figures.as_of}.</p>")
    segments = record.segments
    if isinstance(segments, SegmentsSection):
        parts.append(f"<p>Learned segments: {escape(segments.reason)}.</p>")
        if figures.backtest_validity is not None and figures.rfm_validity is not None:
            backtest = record.backtest
            parts.append(
                f"<p>Backtest ({backtest.horizon_days} days after {backtest.as_of.date()}, "
                f"{backtest.customers:,} customers): validity {figures.backtest_validity:.3f} learned, "
                f"{figures.rfm_validity:.3f} RFM map.</p>"
            )
        cells = "".join(
            f"<tr><td>{escape(p.segment)}</td><td>{escape(p.name)}</td><td>{p.customers:,}</td>"
            f"<td>{p.share:.1%}</td><td>{p.revenue_share:.1%}</td></tr>"
            for p in pd.DataFrame(segments.profiles).itertuples()
        )
        parts.append(
            "<table><tr><th>segment</th><th>name</th><th>customers</th><th>share</th><th>revenue share</th></tr>"
            f"{cells}</table>"
        )
    elif isinstance(segments, Skipped):
        parts.append(f"<p>Learned segments skipped: {escape(segments.reason)}.</p>")
    if report_path is not None:
        link = escape(report_path.resolve().as_uri())
        parts.append(f'<p>Report: <a href="{link}">{escape(str(report_path))}</a></p>')
    return "\n".join(parts)
