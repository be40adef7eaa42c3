"""When does each customer order, and what is in the basket? Orders and lines drawn from the segments.

Orders follow the season (a November peak, no Saturdays) and the hours of a working day, inside
each customer's window of activity; every customer has their own taste in product kinds, drawn
around their segment's, and buys popular products more often.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

from custseg.simulate.catalogue import PRODUCT_KINDS, PRODUCTS_PER_KIND, Catalogue
from custseg.simulate.segments import BEHAVIOURS

START = datetime.datetime(2010, 12, 1)
"""The first day of the simulated data."""
END = datetime.datetime(2011, 12, 9, 23, 59)
"""The last minute of the simulated data."""


def day_weights() -> np.ndarray:
    """Relative order intensity of every day of the span: a November peak, no Saturdays."""
    days = (END.date() - START.date()).days + 1
    dates = [START.date() + datetime.timedelta(days=d) for d in range(days)]
    month = {1: 0.8, 2: 0.75, 3: 0.9, 4: 0.85, 5: 0.95, 6: 0.95, 7: 0.95, 8: 0.95, 9: 1.3, 10: 1.5, 11: 2.0, 12: 1.0}
    weekday = {0: 1.1, 1: 1.2, 2: 1.15, 3: 1.3, 4: 0.9, 5: 0.0, 6: 0.7}
    return np.array([month[d.month] * weekday[d.weekday()] for d in dates])


HOURS = np.arange(7, 21)
HOUR_WEIGHTS = np.array([0.3, 1.5, 3.0, 4.5, 5.5, 6.5, 6.0, 5.0, 4.0, 2.5, 1.2, 0.6, 0.4, 0.3])


def _choose(rng: np.random.Generator, options: dict[str, float], size: int) -> np.ndarray:
    names = np.array(list(options), dtype=object)
    weights = np.array(list(options.values()), dtype=float)
    return names[rng.choice(len(names), size=size, p=weights / weights.sum())]


@dataclass
class Orders:
    """Vectorised orders of one chunk: arrays of shape (n_orders,)."""

    customer: np.ndarray
    segment: np.ndarray
    at: np.ndarray
    country: np.ndarray


def simulate_orders(rng: np.random.Generator, segment_of_customer: np.ndarray, cumulative_days: np.ndarray) -> Orders:
    """Draw every customer's orders: who, when and from which country.

    Parameters
    ----------
    rng : numpy.random.Generator
        The chunk's generator; every draw of the chunk comes from it, in a fixed order.
    segment_of_customer : ndarray of shape (n_customers,)
        Each customer's behaviour, as its position in `BEHAVIOURS`.
    cumulative_days : ndarray of shape (n_days,)
        The cumulative sum of `day_weights`.

    Returns
    -------
    Orders
        One entry per order, customers numbered by their position in ``segment_of_customer``.
    """
    span_days = len(cumulative_days)
    n = len(segment_of_customer)
    first = np.empty(n)
    last = np.empty(n)
    n_orders = np.empty(n, dtype=np.int64)
    comebacks = np.empty(n, dtype=np.int64)
    repeats = np.empty(n)
    country = np.empty(n, dtype=object)
    for index, segment in enumerate(BEHAVIOURS):
        members = np.flatnonzero(segment_of_customer == index)
        size = len(members)
        # The first order follows the season too: inverse CDF of the day weights inside the window.
        window = np.interp(np.array(segment.first_order) * (span_days - 1), np.arange(span_days), cumulative_days)
        start = np.interp(rng.uniform(*window, size=size), cumulative_days, np.arange(span_days))
        stays = rng.uniform(*segment.stays_days, size=size)
        stop = np.minimum(start + stays, span_days - 1)
        expected = segment.orders_per_month * (stop - start) / 30.4
        count = 1 + rng.poisson(np.maximum(expected - 1, 0))
        first[members], last[members] = start, stop
        n_orders[members] = np.minimum(count, segment.max_orders)
        comebacks[members] = rng.poisson(segment.comeback_per_month * (span_days - 1 - stop) / 30.4)
        repeats[members] = (rng.random(size) < segment.repeat_probability) * (
            start + rng.uniform(*segment.repeat_after_days, size=size)
        )
        country[members] = _choose(rng, segment.countries, size)
    customer = np.repeat(np.arange(n), n_orders)
    # Seasonal days inside each customer's window: inverse CDF of the day weights. Regular
    # customers order regularly: the window is cut into one slot per order and each order falls
    # in its own slot. The first order is on the window's first day, so one-off buyers keep
    # their date.
    low = np.interp(first[customer], np.arange(span_days), cumulative_days)
    high = np.maximum(np.interp(last[customer], np.arange(span_days), cumulative_days), low)
    slot = np.arange(len(customer)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    u = low + (slot + rng.uniform(size=len(customer))) * (high - low) / n_orders[customer]
    u[slot == 0] = low[slot == 0]
    # The occasional orders after the stay, up to the end of the data.
    returning = np.repeat(np.arange(n), comebacks)
    after = np.interp(last[returning], np.arange(span_days), cumulative_days)
    # The one repeat order some weeks after the first, where it falls inside the data.
    repeating = np.flatnonzero((repeats > 0) & (repeats <= span_days - 1))
    customer = np.r_[customer, returning, repeating]
    u = np.r_[
        u,
        rng.uniform(after, cumulative_days[-1]),
        np.interp(repeats[repeating], np.arange(span_days), cumulative_days),
    ]
    day = np.clip(np.searchsorted(cumulative_days, u), 0, span_days - 1)
    hour = HOURS[rng.choice(len(HOURS), size=len(day), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())]
    minute = rng.integers(0, 60, size=len(day))
    at = (
        np.datetime64(START, "m")
        + day.astype("timedelta64[D]").astype("timedelta64[m]")
        + (hour * 60 + minute).astype("timedelta64[m]")
    )
    return Orders(customer=customer, segment=segment_of_customer[customer], at=at, country=country[customer])


def simulate_lines(rng: np.random.Generator, orders: Orders, catalogue: Catalogue, preferences: np.ndarray):
    """Draw the lines of every order: a kind by the customer's taste, then a product by popularity.

    Parameters
    ----------
    rng : numpy.random.Generator
        The chunk's generator, as for `simulate_orders`.
    orders : Orders
        The chunk's orders (`simulate_orders`).
    catalogue : Catalogue
        The products, `PRODUCTS_PER_KIND` of each kind in the order of `PRODUCT_KINDS`.
    preferences : ndarray of shape (n_customers, n_kinds)
        Each customer's share of every kind in `PRODUCT_KINDS` (`kind_preferences`).

    Returns
    -------
    order, product, quantity : ndarrays of shape (n_lines,)
        The order's position in ``orders``, the product's position in ``catalogue`` and the quantity.
    """
    lines_mean = np.array([s.lines_per_order for s in BEHAVIOURS])[orders.segment]
    n_lines = 1 + rng.poisson(np.maximum(lines_mean - 1, 0))
    order = np.repeat(np.arange(len(n_lines)), n_lines)
    customer = orders.customer[order]
    # Product kind from the customer's own preferences, then a product by popularity.
    cumulative = np.cumsum(preferences[customer], axis=1)
    kind = (rng.random(len(order))[:, None] > cumulative).sum(axis=1).clip(max=len(PRODUCT_KINDS) - 1)
    product = np.empty(len(order), dtype=np.int64)
    for kind_index in range(len(PRODUCT_KINDS)):
        at = np.flatnonzero(kind == kind_index)
        offset = kind_index * PRODUCTS_PER_KIND
        weights = catalogue.popularity[offset : offset + PRODUCTS_PER_KIND]
        cdf = np.cumsum(weights) / weights.sum()
        product[at] = offset + np.searchsorted(cdf, rng.random(len(at))).clip(max=PRODUCTS_PER_KIND - 1)
    # A product appears once per order (exact duplicates are planted on purpose, later).
    _, first_of_pair = np.unique(order * len(catalogue.price) + product, return_index=True)
    first_of_pair.sort()
    order, product = order[first_of_pair], product[first_of_pair]
    quantity = np.empty(len(order), dtype=np.int64)
    segment = orders.segment[order]
    for index, planted in enumerate(BEHAVIOURS):
        at = np.flatnonzero(segment == index)
        weights = np.array(planted.quantity_weights)
        quantity[at] = np.array(planted.quantities)[rng.choice(len(weights), size=len(at), p=weights / weights.sum())]
    return order, product, quantity


def kind_preferences(rng: np.random.Generator, segment_of_customer: np.ndarray) -> np.ndarray:
    """Draw every customer's taste in product kinds, around their segment's (``PlantedSegment.kinds``).

    Returns
    -------
    ndarray of shape (n_customers, n_kinds)
        Each row sums to 1; the columns are the kinds of `PRODUCT_KINDS`, in order.
    """
    kinds = list(PRODUCT_KINDS)
    preferences = np.empty((len(segment_of_customer), len(kinds)))
    for index, segment in enumerate(BEHAVIOURS):
        members = np.flatnonzero(segment_of_customer == index)
        alpha = np.full(len(kinds), 0.05)
        for kind, weight in segment.kinds.items():
            alpha[kinds.index(kind)] += weight
        preferences[members] = rng.dirichlet(alpha / alpha.sum() * 12.0, size=len(members))
    return preferences
