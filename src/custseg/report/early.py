"""New customers: the early prediction measured on customers it never saw."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from custseg.early import MIN_GAIN_OVER_AS_IS
from custseg.record import EarlyFit, EarlyResult, EarlySection
from custseg.report.charts import Chart, Section, Table, layout, share, wrap
from custseg.report.data import ReportData


def early(data: ReportData) -> Section | None:
    """Show the early-prediction hold-out: results per target and number of orders, confusion matrices."""
    described = data.record.early
    if not isinstance(described, EarlySection):
        return None
    names = {"segment": data.segment_names, "category": data.category_labels}
    results = [row for row in described.results if row.scored]
    degenerate = [row for row in described.results if isinstance(row.fit, EarlyFit) and row.fit.degenerate]
    if not results and not degenerate:
        return None
    joined_from = described.test_joined_from.date() if described.test_joined_from else "-"
    table = Table(
        f"Hold-out results: {described.eligible_customers:,} eligible customers, tested on those who joined "
        f"from {joined_from}",
        [
            "target",
            "first orders",
            "test customers",
            "model",
            "macro-F1",
            "majority class",
            "first orders as is",
            "accuracy",
        ],
        [
            [
                row.target,
                str(row.n_orders),
                f"{row.test_customers:,}",
                row.fit.chosen.replace("_", " "),
                f"{row.fit.model.macro_f1:.3f}",
                f"{row.fit.majority.macro_f1:.3f}",
                f"{row.fit.first_orders_as_is.macro_f1:.3f}",
                share(row.fit.model.accuracy),
            ]
            for row in results
        ],
    )
    charts, measured = [], []
    for target in ("segment", "category"):
        rows = [row for row in results if row.target == target]
        if not rows:
            continue
        row, fit = rows[0], rows[0].fit
        matrix = np.array(fit.confusion_matrix.rows_true_columns_predicted, dtype=float)
        labels = fit.confusion_matrix.labels
        full_names = [f"{label} {names[target].get(label, '')}".strip() for label in labels]
        rows_named = [wrap(name, 36) for name in full_names]
        row_height = 30 if any("<br>" in name for name in rows_named) else 22
        totals = matrix.sum(axis=1, keepdims=True)
        # Rows read across with the whole name; columns by id (a long name turned on its side is unreadable),
        # both names whole on hover.
        figure = go.Figure(
            go.Heatmap(
                z=np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0) * 100,
                x=list(labels),
                y=rows_named,
                # Empty cells blank: the few numbers that count stand out.
                text=[[f"{int(v):,}" if v else "" for v in row] for row in matrix],
                texttemplate="%{text}",
                customdata=[full_names] * len(full_names),
                colorscale="Purples",
                colorbar={"title": "% of row"},
                hovertemplate="truth %{y}<br>predicted %{customdata}<br>%{z:.0f}% of the row<extra></extra>",
            )
        )
        figure.update_yaxes(autorange="reversed", title_text="what they became", dtick=1)
        figure.update_xaxes(title_text="predicted from the first order (id; names on the left)", dtick=1)
        gain = fit.model.macro_f1 - fit.majority.macro_f1
        measured.append(
            f"The {target} from the first order: macro-F1 {fit.model.macro_f1:.3f} on the hold-out, {gain:+.3f} "
            f"over always predicting the most common {target}."
        )
        charts.append(
            Chart(
                f"Predicting the {target} from the first order: confusion matrix on unseen customers",
                f"Of {row.test_customers:,} customers no model saw, {fit.model.accuracy:.0%} were predicted right; "
                f"always guessing the most common {target} would be right for {fit.majority.accuracy:.0%} but "
                f"would never name another.",
                layout(figure, max(420, 140 + row_height * len(labels))),
            )
        )
    intro = (
        "What a new customer will become, predicted from their first orders, and what they will buy most; "
        "tested on the customers who joined last, whom no model saw."
    )
    method = " ".join([described.protocol[0].upper() + described.protocol[1:] + ".", *measured])
    for row in degenerate:
        intro += f" {row.target.capitalize()} after {row.n_orders} first order(s): {row.fit.degenerate}."
    for row in results:
        said = against_first_orders(row)
        method += f" {said}" if said else ""
    return Section("early", "New customers", intro, charts, [table] if results else [], method=method)


def against_first_orders(result: EarlyResult) -> str | None:
    """Say plainly whether the early model adds anything to the first orders taken as they are.

    None for a row without scores or with a learned model that beats the first orders on the
    hold-out by `MIN_GAIN_OVER_AS_IS` or more.
    """
    fit = result.fit
    if not isinstance(fit, EarlyFit) or fit.degenerate:
        return None
    what = f"{result.target.capitalize()} after {result.n_orders} first order(s)"
    as_is, model = fit.first_orders_as_is.macro_f1, fit.model.macro_f1
    if fit.chosen == "first_orders_lookup":
        return (
            f"{what}: no learned model beat the first orders taken as they are by {MIN_GAIN_OVER_AS_IS} macro-F1 "
            f"in cross-validation, so custseg predicts what the first orders show (hold-out macro-F1 {model:.3f})."
        )
    if model < as_is + MIN_GAIN_OVER_AS_IS:
        return (
            f"{what}: the {fit.chosen.replace('_', ' ')} scores {model:.3f} on the hold-out, not {MIN_GAIN_OVER_AS_IS} "
            f"above the first orders taken as they are ({as_is:.3f}): it adds nothing to them there."
        )
    return None
