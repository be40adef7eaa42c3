"""Data quality: rows in, kept and rejected per reason; the revenue reconciliation; the date range."""

from __future__ import annotations

import plotly.graph_objects as go

from custseg.report.charts import Chart, Section, Table, layout
from custseg.report.data import ReportData


def data_quality(data: ReportData) -> Section:
    """Show rows in, kept and rejected per reason; the revenue reconciliation; the date range."""
    record = data.record
    rows, reconciliation, span = record.rows, record.reconciliation, record.span
    reasons = {reason: count for reason, count in rows.rejected_by_reason.items() if count}
    waterfall = go.Figure(
        go.Waterfall(
            x=["input rows", *reasons, "kept purchase lines"],
            measure=["absolute", *["relative"] * len(reasons), "total"],
            y=[rows.input_rows, *[-count for count in reasons.values()], 0],
            text=[f"{rows.input_rows:,}", *[f"-{c:,}" for c in reasons.values()], f"{rows.kept_rows:,}"],
            textposition="outside",
            connector={"line": {"color": "#bbb"}},
            decreasing={"marker": {"color": "#d62728"}},
            totals={"marker": {"color": "#2ca02c"}},
        )
    )
    biggest = max(reasons, key=reasons.get) if reasons else None
    reading = f"Of {rows.input_rows:,} input rows, {rows.kept_rows:,} ({rows.kept_rows / rows.input_rows:.1%})"
    reading += " are kept as purchase lines"
    if biggest:
        reading += (
            f"; the largest group set aside is {biggest.replace('_', ' ')} ({reasons[biggest]:,} rows, "
            f"{reasons[biggest] / rows.input_rows:.1%} of the input)."
        )
    else:
        reading += "; nothing was set aside."
    table = Table(
        "Revenue reconciliation",
        ["item", "amount"],
        [
            ["input amount (quantity x price, every parseable row)", data.money(reconciliation.input_amount)],
            ["gross sales of the kept lines", data.money(reconciliation.gross_sales)],
            *[
                [f"rejected: {reason.replace('_', ' ')}", data.money(amount)]
                for reason, amount in reconciliation.rejected_amount.items()
            ],
            ["returns netted against kept lines", "-" + data.money(reconciliation.returns_matched)],
            *(
                [["orders' refunds, spread over their lines", "-" + data.money(reconciliation.refunds)]]
                if reconciliation.refunds
                else []
            ),
            ["net revenue", data.money(reconciliation.net_revenue)],
            ["balanced to the cent", "yes" if reconciliation.balanced else "NO"],
        ],
    )
    intro = (
        f"{span.customers:,} customers placed {span.orders:,} orders for {span.products:,} products "
        f"between {span.first_invoiced_at.date()} and {span.last_invoiced_at.date()}. Every input row is "
        "either kept or set aside with a reason (rejected.parquet lists them)."
    )
    chart = Chart("From input rows to purchase lines", reading, layout(waterfall))
    return Section("quality", "Data quality", intro, [chart], [table])
