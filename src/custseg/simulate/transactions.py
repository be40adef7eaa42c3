"""What does the shop's transaction log hold, dirt included? The log in the UCI Online Retail layout.

The planted customers' orders become invoice lines, with the same dirt as the real data: guest
orders, duplicates, postage and fee lines, zero prices, returns that match a purchase and returns
that do not. The log is made chunk by chunk, so that memory stays bounded whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.errors import ConfigError
from custseg.simulate.behaviour import END, START, day_weights, kind_preferences, simulate_lines, simulate_orders
from custseg.simulate.catalogue import PRODUCTS_PER_KIND, Catalogue, catalogue_of_seed
from custseg.simulate.segments import GUEST_SHARE, SEGMENTS

FIRST_CUSTOMER_ID = 12346
FIRST_INVOICE = 536365
CUSTOMERS_PER_CHUNK = 20_000


RETURN_RATE = 0.02
UNMATCHED_RETURN_RATE = 0.002
DUPLICATE_RATE = 0.01
ZERO_PRICE_RATE = 0.0005
MANUAL_RATE = 0.003
FEE_RATE = 0.001
MISSING_DESCRIPTION_RATE = 0.002

LOG_SCHEMA = pa.schema(
    [
        ("InvoiceNo", pa.string()),
        ("StockCode", pa.string()),
        ("Description", pa.string()),
        ("Quantity", pa.int64()),
        ("InvoiceDate", pa.timestamp("us")),
        ("UnitPrice", pa.float64()),
        ("CustomerID", pa.float64()),
        ("Country", pa.string()),
    ]
)


def simulate_chunk(
    chunk: int, n_customers: int, seed: int, catalogue: Catalogue, invoice_offset: int
) -> tuple[pa.Table, pa.Table, int]:
    """Simulate the customers ``chunk * CUSTOMERS_PER_CHUNK ...`` (+ their share of guests).

    Returns
    -------
    log : pyarrow.Table in `LOG_SCHEMA`
    planted : pyarrow.Table with customer_id and planted_segment
    invoices_used : int
        How many invoice numbers the chunk used, so that the next chunk continues after them.
    """
    rng = np.random.default_rng([seed, chunk])
    first_customer = chunk * CUSTOMERS_PER_CHUNK
    n_guests = int(round(n_customers * GUEST_SHARE))
    shares = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), size=n_customers, p=shares / shares.sum())
    guest_segment = np.full(n_guests, len(SEGMENTS))
    all_segments = np.r_[segment, guest_segment]
    cumulative_days = np.cumsum(day_weights())
    orders = simulate_orders(rng, all_segments, cumulative_days)
    preferences = kind_preferences(rng, all_segments)
    order, product, quantity = simulate_lines(rng, orders, catalogue, preferences)

    # Invoice numbers follow time within the chunk.
    order_rank = np.empty(len(orders.at), dtype=np.int64)
    order_rank[np.lexsort((orders.customer, orders.at))] = np.arange(len(orders.at))
    invoice = invoice_offset + order_rank
    everyone = np.arange(len(all_segments))
    customer_id = np.where(everyone < n_customers, FIRST_CUSTOMER_ID + first_customer + everyone, -1)

    price = catalogue.price[product] * np.where(quantity >= 24, 0.85, 1.0)
    columns = {
        "invoice": invoice[order],
        "prefix": np.zeros(len(order), dtype=bool),
        "product": product,
        "quantity": quantity,
        "at": orders.at[order],
        "price": np.round(price, 2),
        "customer": customer_id[orders.customer[order]],
        "country": orders.country[order],
    }
    used = len(orders.at)

    # Returns of part of a purchased line, 1 hour to 30 days later, on their own C invoice.
    has_id = columns["customer"] >= 0
    returned = np.flatnonzero(has_id & (rng.random(len(order)) < RETURN_RATE))
    delay = rng.integers(60, 30 * 24 * 60, size=len(returned)).astype("timedelta64[m]")
    return_at = columns["at"][returned] + delay
    inside = return_at <= np.datetime64(END, "m")
    returned, return_at = returned[inside], return_at[inside]
    returns = {
        "invoice": invoice_offset + used + np.arange(len(returned)),
        "prefix": np.ones(len(returned), dtype=bool),
        "product": columns["product"][returned],
        # One return in twenty claims more than was bought: it is netted only in part.
        "quantity": -(rng.integers(1, columns["quantity"][returned] + 1) + 2 * (rng.random(len(returned)) < 0.05)),
        "at": return_at,
        "price": columns["price"][returned],
        "customer": columns["customer"][returned],
        "country": columns["country"][returned],
    }
    used += len(returned)
    # Returns whose purchase predates the data: a product the customer never bought before.
    origin = np.flatnonzero(has_id & (rng.random(len(order)) < UNMATCHED_RETURN_RATE))
    unmatched = {
        "invoice": invoice_offset + used + np.arange(len(origin)),
        "prefix": np.ones(len(origin), dtype=bool),
        "product": (columns["product"][origin] + PRODUCTS_PER_KIND // 2) % len(catalogue.price),
        "quantity": -rng.integers(1, 4, size=len(origin)),
        "at": np.datetime64(START, "m")
        + (rng.integers(0, 20, size=len(origin)) * 1440 + rng.integers(9 * 60, 17 * 60, size=len(origin))).astype(
            "timedelta64[m]"
        ),
        "price": catalogue.price[(columns["product"][origin] + PRODUCTS_PER_KIND // 2) % len(catalogue.price)],
        "customer": columns["customer"][origin],
        "country": columns["country"][origin],
    }
    used += len(origin)
    log = _assemble(rng, catalogue, [columns, returns, unmatched], orders, invoice, customer_id)

    planted = pa.table(
        {
            "customer_id": pa.array(FIRST_CUSTOMER_ID + first_customer + np.arange(n_customers), pa.int64()),
            "planted_segment": pa.array(np.array([s.name for s in SEGMENTS], dtype=object)[segment]),
        }
    )
    return log, planted, used


def _assemble(rng, catalogue, parts, orders, invoice, customer_id) -> pa.Table:
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    n = len(merged["invoice"])
    stock_code = catalogue.product_id[merged["product"]]
    description = catalogue.description[merged["product"]].copy()
    price = merged["price"].astype(float)
    price[rng.random(n) < ZERO_PRICE_RATE] = 0.0
    guest = merged["customer"] < 0
    no_description = guest & (rng.random(n) < MISSING_DESCRIPTION_RATE * 10)
    description[no_description] = None
    price[no_description] = 0.0

    # Non-product lines: postage on orders abroad, manual adjustments, fees.
    abroad = np.flatnonzero(orders.country != "United Kingdom")
    manual = np.flatnonzero(rng.random(len(orders.at)) < MANUAL_RATE)
    fee = np.flatnonzero(rng.random(len(orders.at)) < FEE_RATE)
    extra_orders = np.r_[abroad, manual, fee]
    extra_code = np.array(["POST"] * len(abroad) + ["M"] * len(manual) + ["BANK CHARGES"] * len(fee), dtype=object)
    extra_description = np.array(
        ["POSTAGE"] * len(abroad) + ["Manual"] * len(manual) + ["Bank Charges"] * len(fee), dtype=object
    )
    extra_price = np.r_[
        np.round(rng.uniform(15, 40, len(abroad)), 2),
        np.round(rng.uniform(0.5, 200, len(manual)), 2),
        np.full(len(fee), 15.0),
    ]
    codes = np.r_[stock_code, extra_code]
    descriptions = np.r_[description, extra_description]
    invoices = np.r_[merged["invoice"], invoice[extra_orders]]
    prefix = np.r_[merged["prefix"], np.zeros(len(extra_orders), dtype=bool)]
    quantities = np.r_[merged["quantity"], np.ones(len(extra_orders), dtype=np.int64)]
    ats = np.r_[merged["at"], orders.at[extra_orders]]
    prices = np.r_[price, extra_price]
    customers = np.r_[merged["customer"], customer_id[orders.customer[extra_orders]]]
    countries = np.r_[merged["country"], orders.country[extra_orders]]

    # Exact duplicates: a line written twice, next to itself.
    copies = 1 + (rng.random(len(codes)) < DUPLICATE_RATE)
    order = np.lexsort((np.arange(len(codes)), invoices, ats))
    take = np.repeat(order, copies[order])
    invoice_text = pc.cast(pa.array(invoices[take]), pa.string())
    invoice_text = pc.if_else(pa.array(prefix[take]), pc.binary_join_element_wise("C", invoice_text, ""), invoice_text)
    customer_values = customers[take].astype(float)
    customer_values[customer_values < 0] = np.nan
    return pa.table(
        {
            "InvoiceNo": invoice_text,
            "StockCode": pa.array(codes[take], pa.string()),
            "Description": pa.array(descriptions[take], pa.string()),
            "Quantity": pa.array(quantities[take], pa.int64()),
            "InvoiceDate": pa.array(ats[take].astype("datetime64[us]"), pa.timestamp("us")),
            "UnitPrice": pa.array(prices[take], pa.float64()),
            "CustomerID": pa.array(customer_values, pa.float64(), from_pandas=True),
            "Country": pa.array(countries[take], pa.string()),
        },
        schema=LOG_SCHEMA,
    )


def iter_simulation(n_customers: int, seed: int = 0) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield the log and the planted segments chunk by chunk (`CUSTOMERS_PER_CHUNK` customers each).

    Memory stays bounded by one chunk, whatever ``n_customers`` is.
    """
    if n_customers < 1:
        raise ConfigError(f"customers={n_customers} must be at least 1")
    catalogue = catalogue_of_seed(seed)
    invoice_offset = FIRST_INVOICE
    for chunk, first in enumerate(range(0, n_customers, CUSTOMERS_PER_CHUNK)):
        size = min(CUSTOMERS_PER_CHUNK, n_customers - first)
        log, planted, used = simulate_chunk(chunk, size, seed, catalogue, invoice_offset)
        invoice_offset += used
        yield log, planted
