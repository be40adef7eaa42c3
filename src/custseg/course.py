"""The published course pipeline on the UCI data, reproduced so a student can compare it with custseg.

A widely taught solution cleans the log its own way, drops every customer above the 95th
percentile of frequency or spend, scales R, F and M, and clusters a PCA or t-SNE projection with
k-means, choosing k by silhouette. ``custseg run DATA --recipe course`` runs exactly that and
reports each published figure next to the reproduced one (see ../shared/REFERENCE.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from custseg.schema import SOURCE_COLUMNS

REFERENCE_DATE = pd.Timestamp("2011-12-10")

PUBLISHED = {
    "rows_raw": 541_909,
    "rows_with_customer": 406_829,
    "rows_without_duplicates": 401_604,
    "rows_without_negative_quantity": 392_732,
    "rows_without_letter_codes": 391_183,
    "rows_final": 391_150,
    "customers": 4_334,
    "customers_after_trim": 4_044,
    "pca_k": 3,
    "pca_silhouette": 0.524,
    "pca_pc1_variance": 0.68,
    "tsne_k": 7,
    "tsne_silhouette": 0.484,
}
"""The course's figures (../shared/REFERENCE.md, analysis A)."""


def course_cleaning(transactions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clean as the course does, in its order, counting the rows left after each step.

    Parameters
    ----------
    transactions : DataFrame of shape (n_rows, n_columns)
        The canonical transactions in file order (row_id ascending).

    Returns
    -------
    lines : DataFrame
        The kept rows with ``quantity_canceled`` and ``total_price``.
    counts : dict of str to int
        Rows left after each step.
    """
    counts = {"rows_raw": len(transactions)}
    frame = transactions[transactions.customer_id.notna()]
    counts["rows_with_customer"] = len(frame)
    frame = frame[~frame.duplicated(subset=list(SOURCE_COLUMNS), keep="first")].copy()
    counts["rows_without_duplicates"] = len(frame)
    frame["quantity_canceled"] = _quantity_canceled(frame)
    frame = frame[frame.quantity >= 0]
    counts["rows_without_negative_quantity"] = len(frame)
    frame = frame[~frame.product_id.str.contains(r"^[a-zA-Z]+", regex=True)]
    counts["rows_without_letter_codes"] = len(frame)
    frame = frame[frame.unit_price != 0]
    counts["rows_final"] = len(frame)
    frame = frame.assign(total_price=frame.unit_price * (frame.quantity - frame.quantity_canceled))
    return frame, counts


def _quantity_canceled(frame: pd.DataFrame) -> np.ndarray:
    """Allocate each cancellation to one earlier purchase line, as the course does.

    For a negative line (not a discount), the customer's earlier positive lines of the same
    product: with exactly one, it absorbs the whole cancelled quantity; with several, the last in
    file order whose quantity is at least the cancelled quantity does; a later cancellation
    overwrites an earlier one on the same line, as in the course's code.
    """
    canceled = np.zeros(len(frame))
    positions = np.arange(len(frame))
    purchases = frame.quantity.to_numpy() > 0
    groups = {}
    for key, rows in pd.Series(positions[purchases]).groupby(
        [frame.customer_id.to_numpy()[purchases], frame.product_id.to_numpy()[purchases]], sort=False
    ):
        groups[key] = rows.to_numpy()
    times = frame.invoiced_at.to_numpy()
    quantities = frame.quantity.to_numpy()
    cancellations = np.flatnonzero((quantities < 0) & (frame.description.to_numpy() != "Discount"))
    customers, products = frame.customer_id.to_numpy(), frame.product_id.to_numpy()
    for i in cancellations:
        rows = groups.get((customers[i], products[i]))
        if rows is None:
            continue
        earlier = rows[times[rows] < times[i]]
        if len(earlier) == 1:
            canceled[earlier[0]] = -quantities[i]
        elif len(earlier) > 1:
            for row in earlier[::-1]:
                if quantities[row] >= -quantities[i]:
                    canceled[row] = -quantities[i]
                    break
    return canceled


def course_rfm(lines: pd.DataFrame) -> pd.DataFrame:
    """Recency (days from the last line to 2011-12-10), frequency (invoices), monetary (total price)."""
    grouped = lines.groupby("customer_id")
    return pd.DataFrame(
        {
            "recency": (REFERENCE_DATE - grouped.invoiced_at.max()).dt.days,
            "frequency": grouped.invoice_id.nunique(),
            "monetary": grouped.total_price.sum(),
        }
    )


def _best_k(points: np.ndarray, ks: range, seed: int) -> tuple[int, np.ndarray, list[dict]]:
    table, best = [], None
    for k in ks:
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(points)
        row = {
            "k": k,
            "silhouette": round(float(silhouette_score(points, labels)), 4),
            "calinski_harabasz": round(float(calinski_harabasz_score(points, labels)), 1),
            "davies_bouldin": round(float(davies_bouldin_score(points, labels)), 4),
        }
        table.append(row)
        if best is None or row["silhouette"] > best[1]:
            best = (k, row["silhouette"], labels)
    return best[0], best[2], table


def run_course(transactions: pd.DataFrame, *, tsne: bool = True) -> tuple[pd.DataFrame, dict]:
    """Reproduce the course pipeline and compare every figure with the published one.

    Returns
    -------
    customers : DataFrame
        The trimmed customers with recency, frequency, monetary, pca_segment, tsne_segment.
    report : dict
        Row counts, trim thresholds, the PCA and t-SNE k-means tables, the chosen k and segment
        means, and ``comparison``: each published figure, the reproduced one and its tolerance.
    """
    lines, counts = course_cleaning(transactions.sort_values("row_id"))
    rfm = course_rfm(lines)
    counts["customers"] = len(rfm)
    f_limit, m_limit = rfm.frequency.quantile(0.95), rfm.monetary.quantile(0.95)
    trimmed = rfm[(rfm.frequency <= f_limit) & (rfm.monetary <= m_limit)].copy()
    counts["customers_after_trim"] = len(trimmed)
    scaled = StandardScaler().fit_transform(trimmed[["recency", "frequency", "monetary"]])
    pca = PCA(2).fit(scaled)
    projected = pca.transform(scaled)
    pca_k, pca_labels, pca_table = _best_k(projected, range(2, 11), 42)
    trimmed["pca_segment"] = pca_labels
    report = {
        "counts": counts,
        "trim": {"frequency_above": float(f_limit), "monetary_above": round(float(m_limit), 2)},
        "pca": {"pc1_variance": round(float(pca.explained_variance_ratio_[0]), 4), "k": pca_k, "table": pca_table},
        "pca_segment_means": _means(trimmed, "pca_segment"),
    }
    figures = {
        **counts,
        "pca_k": pca_k,
        "pca_silhouette": next(r["silhouette"] for r in pca_table if r["k"] == pca_k),
        "pca_pc1_variance": report["pca"]["pc1_variance"],
    }
    if tsne:
        from openTSNE import TSNE

        embedding = np.asarray(TSNE(perplexity=50, n_jobs=2, random_state=100).fit(scaled))
        tsne_k, tsne_labels, tsne_table = _best_k(embedding, range(3, 9), 42)
        trimmed["tsne_segment"] = tsne_labels
        report["tsne"] = {"k": tsne_k, "table": tsne_table}
        report["tsne_segment_means"] = _means(trimmed, "tsne_segment")
        figures["tsne_k"] = tsne_k
        figures["tsne_silhouette"] = next(r["silhouette"] for r in tsne_table if r["k"] == tsne_k)
    report["comparison"] = compare(figures)
    return trimmed, report


def _means(customers: pd.DataFrame, column: str) -> list[dict]:
    means = customers.groupby(column)[["recency", "frequency", "monetary"]].mean().round(1)
    means["customers"] = customers.groupby(column).size()
    return means.sort_values("monetary", ascending=False).reset_index().to_dict(orient="records")


def compare(figures: dict) -> list[dict]:
    """Each published figure, the reproduced one, the tolerance and whether it holds.

    Tolerances (../shared/REFERENCE.md): counts and the PCA k exact, PCA silhouette within 0.02,
    t-SNE k within 6..8 and silhouette within 0.05 (any t-SNE implementation).
    """
    rows = []
    for name, published in PUBLISHED.items():
        if name not in figures:
            continue
        ours = figures[name]
        if name == "pca_silhouette":
            tolerance, holds = "within 0.02", abs(ours - published) <= 0.02
        elif name == "tsne_silhouette":
            tolerance, holds = "within 0.05", abs(ours - published) <= 0.05
        elif name == "tsne_k":
            tolerance, holds = "6 to 8", 6 <= ours <= 8
        elif name == "pca_pc1_variance":
            tolerance, holds = "within 0.01", abs(ours - published) <= 0.01
        else:
            tolerance, holds = "exact", ours == published
        rows.append(
            {"figure": name, "published": published, "reproduced": ours, "tolerance": tolerance, "holds": bool(holds)}
        )
    return rows
