"""What a product description names: its words, its product type, and labels a person reads.

A description names its product type ("WHITE HANGING HEART T-LIGHT HOLDER" is a t-light holder,
"JUMBO BAG RED RETROSPOT" a bag). `product_types` finds that word in every description of a
catalogue; `category_label` names a group of products by its commonest types ("Cake cases, cake
stands and tins"). `custseg.products` groups the types into categories.
"""

from __future__ import annotations

import re
from collections import Counter

COLOUR_WORDS = frozenset(
    "red pink blue green white ivory black cream purple orange yellow gold silver grey gray brown turquoise "
    "lilac multicolour colour colours colour assorted natural mint".split()
)
OTHER_IGNORED_WORDS = frozenset("of with and the in on to for a an set small large mini jumbo cm design pack".split())
UNIT_WORDS = frozenset("ml cl ltr litre liter kg oz lb pk pcs pc mm size xs xl xxl".split())
DEFAULT_IGNORED_WORDS = COLOUR_WORDS | OTHER_IGNORED_WORDS | UNIT_WORDS
"""Words that say nothing about what a product is: colours, sizes, units, packaging, stop words."""

QUALIFIER_WORDS = frozenset({"with", "w", "in", "for"})
"""Words after which a description only qualifies its product ("RECIPE BOX WITH METAL HEART")."""

MIN_TYPE_PRODUCTS = 3
"""A word is a product type only when at least this many products carry it: a type is something a shop sells
several of, and a word seen once or twice is more often a design's name."""

TYPE_ROUNDS = 3
"""Rounds of `product_types`; the types do not change after the second on the catalogues tried."""

NAMED_TYPES = 3
NAMED_TYPE_SHARE = 0.05
"""A category's label names its commonest product types, up to `NAMED_TYPES` of them, each holding at least
`NAMED_TYPE_SHARE` of its products and each with its own type word ("Candles, plates and incense")."""

TOKEN = re.compile(r"[^\W\d_](?:-[^\W\d_]+)+|[^\W\d_]+")
"""A word of letters in any script; a single letter joined by a hyphen stays one word ("t-light")."""


def singular(word: str) -> str:
    """Strip a plural ending ("bags" -> "bag", "boxes" -> "box", "doilies" -> "doily")."""
    if len(word) <= 3 or re.search(r"(ss|us|is|as|os)$", word):
        return word
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ies"):
        return word[:-3] + "y"
    if re.search(r"(ch|sh|x|z)es$", word):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


UNCOUNTABLE = frozenset(
    "incense cutlery jewellery jewelry stationery furniture clothing luggage confetti tinsel bunting glitter "
    "tableware glassware kitchenware homeware software hardware equipment fruit bread rice pasta milk cheese "
    "butter sugar flour tea coffee honey jam meat fish water juice wine beer chocolate candy popcorn christmas easter "
    "halloween".split()
)
"""Nouns a label does not put in the plural ("Candles and incense")."""


def plural(phrase: str) -> str:
    """Put the last word of a phrase in the plural ("cake stand" -> "cake stands", "shelf" -> "shelves").

    Uncountable nouns (`UNCOUNTABLE`) and words that are not nouns by their ending ("-ed")
    stay as they are.
    """
    word = phrase.split()[-1]
    if word in UNCOUNTABLE or word.endswith("ed"):
        return phrase
    if re.search(r"(s|x|z|ch|sh)$", phrase):
        return phrase + "es"
    if re.search(r"[^aeiou]y$", phrase):
        return phrase[:-1] + "ies"
    if re.search(r"(l|ea)f$", phrase):
        return phrase[:-1] + "ves"
    if phrase.endswith("fe"):
        return phrase[:-2] + "ves"
    return phrase + "s"


def product_words(description: str | None, ignored: frozenset[str] = DEFAULT_IGNORED_WORDS) -> list[str]:
    """Return the words of a description that can say what the product is, singular, in order.

    Lower-cased, without digits, punctuation, single letters and ignored words, and up to the
    first qualifier after a word is kept ("RECIPE BOX WITH METAL HEART" -> ["recipe", "box"]).
    """
    kept: list[str] = []
    for word in TOKEN.findall(description.casefold() if isinstance(description, str) else ""):
        if word in QUALIFIER_WORDS and kept:
            break
        if len(word) > 1 and word not in ignored:
            kept.append(singular(word))
    return kept


def normalise(description: str | None, ignored: frozenset[str] = DEFAULT_IGNORED_WORDS) -> str:
    """Return `product_words` joined by spaces."""
    return " ".join(product_words(description, ignored))


def _may_be_type(word: str, carried: Counter, min_products: int) -> bool:
    """Whether a word can name a product type: shared by ``min_products`` products, and not an adjective in "-ed"."""
    return carried[word] >= min_products and not (len(word) > 4 and word.endswith("ed"))


def product_types(words: list[list[str]], *, min_products: int = MIN_TYPE_PRODUCTS) -> tuple[list[str], list[str]]:
    """Find the word each description names its product by, and the phrase it forms.

    Product names put the type last ("GLASS STAR T-LIGHT HOLDER") or first, before a design's name
    ("DOORMAT ... ", "LUNCH BAG RED RETROSPOT"). Each word's rate of naming a product is learned
    from the catalogue: start from the last word of every description, then, for `TYPE_ROUNDS`
    rounds, take in every description the word with the highest rate (how many products it names
    over how many carry it, smoothed), preferring words of at least ``min_products`` products
    that are not adjectives in "-ed" ("mirrored"), and, on ties, the later word. A design's name
    ("retrospot") is carried by many kinds of product and names few of them; a type ("bag")
    names most of the products that carry it.

    Parameters
    ----------
    words : list of list of str
        `product_words` of each product.
    min_products : int
        The fewest products a word must be in to be preferred as a type.

    Returns
    -------
    types : list of str
        The type word of each product ("" for a product without words).
    phrases : list of str
        The type with the word before it where at least ``min_products`` products share that
        phrase ("t-light holder", "lunch bag"), else the type word.
    """
    carried = Counter(word for product in words for word in set(product))
    heads = [len(product) - 1 for product in words]
    for _ in range(TYPE_ROUNDS):
        named = Counter(product[i] for product, i in zip(words, heads, strict=True) if i >= 0)

        rate = {word: (named[word] + 0.5) / (carried[word] + 2) for word in carried}
        heads = [
            max(
                range(len(product)), key=lambda i, p=product: (_may_be_type(p[i], carried, min_products), rate[p[i]], i)
            )
            if product
            else -1
            for product in words
        ]
    pairs = Counter((product[i - 1], product[i]) for product, i in zip(words, heads, strict=True) if i > 0)
    types, phrases = [], []
    for product, i in zip(words, heads, strict=True):
        types.append(product[i] if i >= 0 else "")
        shared = i > 0 and pairs[(product[i - 1], product[i])] >= min_products
        phrases.append(f"{product[i - 1]} {product[i]}" if shared else types[-1])
    return types, phrases


def category_label(phrases: list[str], shortened: frozenset[str] = frozenset()) -> str:
    """Name a category by its commonest product types (`NAMED_TYPES`, `NAMED_TYPE_SHARE`).

    A type whose word is another named type's word, or that word cut short in some descriptions
    ("neckl", "necklace"), is not named twice; a type word of ``shortened`` (`cut_short`) is not named at all.
    """
    counts = Counter(p for p in phrases if p)
    if not counts:
        return "other products"
    named: list[str] = []
    for phrase in sorted(counts, key=lambda p: (-counts[p], p)):
        if len(named) == NAMED_TYPES or (named and counts[phrase] < NAMED_TYPE_SHARE * len(phrases)):
            break
        word = phrase.split()[-1]
        if word in shortened:
            continue
        if not any(word == n.split()[-1] or _truncated(word, n.split()[-1]) for n in named):
            named.append(phrase)
    words = [plural(n) for n in named or sorted(counts, key=lambda p: (-counts[p], p))[:1]]
    label = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return label[0].upper() + label[1:]


def cut_short(counts: Counter) -> frozenset[str]:
    """Return the type words that are a commoner type word cut short ("neckl" beside "necklace"; 4+ letters).

    A word that starts only rarer ones ("candle" and "candlepot") is a word of its own. In sorted
    order, the words a word starts follow it.
    """
    ordered = sorted(counts)
    cut = set()
    for i, word in enumerate(ordered):
        if len(word) < 4:
            continue
        longer = []
        for after in ordered[i + 1 :]:
            if not after.startswith(word):
                break
            longer.append(counts[after])
        if longer and max(longer) > counts[word]:
            cut.add(word)
    return frozenset(cut)


def _truncated(word: str, other: str) -> bool:
    """Whether one word is the other cut short ("neckl", "necklace"); short words ("pen", "pencil") are not."""
    shorter, longer = sorted((word, other), key=len)
    return len(shorter) >= 4 and longer.startswith(shorter)
