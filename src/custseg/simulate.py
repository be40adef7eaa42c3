"""A simulated gift shop whose customer segments and product kinds are known in advance.

The demo needs realistic data without a download, the tests need a known right answer (the planted
segments and product kinds), and the benchmarks need logs of any size. The log has the UCI Online
Retail layout and the same dirt as the real data: guest orders, duplicates, postage and fee lines,
zero prices, returns that match a purchase and returns that do not. The same shop can be written
as Shopify's admin orders export (`as_shopify_export`), with emails, unpaid and refunded orders.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from custseg.errors import ConfigError

START = datetime.datetime(2010, 12, 1)
END = datetime.datetime(2011, 12, 9, 23, 59)
FIRST_CUSTOMER_ID = 12346
FIRST_INVOICE = 536365
CUSTOMERS_PER_CHUNK = 20_000

# ---------------------------------------------------------------------------------------------
# The catalogue: product kinds, each with its own item nouns; colours, motifs and materials are
# shared by every kind, so that they say nothing about what a product is.
# ---------------------------------------------------------------------------------------------
PRODUCT_KINDS: dict[str, tuple[tuple[str, ...], tuple[float, float]]] = {
    # Each kind is a family of item nouns that share words, as real product families do
    # ("LUNCH BAG", "JUMBO BAG"), so that the kind is recoverable from the text alone.
    "christmas": (
        (
            "CHRISTMAS BAUBLE",
            "CHRISTMAS TREE DECORATION",
            "CHRISTMAS ADVENT CALENDAR",
            "CHRISTMAS STOCKING",
            "CHRISTMAS WREATH",
            "CHRISTMAS TREE STAR",
            "CHRISTMAS CRACKERS",
            "CHRISTMAS GARLAND",
            "CHRISTMAS HANGING DECORATION",
            "CHRISTMAS TREE BAUBLE",
        ),
        (0.4, 9.0),
    ),
    "bags": (
        (
            "JUMBO BAG",
            "LUNCH BAG",
            "SHOPPER BAG",
            "TOTE BAG",
            "CHARLOTTE BAG",
            "STORAGE BAG",
            "DRAWSTRING BAG",
            "WASH BAG",
            "BEACH BAG",
            "SHOULDER BAG",
        ),
        (0.8, 6.0),
    ),
    "candles_lights": (
        (
            "T-LIGHT HOLDER",
            "CANDLE HOLDER",
            "LANTERN CANDLE HOLDER",
            "FAIRY LIGHTS",
            "NIGHT LIGHT",
            "SCENTED CANDLE",
            "TEA LIGHT CANDLES",
            "PILLAR CANDLE",
            "LIGHT GARLAND",
            "HANGING T-LIGHT HOLDER",
        ),
        (0.3, 12.0),
    ),
    "cards_wrap": (
        (
            "GREETING CARD",
            "BIRTHDAY CARD",
            "WRAPPING PAPER",
            "GIFT WRAP",
            "GIFT TAGS",
            "TISSUE PAPER",
            "WRAP SHEET",
            "GIFT CARD",
            "PAPER GIFT TAGS",
            "CARD WITH ENVELOPE",
        ),
        (0.2, 3.5),
    ),
    "kitchen": (
        (
            "CAKE STAND",
            "CAKE TIN",
            "CAKE CASES",
            "CAKE PLATE",
            "BAKING CAKE MOULD",
            "TEA CAKE PLATE",
            "KITCHEN TEA TOWEL",
            "KITCHEN TIN",
            "KITCHEN SCALES",
            "TEA TOWEL",
        ),
        (0.5, 15.0),
    ),
    "home_decor": (
        (
            "WALL CLOCK",
            "WALL SIGN",
            "WALL MIRROR",
            "WALL FRAME",
            "PHOTO FRAME",
            "PICTURE FRAME",
            "DOOR SIGN",
            "DOOR STOP",
            "WALL HOOK",
            "DOOR HOOK",
        ),
        (1.0, 20.0),
    ),
    "garden": (
        (
            "GARDEN PLANT POT",
            "GARDEN WATERING CAN",
            "GARDEN TROWEL",
            "PLANT LABELS",
            "GARDEN GLOVES",
            "GARDEN KNEELER",
            "HANGING PLANT POT",
            "SEED TIN GARDEN",
            "GARDEN SIGN",
            "PLANT MARKERS",
        ),
        (0.6, 14.0),
    ),
    "toys": (
        (
            "TOY CAR",
            "TOY SOLDIER",
            "SPINNING TOP TOY",
            "JIGSAW PUZZLE",
            "PUZZLE GAME",
            "MEMORY GAME",
            "SKIPPING ROPE TOY",
            "SOFT TOY",
            "BOARD GAME",
            "TOY THEATRE",
        ),
        (0.3, 10.0),
    ),
    "stationery": (
        (
            "NOTE BOOK",
            "NOTE PAD",
            "PENCIL SET",
            "PENCIL CASE",
            "PEN AND PENCIL SET",
            "NOTE STICKERS",
            "PENCIL ERASERS",
            "MEMO NOTE PAD",
            "POCKET NOTE BOOK",
            "PENCIL SHARPENER",
        ),
        (0.2, 5.0),
    ),
    "jewellery": (
        (
            "BEAD NECKLACE",
            "CHARM NECKLACE",
            "CHARM BRACELET",
            "BEAD BRACELET",
            "BEAD EARRINGS",
            "DROP EARRINGS",
            "BEAD HAIR CLIP",
            "JEWELLERY BOX",
            "JEWELLERY CHARM",
            "NECKLACE JEWELLERY STAND",
        ),
        (0.4, 8.0),
    ),
}
COLOURS = ("RED", "PINK", "BLUE", "GREEN", "WHITE", "IVORY", "BLACK", "CREAM", "PURPLE", "ORANGE")
MOTIFS = (
    "RETROSPOT",
    "VINTAGE",
    "HEART",
    "SPOTTY",
    "FLORAL",
    "PAISLEY",
    "STRIPE",
    "ROSE",
    "POLKADOT",
    "OWL",
    "DOILY",
    "SKULL",
)
MATERIALS = ("GLASS", "WOODEN", "METAL", "CERAMIC", "ENAMEL", "ZINC", "FELT", "CHALK")
SIZES = ("SMALL", "LARGE", "MINI", "JUMBO", "SET OF 3", "SET OF 6")
PRODUCTS_PER_KIND = 40

# ---------------------------------------------------------------------------------------------
# The planted customer segments.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedSegment:
    """How the customers of one planted segment behave.

    Days count from the first day of the data; ``first_order`` is the window in which a customer's
    first order falls (as a fraction of the span), ``stays_days`` how long they keep buying at
    ``orders_per_month``, and ``comeback_per_month`` the rate of the occasional orders after that, up
    to the end of the data (a lapsed customer who still comes back now and then). With
    ``repeat_probability`` a customer places one more order ``repeat_after_days`` after the first
    (a first-time buyer who comes back once, some weeks later).
    """

    name: str
    share: float
    first_order: tuple[float, float]
    stays_days: tuple[int, int]
    orders_per_month: float
    max_orders: int
    lines_per_order: float
    quantities: tuple[int, ...]
    quantity_weights: tuple[float, ...]
    kinds: dict[str, float]
    countries: dict[str, float]
    comeback_per_month: float = 0.0
    repeat_probability: float = 0.0
    repeat_after_days: tuple[int, int] = (0, 0)


UK_ONLY = {"United Kingdom": 0.93, "EIRE": 0.03, "France": 0.02, "Germany": 0.02}
SEGMENTS: tuple[PlantedSegment, ...] = (
    PlantedSegment(
        "wholesale_champions",
        0.05,
        (0.0, 0.25),
        (400, 400),
        3.0,
        60,
        28.0,
        (6, 12, 24, 36, 48, 96),
        (0.1, 0.3, 0.3, 0.1, 0.15, 0.05),
        {"bags": 4, "kitchen": 3, "candles_lights": 3, "home_decor": 2, "cards_wrap": 1, "christmas": 1},
        {"United Kingdom": 0.45, "Germany": 0.15, "France": 0.15, "EIRE": 0.1, "Netherlands": 0.1, "Belgium": 0.05},
    ),
    PlantedSegment(
        "loyal_regulars",
        0.17,
        (0.0, 0.4),
        (400, 400),
        1.0,
        30,
        12.0,
        (1, 2, 3, 4, 6, 12),
        (0.1, 0.2, 0.15, 0.2, 0.2, 0.15),
        {"home_decor": 4, "candles_lights": 3, "kitchen": 2, "garden": 1, "cards_wrap": 1},
        UK_ONLY,
    ),
    PlantedSegment(
        "new_customers",
        0.13,
        (0.86, 0.97),
        (10, 60),
        2.0,
        4,
        10.0,
        (1, 2, 3, 4, 6, 12),
        (0.15, 0.25, 0.15, 0.2, 0.15, 0.1),
        {"christmas": 5, "cards_wrap": 3, "candles_lights": 2, "toys": 1},
        UK_ONLY,
    ),
    PlantedSegment(
        "one_off_buyers",
        0.27,
        (0.5, 0.8),
        (0, 0),
        0.0,
        1,
        4.0,
        (1, 2, 3, 4, 6),
        (0.35, 0.3, 0.15, 0.1, 0.1),
        {"cards_wrap": 3, "toys": 3, "stationery": 3, "jewellery": 3},
        UK_ONLY,
        comeback_per_month=0.04,
        repeat_probability=0.35,
        repeat_after_days=(38, 45),
    ),
    PlantedSegment(
        "lapsed_big_spenders",
        0.10,
        (0.0, 0.1),
        (120, 170),
        2.5,
        20,
        22.0,
        (4, 6, 12, 24, 48),
        (0.15, 0.25, 0.3, 0.2, 0.1),
        {"kitchen": 4, "garden": 4, "home_decor": 2, "bags": 1},
        {"United Kingdom": 0.8, "Germany": 0.07, "France": 0.07, "Spain": 0.03, "Switzerland": 0.03},
        comeback_per_month=0.06,
    ),
    PlantedSegment(
        "lost_customers",
        0.28,
        (0.0, 0.1),
        (0, 30),
        1.5,
        3,
        6.0,
        (1, 2, 3, 4, 6),
        (0.3, 0.3, 0.2, 0.1, 0.1),
        {"toys": 3, "garden": 2, "jewellery": 3, "stationery": 2},
        UK_ONLY,
    ),
)
GUESTS = PlantedSegment(
    "guests",
    0.0,
    (0.0, 0.97),
    (0, 0),
    0.0,
    1,
    30.0,
    (1, 2, 3, 4, 6, 12),
    (0.3, 0.25, 0.15, 0.1, 0.1, 0.1),
    {"christmas": 1, "cards_wrap": 1, "candles_lights": 1, "kitchen": 1, "home_decor": 1, "toys": 1},
    UK_ONLY,
)
"""Guest orders: one order each, without a customer id (UCI's are large, many-line orders)."""
GUEST_SHARE = 0.8
"""Guests per customer with an id."""
_BEHAVIOURS = (*SEGMENTS, GUESTS)

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


@dataclass(frozen=True)
class Catalogue:
    """The simulated products: arrays of shape (n_products,)."""

    product_id: np.ndarray
    description: np.ndarray
    kind: np.ndarray
    price: np.ndarray
    popularity: np.ndarray

    def to_arrow(self) -> pa.Table:
        """Return the catalogue as a table: product_id, description, planted_kind, unit_price."""
        return pa.table(
            {
                "product_id": pa.array(self.product_id),
                "description": pa.array(self.description),
                "planted_kind": pa.array(self.kind),
                "unit_price": pa.array(self.price),
            }
        )


def make_catalogue(rng: np.random.Generator) -> Catalogue:
    """Build the product catalogue: `PRODUCTS_PER_KIND` products of every kind in `PRODUCT_KINDS`."""
    codes = rng.choice(np.arange(10000, 90000), size=len(PRODUCT_KINDS) * PRODUCTS_PER_KIND, replace=False)
    ids, descriptions, kinds, prices = [], [], [], []
    seen: set[str] = set()
    for kind_index, (kind, (nouns, (low, high))) in enumerate(PRODUCT_KINDS.items()):
        # As in a real range, a motif runs through a few product lines, not through all of them.
        motifs = [MOTIFS[(kind_index * 5 + offset) % len(MOTIFS)] for offset in range(4)]
        made = 0
        while made < PRODUCTS_PER_KIND:
            words = []
            if rng.random() < 0.7:
                words.append(COLOURS[rng.integers(len(COLOURS))])
            if rng.random() < 0.4:
                words.append(motifs[rng.integers(len(motifs))])
            if rng.random() < 0.25:
                words.append(MATERIALS[rng.integers(len(MATERIALS))])
            if kind != "christmas" and rng.random() < 0.04:
                words.insert(0, "CHRISTMAS")
            words.append(nouns[rng.integers(len(nouns))])
            if rng.random() < 0.2:
                words.insert(0, SIZES[rng.integers(len(SIZES))])
            description = " ".join(words)
            if description in seen:
                continue
            seen.add(description)
            code = str(codes[kind_index * PRODUCTS_PER_KIND + made])
            if rng.random() < 0.2:
                code += "ABCDEFGH"[rng.integers(8)]
            ids.append(code)
            descriptions.append(description)
            kinds.append(kind)
            # Log-uniform within the kind's range, so price bands cut across kinds.
            prices.append(round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 2))
            made += 1
    popularity = rng.pareto(1.2, size=len(ids)) + 0.05
    return Catalogue(
        product_id=np.array(ids, dtype=object),
        description=np.array(descriptions, dtype=object),
        kind=np.array(kinds, dtype=object),
        price=np.array(prices),
        popularity=popularity,
    )


def _day_weights() -> np.ndarray:
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
class _Orders:
    """Vectorised orders of one chunk: arrays of shape (n_orders,)."""

    customer: np.ndarray
    segment: np.ndarray
    at: np.ndarray
    country: np.ndarray


def _simulate_orders(rng: np.random.Generator, segment_of_customer: np.ndarray, cumulative_days: np.ndarray) -> _Orders:
    span_days = len(cumulative_days)
    n = len(segment_of_customer)
    first = np.empty(n)
    last = np.empty(n)
    n_orders = np.empty(n, dtype=np.int64)
    comebacks = np.empty(n, dtype=np.int64)
    repeats = np.empty(n)
    country = np.empty(n, dtype=object)
    for index, segment in enumerate(_BEHAVIOURS):
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
    return _Orders(customer=customer, segment=segment_of_customer[customer], at=at, country=country[customer])


def _simulate_lines(rng: np.random.Generator, orders: _Orders, catalogue: Catalogue, preferences: np.ndarray):
    """Lines of every order: (order index, product index, quantity), arrays of shape (n_lines,)."""
    lines_mean = np.array([s.lines_per_order for s in _BEHAVIOURS])[orders.segment]
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
    for index, planted in enumerate(_BEHAVIOURS):
        at = np.flatnonzero(segment == index)
        weights = np.array(planted.quantity_weights)
        quantity[at] = np.array(planted.quantities)[rng.choice(len(weights), size=len(at), p=weights / weights.sum())]
    return order, product, quantity


def _preferences(rng: np.random.Generator, segment_of_customer: np.ndarray) -> np.ndarray:
    kinds = list(PRODUCT_KINDS)
    preferences = np.empty((len(segment_of_customer), len(kinds)))
    for index, segment in enumerate(_BEHAVIOURS):
        members = np.flatnonzero(segment_of_customer == index)
        alpha = np.full(len(kinds), 0.05)
        for kind, weight in segment.kinds.items():
            alpha[kinds.index(kind)] += weight
        preferences[members] = rng.dirichlet(alpha / alpha.sum() * 12.0, size=len(members))
    return preferences


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
    cumulative_days = np.cumsum(_day_weights())
    orders = _simulate_orders(rng, all_segments, cumulative_days)
    preferences = _preferences(rng, all_segments)
    order, product, quantity = _simulate_lines(rng, orders, catalogue, preferences)

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
    catalogue = make_catalogue(np.random.default_rng([seed, 2**31]))
    invoice_offset = FIRST_INVOICE
    for chunk, first in enumerate(range(0, n_customers, CUSTOMERS_PER_CHUNK)):
        size = min(CUSTOMERS_PER_CHUNK, n_customers - first)
        log, planted, used = simulate_chunk(chunk, size, seed, catalogue, invoice_offset)
        invoice_offset += used
        yield log, planted


def catalogue_table(seed: int = 0) -> pa.Table:
    """Return the simulated catalogue of ``seed``, with each product's planted kind."""
    return make_catalogue(np.random.default_rng([seed, 2**31])).to_arrow()


@dataclass(frozen=True)
class SimulatedFiles:
    """Paths written by `simulate_to_files`, and how many log rows and customers they hold."""

    log: Path
    customers: Path
    products: Path
    rows: int
    customers_with_id: int


def companion_paths(out: Path) -> tuple[Path, Path]:
    """Where the planted segments and products of a log file go: ``NAME.customers.EXT`` etc."""
    suffix = "".join(out.suffixes[-2:]) if out.name.endswith(".csv.gz") else out.suffix
    stem = out.name[: -len(suffix)] if suffix else out.name
    return out.with_name(f"{stem}.customers{suffix}"), out.with_name(f"{stem}.products{suffix}")


LAYOUTS = ("uci", "shopify")
"""Layouts `simulate_to_files` writes: the UCI Online Retail log, or Shopify's orders export (CSV)."""


def simulate_to_files(out: str | Path, n_customers: int, seed: int = 0, layout: str = "uci") -> SimulatedFiles:
    """Write a simulated log (Parquet, or CSV by extension) and its two truth tables.

    The CSV is the common export: ``InvoiceDate`` as ``12/01/2010 08:26`` and ``CustomerID`` as
    an integer or empty. The truth tables are ``NAME.customers.EXT`` (customer_id,
    planted_segment) and ``NAME.products.EXT`` (product_id, description, planted_kind, unit_price).
    With ``layout="shopify"`` the log is Shopify's orders export (`as_shopify_export`, CSV only) and
    the planted customers are known by their email.
    """
    out = Path(out)
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout}: unknown layout; known: {', '.join(LAYOUTS)}")
    if out.suffix.lower() not in (".parquet", ".csv", ".gz"):
        raise ConfigError(f"--out {out}: the file name must end in .parquet, .csv or .csv.gz")
    if layout == "shopify" and out.suffix.lower() == ".parquet":
        raise ConfigError(f"--out {out}: Shopify's export is a CSV file; give a .csv or .csv.gz name")
    out.parent.mkdir(parents=True, exist_ok=True)
    customers_path, products_path = companion_paths(out)
    parquet = out.suffix.lower() == ".parquet"
    rows = customers = 0
    log_writer = planted_writer = None
    try:
        for chunk, (log, planted) in enumerate(iter_simulation(n_customers, seed)):
            if layout == "shopify":
                log = as_shopify_export(log, np.random.default_rng([seed, chunk, 3]))
                planted = planted.set_column(0, "customer_id", pa.array(_emails(planted["customer_id"].to_numpy())))
            rows += log.num_rows
            customers += planted.num_rows
            if parquet:
                log_writer = log_writer or pq.ParquetWriter(out, log.schema, compression="zstd")
                planted_writer = planted_writer or pq.ParquetWriter(customers_path, planted.schema)
            else:
                log = _as_export(log) if layout == "uci" else log
                log_writer = log_writer or pa_csv.CSVWriter(_open_text_out(out), log.schema)
                planted_writer = planted_writer or pa_csv.CSVWriter(_open_text_out(customers_path), planted.schema)
            log_writer.write_table(log)
            planted_writer.write_table(planted)
    finally:
        for writer in (log_writer, planted_writer):
            if writer is not None:
                writer.close()
    products = catalogue_table(seed)
    if parquet:
        pq.write_table(products, products_path)
    else:
        with _open_text_out(products_path) as sink:
            pa_csv.write_csv(products, sink)
    return SimulatedFiles(out, customers_path, products_path, rows, customers)


def _open_text_out(path: Path) -> pa.NativeFile:
    compression = "gzip" if path.name.endswith(".gz") else None
    return pa.output_stream(path, compression=compression)


def _as_export(log: pa.Table) -> pa.Table:
    dates = pc.strftime(log["InvoiceDate"], format="%m/%d/%Y %H:%M")
    customer = pc.cast(log["CustomerID"], pa.int64())
    return log.set_column(4, "InvoiceDate", dates).set_column(6, "CustomerID", customer)


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


def _emails(customer_ids: np.ndarray) -> np.ndarray:
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
    email = pd.Series(_emails(lines.CustomerID.fillna(0).to_numpy()), dtype=object)
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
