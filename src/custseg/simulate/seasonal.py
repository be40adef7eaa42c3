"""Does a forecast hold across seasons and ageing customers? A shop of several years with both planted.

The gift shop of `custseg.simulate.transactions` covers one year, made to plant segments. A
forecast needs more: the same season seen twice, customers who keep arriving, and customers who
leave. Here customers arrive evenly over the years, each buys at their own rate, which the
season multiplies (`MONTH_WEIGHTS`, a November peak), until they leave for good (an exponential
lifetime: the dropout of BG/NBD-type models), and each order is one line of the shop's catalogue.
The log has the UCI Online Retail layout, without dirt.
"""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa

from custseg.simulate.behaviour import START
from custseg.simulate.catalogue import catalogue_of_seed
from custseg.simulate.transactions import FIRST_CUSTOMER_ID, FIRST_INVOICE, LOG_SCHEMA

MONTH_WEIGHTS = {1: 0.5, 2: 0.5, 3: 0.6, 4: 0.7, 5: 0.8, 6: 0.8, 7: 0.8, 8: 0.9, 9: 1.3, 10: 1.7, 11: 2.4, 12: 1.2}
"""How busy each month is, relative to the others: a November peak, a quiet first quarter."""
ORDERS_PER_MONTH = 0.6
"""A customer's mean rate of ordering in an average month (rates vary, gamma-distributed)."""
LIFETIME_DAYS = 365
"""The mean time from a customer's first order until they leave for good."""


def daily_weights(days: int) -> np.ndarray:
    """Return the season's weight of each of ``days`` days from `START`, shape (days,)."""
    dates = [START.date() + datetime.timedelta(days=d) for d in range(days)]
    return np.array([MONTH_WEIGHTS[d.month] for d in dates])


def seasonal_log(
    n_customers: int, years: float, seed: int = 0, *, arrival_days: float | None = None, season: bool = True
) -> pa.Table:
    """Simulate ``years`` of a shop of ``n_customers`` with a planted season and planted dropout.

    ``arrival_days`` confines the first orders to the first days (one cohort that ages, as CDNOW's
    customers, who all first bought in the first quarter of 1997); None spreads them over the
    span. Without ``season`` every month is alike.

    Returns
    -------
    pyarrow.Table in `custseg.simulate.transactions.LOG_SCHEMA`
        One line per order, in time order; customer ids from `FIRST_CUSTOMER_ID`.
    """
    rng = np.random.default_rng([seed, 7])
    days = int(round(years * 365.25))
    weights = daily_weights(days) if season else np.ones(days)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    arrival = rng.uniform(0, days if arrival_days is None else arrival_days, n_customers)
    leaves = np.minimum(arrival + rng.exponential(LIFETIME_DAYS, n_customers), days)
    rate = rng.gamma(2.0, ORDERS_PER_MONTH / 2.0, n_customers) / 30.4
    spend = rng.lognormal(3.5, 0.6, n_customers)
    # Orders after the first: a Poisson process of the customer's rate times the season.
    load = lambda t: np.interp(t, np.arange(days + 1), cumulative)  # noqa: E731
    later = rng.poisson(rate * (load(leaves) - load(arrival)))
    customer = np.r_[np.arange(n_customers), np.repeat(np.arange(n_customers), later)]
    mass = rng.uniform(load(arrival[customer[n_customers:]]), load(leaves[customer[n_customers:]]))
    day = np.r_[arrival, np.interp(mass, cumulative, np.arange(days + 1))]
    minutes = np.floor(np.minimum(day, days - 1e-6) * 1440).astype("timedelta64[m]")
    at = np.datetime64(START, "m") + minutes
    order = np.argsort(at, kind="stable")
    customer, at = customer[order], at[order]
    catalogue = catalogue_of_seed(seed)
    product = rng.choice(len(catalogue.price), size=len(customer), p=catalogue.popularity / catalogue.popularity.sum())
    basket = spend[customer] * rng.lognormal(0, 0.4, len(customer))
    quantity = np.maximum(1, np.round(basket / catalogue.price[product]))
    return pa.table(
        {
            "InvoiceNo": pa.array((FIRST_INVOICE + np.arange(len(customer))).astype(str)),
            "StockCode": pa.array(catalogue.product_id[product], pa.string()),
            "Description": pa.array(catalogue.description[product], pa.string()),
            "Quantity": pa.array(quantity.astype(np.int64)),
            "InvoiceDate": pa.array(at.astype("datetime64[us]"), pa.timestamp("us")),
            "UnitPrice": pa.array(catalogue.price[product], pa.float64()),
            "CustomerID": pa.array((FIRST_CUSTOMER_ID + customer).astype(float)),
            "Country": pa.array(np.full(len(customer), "United Kingdom"), pa.string()),
        },
        schema=LOG_SCHEMA,
    )
