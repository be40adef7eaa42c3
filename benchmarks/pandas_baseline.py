"""Plain pandas implementations that custseg's stages are measured against.

`features` does what custseg does from a UCI-layout log to one row per customer (the same rules
and definitions), the way a careful analyst would write it in pandas. `course_notebook` is the
published course solution's cleaning and RFM, with its row-by-row cancellation loop.
`course_vectorised` is the whole course pipeline as a careful analyst writes it today, vectorised
pandas and scikit-learn: cleaning with the cancellations matched, R / F / M, the 95th-percentile
trim, PCA + k-means over k, t-SNE + k-means over k, and a random forest that assigns the t-SNE
segments.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from custseg.clean import DEFAULT_NON_PRODUCT_CODES, CleanRules, allocate_returns

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_mb  # noqa: E402


def features(path: str) -> pd.DataFrame:
    """Customer features (recency, frequency, monetary, tenure) from a UCI-layout Parquet log."""
    log = pd.read_parquet(path)
    log = log[log.CustomerID.notna()]
    log = log[~log.duplicated(keep="first")]
    rules = CleanRules()
    code = log.StockCode.str.strip().str.upper()
    description = log.Description.fillna("").str.strip()
    non_product = (
        code.isin(DEFAULT_NON_PRODUCT_CODES)
        | log.StockCode.str.fullmatch(rules.non_product_code_pattern.removeprefix("(?i)"), flags=re.I)
        | description.str.fullmatch(rules.non_product_description_pattern.removeprefix("(?i)"), flags=re.I)
    )
    log = log[~non_product.fillna(False) & (log.Quantity != 0) & (log.UnitPrice > 0)]
    log = log.assign(row_id=np.arange(len(log)), customer_id=log.CustomerID.astype("int64").astype(str))
    log["product_key"] = log.StockCode
    returned_keys = log.loc[log.Quantity < 0, ["customer_id", "product_key"]].drop_duplicates()
    events = log.merge(returned_keys, on=["customer_id", "product_key"])
    allocation = allocate_returns(
        events.rename(columns={"InvoiceDate": "invoiced_at", "Quantity": "quantity"})[
            ["row_id", "customer_id", "product_key", "invoiced_at", "quantity"]
        ]
    )
    purchases = log[log.Quantity > 0].merge(allocation, on="row_id", how="left")
    returned = purchases.allocated_quantity.fillna(0)
    lines = pd.DataFrame(
        {
            "customer_id": purchases.customer_id,
            "invoice_id": purchases.InvoiceNo,
            "invoiced_at": purchases.InvoiceDate,
            "product_id": purchases.StockCode,
            "quantity": purchases.Quantity,
            "returned_quantity": returned,
            "net_quantity": purchases.Quantity - returned,
            "net_revenue": (purchases.Quantity - returned) * purchases.UnitPrice,
            "country": purchases.Country,
        }
    )
    as_of = (log.InvoiceDate.max() + pd.Timedelta(days=1)).normalize()
    return customers_from_lines(lines, as_of)


def customers_from_lines(lines: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The 15 customer features of custseg's features stage, from net lines, in pandas."""
    lines = lines[lines.invoiced_at < as_of]
    orders = lines.groupby(["customer_id", "invoice_id"]).agg(
        ordered_at=("invoiced_at", "min"), revenue=("net_revenue", "sum")
    )
    orders = orders[orders.revenue > 0].reset_index()
    orders["recent"] = orders.ordered_at >= as_of - pd.Timedelta(days=90)
    orders["recent_revenue"] = orders.revenue.where(orders.recent, 0.0)
    customers = orders.groupby("customer_id").agg(
        first_order_at=("ordered_at", "min"),
        last_order_at=("ordered_at", "max"),
        frequency=("invoice_id", "count"),
        monetary=("revenue", "sum"),
        orders_90d=("recent", "sum"),
        revenue_90d=("recent_revenue", "sum"),
    )
    customers["recency_days"] = (as_of - customers.last_order_at) // pd.Timedelta(days=1)
    customers["tenure_days"] = (as_of - customers.first_order_at) // pd.Timedelta(days=1)
    customers["avg_order_value"] = customers.monetary / customers.frequency
    span_days = (customers.last_order_at - customers.first_order_at) / pd.Timedelta(days=1)
    customers["mean_days_between_orders"] = (span_days / (customers.frequency - 1)).where(customers.frequency > 1)
    bought = lines[lines.net_quantity > 0]
    activity = bought.groupby("customer_id").agg(
        distinct_products=("product_id", "nunique"), lines=("product_id", "size")
    )
    sums = lines.groupby("customer_id")[["returned_quantity", "quantity"]].sum()
    by_country = lines.groupby(["customer_id", "country"]).net_revenue.sum().reset_index()
    by_country = by_country.sort_values(["customer_id", "net_revenue", "country"], ascending=[True, False, True])
    main_country = by_country.drop_duplicates("customer_id").set_index("customer_id").country
    customers = customers.join(activity, how="left")
    customers["returned_share"] = (sums.returned_quantity / sums.quantity).reindex(customers.index)
    customers["main_country"] = main_country.reindex(customers.index)
    return customers


def lines_features(path: str) -> pd.DataFrame:
    """The features stage alone: customers from a Parquet file of custseg's ``lines``."""
    lines = pd.read_parquet(path)
    as_of = (lines.invoiced_at.max() + pd.Timedelta(days=1)).normalize()
    return customers_from_lines(lines, as_of)


def course_notebook(path: str) -> pd.DataFrame:
    """The course solution: its cleaning (with the row loop for cancellations) and R, F, M."""
    df = pd.read_parquet(path)
    df = df.dropna(subset=["CustomerID"]).drop_duplicates()
    df["QuantityCanceled"] = 0
    to_drop = []
    for index, row in df.iterrows():
        if row.Quantity > 0 or row.Description == "Discount":
            continue
        earlier = df[
            (df.CustomerID == row.CustomerID)
            & (df.StockCode == row.StockCode)
            & (df.InvoiceDate < row.InvoiceDate)
            & (df.Quantity > 0)
        ]
        if len(earlier) == 1:
            df.loc[earlier.index[0], "QuantityCanceled"] = -row.Quantity
            to_drop.append(index)
        elif len(earlier) > 1:
            for candidate in earlier.sort_index(ascending=False).index:
                if df.loc[candidate, "Quantity"] >= -row.Quantity:
                    df.loc[candidate, "QuantityCanceled"] = -row.Quantity
                    to_drop.append(index)
                    break
    df = df[df.Quantity >= 0]
    df = df[~df.StockCode.str.contains("^[a-zA-Z]+", regex=True)]
    df = df[df.UnitPrice > 0]
    df["TotalPrice"] = df.UnitPrice * (df.Quantity - df.QuantityCanceled)
    reference = pd.Timestamp("2011-12-10")
    return df.groupby("CustomerID").agg(
        Recency=("InvoiceDate", lambda d: (reference - d.max()).days),
        Frequency=("InvoiceNo", "nunique"),
        Monetary=("TotalPrice", "sum"),
    )


def course_vectorised(path: str) -> pd.DataFrame:
    """The course pipeline, vectorised: cleaning, R/F/M, PCA + k-means, t-SNE + k-means, a random forest."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    df = pd.read_parquet(path).dropna(subset=["CustomerID"]).drop_duplicates().reset_index(drop=True)
    # Each cancellation is absorbed by the customer's latest earlier purchase of the product.
    cancels = df[(df.Quantity < 0) & (df.Description != "Discount")].sort_values("InvoiceDate")
    purchases = df[df.Quantity > 0].reset_index().sort_values("InvoiceDate")
    matched = pd.merge_asof(
        cancels[["InvoiceDate", "CustomerID", "StockCode", "Quantity"]],
        purchases[["InvoiceDate", "CustomerID", "StockCode", "index"]],
        on="InvoiceDate",
        by=["CustomerID", "StockCode"],
        direction="backward",
        allow_exact_matches=False,
    ).dropna(subset=["index"])
    canceled = (-matched.Quantity).groupby(matched["index"].astype(int)).sum()
    df["QuantityCanceled"] = canceled.reindex(df.index).fillna(0)
    df = df[(df.Quantity >= 0) & ~df.StockCode.str.contains("^[a-zA-Z]+", regex=True) & (df.UnitPrice > 0)]
    df["TotalPrice"] = df.UnitPrice * (df.Quantity - df.QuantityCanceled)
    reference = pd.Timestamp("2011-12-10")
    rfm = df.groupby("CustomerID").agg(
        Recency=("InvoiceDate", "max"), Frequency=("InvoiceNo", "nunique"), Monetary=("TotalPrice", "sum")
    )
    rfm["Recency"] = (reference - rfm.Recency).dt.days
    rfm = rfm[(rfm.Frequency <= rfm.Frequency.quantile(0.95)) & (rfm.Monetary <= rfm.Monetary.quantile(0.95))]
    scaled = StandardScaler().fit_transform(rfm)
    pca = PCA(2).fit_transform(scaled)
    best = max(
        range(2, 11),
        key=lambda k: silhouette_score(pca, KMeans(k, n_init=10, random_state=42).fit_predict(pca)),
    )
    rfm["pca_segment"] = KMeans(best, n_init=10, random_state=42).fit_predict(pca)
    embedded = TSNE(2, perplexity=50, random_state=100).fit_transform(scaled)
    labels = {k: KMeans(k, n_init=10, random_state=42).fit_predict(embedded) for k in range(3, 9)}
    chosen = max(labels, key=lambda k: silhouette_score(embedded, labels[k]))
    rfm["tsne_segment"] = labels[chosen]
    train_x, test_x, train_y, test_y = train_test_split(
        rfm[["Recency", "Frequency", "Monetary"]], rfm.tsne_segment, test_size=0.2, random_state=42
    )
    forest = RandomForestClassifier(random_state=42).fit(train_x, train_y)
    rfm.attrs["forest_accuracy"] = forest.score(test_x, test_y)
    return rfm


if __name__ == "__main__":
    which, path = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    result = {
        "features": features,
        "lines_features": lines_features,
        "course_notebook": course_notebook,
        "course_vectorised": course_vectorised,
    }[which](path)
    print(f"{time.perf_counter() - start:.3f} {len(result)} {peak_mb():.0f}")
