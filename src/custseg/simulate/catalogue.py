"""What does the simulated shop sell? Its catalogue, every product with a planted kind.

Each kind has its own item nouns and price range (`PRODUCT_KINDS`); colours, motifs and materials
are shared by every kind, so that they say nothing about what a product is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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


def catalogue_of_seed(seed: int) -> Catalogue:
    """Return the catalogue of the shop simulated with ``seed``: its log and its products file share it."""
    return make_catalogue(np.random.default_rng([seed, 2**31]))


def catalogue_table(seed: int = 0) -> pa.Table:
    """Return the simulated catalogue of ``seed``, with each product's planted kind."""
    return catalogue_of_seed(seed).to_arrow()
