"""How does the simulated shop look in Shopify's admin orders export? One row per line item.

Shopify writes the order's own fields (email, financial status, totals, refunded amount) on its
first row only. The same simulated log is rewritten that way, with unpaid, voided and refunded
orders, and customers known by their email.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SHOPIFY_HEADER = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,Currency,Subtotal,"
    "Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,Created at,Lineitem quantity,Lineitem name,"
    "Lineitem price,Lineitem compare at price,Lineitem sku,Lineitem requires shipping,Lineitem taxable,"
    "Lineitem fulfillment status,Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,"
    "Billing City,Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,"
    "Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,Shipping Province,"
    "Shipping Country,Shipping Phone,Notes,Note Attributes,Cancelled at,Payment Method,Payment Reference,"
    "Refunded Amount,Vendor,Outstanding Balance,Employee,Location,Device ID,Id,Tags,Risk Level,Source,"
    "Lineitem discount,Tax 1 Name,Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,Tax 4 Name,"
    "Tax 4 Value,Tax 5 Name,Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,Shipping Province Name,"
    "Payment ID,Payment Terms Name,Next Payment Due At,Payment References"
).split(",")
"""The columns of Shopify's admin "Export orders" CSV, in its order."""

SHOPIFY_STATUSES = {
    "paid": 0.935,
    "partially_refunded": 0.03,
    "refunded": 0.02,
    "voided": 0.01,
    "pending": 0.003,
    "authorized": 0.001,
    "expired": 0.001,
}
"""Financial statuses of the simulated Shopify orders, and their shares."""


def emails(customer_ids: np.ndarray) -> np.ndarray:
    """Return the email address of every simulated customer id: ``customer12346@example.com``."""
    return np.array([f"customer{int(c)}@example.com" for c in customer_ids], dtype=object)


def as_shopify_export(log: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Write a simulated log as Shopify's admin orders export: one row per line item.

    The order's own fields (email, financial status, totals, billing country, refunded amount) are
    on its first row only; the customer is an email (written in mixed case and with spaces now and
    then); ``Created at`` carries the UK offset of the day (``+0100`` in summer). Postage lines
    become the order's shipping, fee and adjustment lines and exact duplicates are dropped, and the
    log's returns become refunds: a share of orders (`SHOPIFY_STATUSES`) is refunded in full or in
    part, voided or never paid.
    """
    import pandas as pd

    frame = log.to_pandas()
    frame = frame[~frame.InvoiceNo.str.startswith("C") & ~frame.StockCode.isin(["M", "BANK CHARGES"])]
    frame = frame[~frame.duplicated(keep="first")]
    postage = frame.StockCode == "POST"
    shipping = (frame[postage].Quantity * frame[postage].UnitPrice).groupby(frame[postage].InvoiceNo).sum()
    lines = frame[~postage].reset_index(drop=True)
    first = ~lines.InvoiceNo.duplicated()
    per_order = lines.assign(amount=lines.Quantity * lines.UnitPrice).groupby("InvoiceNo", sort=False)
    orders = pd.DataFrame({"subtotal": per_order.amount.sum()})
    orders["shipping"] = shipping.reindex(orders.index).fillna(0.0)
    orders["total"] = orders.subtotal + orders.shipping
    statuses = list(SHOPIFY_STATUSES)
    shares = np.array(list(SHOPIFY_STATUSES.values()))
    orders["status"] = np.array(statuses, dtype=object)[rng.choice(len(statuses), len(orders), p=shares / shares.sum())]
    refunded = np.where(orders.status == "refunded", orders.total, 0.0)
    part = orders.status == "partially_refunded"
    refunded[part.to_numpy()] = np.round(orders.total[part] * rng.uniform(0.2, 0.8, int(part.sum())), 2)
    orders["refunded"] = refunded

    created = pd.to_datetime(lines.InvoiceDate).dt.tz_localize("Europe/London", nonexistent="shift_forward")
    created_text = created.dt.strftime("%Y-%m-%d %H:%M:%S %z")
    email = pd.Series(emails(lines.CustomerID.fillna(0).to_numpy()), dtype=object)
    styled = rng.random(len(lines))
    email = email.where(styled > 0.1, email.str.replace("customer", "Customer").str.replace("example", "Example"))
    email = email.where(styled < 0.95, "  " + email + " ")
    email = email.where(lines.CustomerID.notna(), "")
    order_of_line = orders.loc[lines.InvoiceNo]
    paid = order_of_line.status.isin(["paid", "partially_refunded", "refunded"]).to_numpy()

    def once(values) -> pa.Array:
        """Write the order's value on its first row, blank on the others."""
        text = pd.Series(np.asarray(values, dtype=object)).where(first.to_numpy(), "")
        return pa.array(text.astype(str).tolist(), pa.string())

    def money(values) -> np.ndarray:
        return np.array([f"{v:.2f}" for v in np.asarray(values, dtype=float)], dtype=object)

    columns = {
        "Name": pa.array(("#" + lines.InvoiceNo).tolist(), pa.string()),
        "Email": once(email),
        "Financial Status": once(order_of_line.status),
        "Paid at": once(np.where(paid, created_text, "")),
        "Currency": once(np.full(len(lines), "GBP", dtype=object)),
        "Subtotal": once(money(order_of_line.subtotal)),
        "Shipping": once(money(order_of_line.shipping)),
        "Taxes": once(money(np.zeros(len(lines)))),
        "Total": once(money(order_of_line.total)),
        "Created at": once(created_text),
        "Lineitem quantity": pa.array(lines.Quantity.astype(str).tolist(), pa.string()),
        "Lineitem name": pa.array(lines.Description.fillna("").tolist(), pa.string()),
        "Lineitem price": pa.array(money(lines.UnitPrice).tolist(), pa.string()),
        "Lineitem sku": pa.array(lines.StockCode.tolist(), pa.string()),
        "Billing Country": once(lines.Country),
        "Refunded Amount": once(money(order_of_line.refunded)),
        "Id": once((lines.InvoiceNo.astype(int) * 7919 % 10**9).astype(str)),
    }
    blank = pa.array([""] * len(lines), pa.string())
    return pa.table({name: columns.get(name, blank) for name in SHOPIFY_HEADER})
