"""What would a shop's log look like if its customer segments were known in advance? A simulated gift shop.

The demo needs realistic data without a download, the tests need a known right answer (the planted
segments and product kinds), and the benchmarks need logs of any size. The log has the UCI Online
Retail layout and the same dirt as the real data; the same shop can be written as Shopify's admin
orders export. One module per question:

- `catalogue`: what the shop sells (products with their planted kinds);
- `segments`: who shops here (the planted segments and the guests);
- `behaviour`: when each customer orders and what goes in the basket;
- `transactions`: the log itself, dirt included, chunk by chunk;
- `shopify`: the same log as Shopify's orders export;
- `seasonal`: a shop of several years with a planted season and planted dropout, for forecasts;
- `files`: the files a simulation writes (`simulate_to_files`).

Every name is read from the module that defines it: to change ``CUSTOMERS_PER_CHUNK`` in a test,
patch `custseg.simulate.transactions`, not this package.
"""

from custseg.simulate.behaviour import END, HOUR_WEIGHTS, HOURS, START
from custseg.simulate.catalogue import (
    COLOURS,
    MATERIALS,
    MOTIFS,
    PRODUCT_KINDS,
    PRODUCTS_PER_KIND,
    SIZES,
    Catalogue,
    catalogue_table,
    make_catalogue,
)
from custseg.simulate.files import LAYOUTS, SimulatedFiles, companion_paths, simulate_to_files
from custseg.simulate.segments import GUEST_SHARE, GUESTS, SEGMENTS, UK_ONLY, PlantedSegment
from custseg.simulate.shopify import SHOPIFY_HEADER, SHOPIFY_STATUSES, as_shopify_export
from custseg.simulate.transactions import (
    CUSTOMERS_PER_CHUNK,
    DUPLICATE_RATE,
    FEE_RATE,
    FIRST_CUSTOMER_ID,
    FIRST_INVOICE,
    LOG_SCHEMA,
    MANUAL_RATE,
    MISSING_DESCRIPTION_RATE,
    RETURN_RATE,
    UNMATCHED_RETURN_RATE,
    ZERO_PRICE_RATE,
    iter_simulation,
    simulate_chunk,
)

__all__ = [
    # Writing a simulated shop's files, and the layouts it can take.
    "simulate_to_files",
    "SimulatedFiles",
    "companion_paths",
    "LAYOUTS",
    "as_shopify_export",
    "SHOPIFY_HEADER",
    "SHOPIFY_STATUSES",
    # The log, chunk by chunk, and what it is made of.
    "iter_simulation",
    "simulate_chunk",
    "LOG_SCHEMA",
    "FIRST_CUSTOMER_ID",
    "FIRST_INVOICE",
    "CUSTOMERS_PER_CHUNK",
    "RETURN_RATE",
    "UNMATCHED_RETURN_RATE",
    "DUPLICATE_RATE",
    "ZERO_PRICE_RATE",
    "MANUAL_RATE",
    "FEE_RATE",
    "MISSING_DESCRIPTION_RATE",
    "START",
    "END",
    "HOURS",
    "HOUR_WEIGHTS",
    # The planted truth: segments and product kinds.
    "PlantedSegment",
    "SEGMENTS",
    "GUESTS",
    "GUEST_SHARE",
    "UK_ONLY",
    "Catalogue",
    "make_catalogue",
    "catalogue_table",
    "PRODUCT_KINDS",
    "PRODUCTS_PER_KIND",
    "COLOURS",
    "MOTIFS",
    "MATERIALS",
    "SIZES",
]
