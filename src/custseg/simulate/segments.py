"""Who shops here? The planted customer segments, the answer the tests and the demo check against.

Each segment says when its customers first order, how long and how often they keep buying, how
big their baskets are, which product kinds they like and where they live. Guests (orders without
a customer id) are described the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


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
BEHAVIOURS = (*SEGMENTS, GUESTS)
"""Every behaviour by its number in the simulation: the planted segments in order, then the guests."""
