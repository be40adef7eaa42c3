"""What kinds of product the shop sells, learned from the product descriptions.

To segment customers by what they buy, products need categories a buyer recognises ("Jumbo bags and
lunch bags", "T-light holders"), not price bands nor word topics. A description names its product
type ("WHITE HANGING HEART T-LIGHT HOLDER", "JUMBO BAG RED RETROSPOT"): this module finds that word
in every description (`product_types`), makes every type that enough products share a category, puts
the rarer types in the category they are most like (by their words and by the orders they are bought
in) and labels each category with its commonest product types.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from custseg.errors import ConfigError
from custseg.product_types import (
    DEFAULT_IGNORED_WORDS,
    MIN_TYPE_PRODUCTS,
    category_label,
    cut_short,
    product_types,
    product_words,
)
from custseg.schema import exact_sum

UNKNOWN = "unknown"
"""Category of products without a description."""

MAX_TYPES_RECORDED = 100
"""The product types listed in run.json (the most common first)."""


class ProductCategorizer(BaseEstimator):
    """Group products into categories named by their product types.

    Every product gets its type (`product_types`). The types that at least ``min_type_share`` of
    the described products carry become the categories, the most common first, no fewer than
    ``n_categories[0]`` and no more than ``n_categories[1]`` of them (fewer where the catalogue
    has fewer types). Every other type joins the category it is most like by cosine similarity:
    its products' words (TF-IDF) and, when baskets are given, the types bought in the same orders
    (positive pointwise mutual information). A product whose words say nothing (only colours,
    say) or without a description joins the category it is bought with most, relative to that
    category's size, when baskets are given, else the category whose products' text is nearest
    by character trigrams. Nothing is random: the same catalogue gives the same categories.
    Price is not used: categories that follow price bands are the trap to avoid.

    Parameters
    ----------
    n_categories : tuple of (int, int), default (10, 40)
        The fewest and most categories.
    min_type_share : float, default 0.01
        The share of the described products a type must name to be a category of its own.
    ignored_words : frozenset of str
        Words removed before anything else (default colours, sizes, packaging, stop words).

    Attributes
    ----------
    n_categories_ : int
        The number of categories.
    labels_ : ndarray of shape (n_products,)
        Category index of each product (0-based), -1 for no description.
    types_ : list of str
        The type phrase of each product ("" for none).
    category_labels_ : list of str
        A readable label per category from its commonest product types ("T-light holders and lanterns").
    top_words_ : list of list of str
        The ten most characteristic words of each category: the share of its products that
        carry the word minus the share of other products that do.
    type_table_ : DataFrame
        Every type word with its number of products and category index, most common first.
    """

    def __init__(
        self,
        *,
        n_categories: tuple[int, int] = (10, 40),
        min_type_share: float = 0.01,
        ignored_words: frozenset[str] = DEFAULT_IGNORED_WORDS,
    ) -> None:
        self.n_categories = n_categories
        self.min_type_share = min_type_share
        self.ignored_words = ignored_words

    def fit(self, descriptions: pd.Series, baskets: sp.spmatrix | None = None) -> ProductCategorizer:
        """Learn the categories of ``descriptions`` (one per product; null for none).

        Parameters
        ----------
        descriptions : Series of shape (n_products,)
            Each product's description.
        baskets : sparse matrix of shape (n_orders, n_products), optional
            Nonzero where an order holds the product: the co-purchase evidence.
        """
        low, high = self.n_categories
        if not 1 <= low <= high:
            raise ConfigError(f"n_categories={self.n_categories} must be a range with 1 <= low <= high")
        ignored = frozenset(self.ignored_words)
        words = [product_words(d, ignored) for d in descriptions]
        has_description = descriptions.map(lambda d: isinstance(d, str) and d.strip() != "").to_numpy(dtype=bool)
        if not any(words):
            raise ConfigError("product categories need at least one product with a description")
        type_words, phrases = product_types(words)
        counts = Counter(t for t in type_words if t)
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        floor = max(MIN_TYPE_PRODUCTS, math.ceil(self.min_type_share * sum(counts.values())))
        qualified = sum(counts[t] >= floor for t in ordered)
        # A type of one or two products is no category of its own, unless the catalogue has no other.
        eligible = sum(counts[t] >= MIN_TYPE_PRODUCTS for t in ordered) or len(ordered)
        anchors = ordered[: min(max(qualified, low), high, eligible)]
        code = {t: i for i, t in enumerate(ordered)}
        product_type = np.array([code.get(t, -1) for t in type_words])
        vectors = self._type_vectors(words, product_type, len(ordered), baskets)
        similarity = (vectors @ vectors[: len(anchors)].T).toarray()
        category_of_type = np.where(similarity.max(axis=1) > 0, similarity.argmax(axis=1), -1)
        category_of_type[: len(anchors)] = np.arange(len(anchors))
        labels = np.where(product_type >= 0, category_of_type[np.maximum(product_type, 0)], -1)
        orphans = (labels < 0) & (has_description | (baskets is not None))
        if orphans.any() and (labels >= 0).any():
            labels[orphans] = self._place_orphans(descriptions, labels, orphans, baskets)
        self.n_categories_ = len(anchors)
        self.labels_ = labels
        self.types_ = phrases
        shortened = cut_short(counts)
        self.category_labels_ = unique_labels(
            [category_label([phrases[i] for i in np.flatnonzero(labels == c)], shortened) for c in range(len(anchors))]
        )
        documents = pd.Series([" ".join(w) for w in words])
        self.top_words_ = _characteristic_words(documents[labels >= 0], labels[labels >= 0], len(anchors))
        self.type_table_ = pd.DataFrame(
            {"type": ordered, "products": [counts[t] for t in ordered], "category": category_of_type}
        )
        return self

    @staticmethod
    def _type_vectors(words, product_type, n_types, baskets) -> sp.csr_matrix:
        """Each type's words (TF-IDF summed over its products) beside its co-purchase, both L2-normalised."""
        typed = np.flatnonzero(product_type >= 0)
        documents = [" ".join(words[i]) for i in typed]
        text = _tfidf(documents)
        members = sp.csr_matrix(
            (np.ones(len(typed)), (product_type[typed], np.arange(len(typed)))), (n_types, len(typed))
        )
        parts = [normalize(members @ text)]
        if baskets is not None:
            owner = sp.csr_matrix((np.ones(len(typed)), (typed, product_type[typed])), (len(product_type), n_types))
            bought = (sp.csr_matrix(baskets) @ owner).astype(bool).astype(np.float64).tocsc()
            # Each type against the types of several products only: a grocery catalogue's tail of
            # rare types would make the pairs too many, and says little of what goes together.
            common = np.flatnonzero(np.bincount(product_type[typed], minlength=n_types) >= MIN_TYPE_PRODUCTS)
            if len(common):
                parts.append(normalize(_ppmi(bought, common)))
        return normalize(sp.hstack(parts).tocsr())

    @staticmethod
    def _place_orphans(descriptions, labels, orphans, baskets) -> np.ndarray:
        placed = labels >= 0
        result = np.full(int(orphans.sum()), -1)
        if baskets is not None:
            n_categories = labels.max() + 1
            member = sp.csr_matrix(
                (np.ones(int(placed.sum())), (np.flatnonzero(placed), labels[placed])), (len(labels), n_categories)
            )
            baskets = sp.csr_matrix(baskets).astype(bool).astype(np.float64)
            together = (baskets[:, orphans].T @ (baskets @ member)).toarray()
            lift = together / np.maximum(np.asarray(member.sum(axis=0)).ravel(), 1)
            result = np.where(together.max(axis=1) > 0, lift.argmax(axis=1), -1)
        textual = (result < 0) & descriptions[orphans].map(lambda d: isinstance(d, str) and d.strip() != "").to_numpy()
        if textual.any():
            # Each category's character trigrams, summed: one comparison per category, not per product.
            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3))
            known = vectorizer.fit_transform(descriptions[placed].fillna("").str.lower())
            member = sp.csr_matrix(
                (np.ones(int(placed.sum())), (labels[placed], np.arange(int(placed.sum())))),
                (labels.max() + 1, int(placed.sum())),
            )
            unknown = vectorizer.transform(descriptions[orphans][textual].fillna("").str.lower())
            similarity = (unknown @ normalize(member @ known).T).toarray()
            result[textual] = np.where(similarity.max(axis=1) > 0, similarity.argmax(axis=1), -1)
        return result

    def type_records(self, limit: int = MAX_TYPES_RECORDED) -> list[dict[str, Any]]:
        """Return the most common product types with their products and category label (for run.json)."""
        check_is_fitted(self, "type_table_")
        top = self.type_table_.head(limit)
        return [
            {
                "type": row.type,
                "products": int(row.products),
                "category": self.category_labels_[row.category] if row.category >= 0 else None,
                "own_category": bool(i < self.n_categories_),
            }
            for i, row in enumerate(top.itertuples())
        ]


def _tfidf(documents: list[str]) -> sp.csr_matrix:
    """TF-IDF of the documents' words; larger catalogues drop words seen once, unless no word repeats."""
    options = {"sublinear_tf": True, "token_pattern": r"\S+", "lowercase": False}
    try:
        return TfidfVectorizer(min_df=2 if len(documents) >= 50 else 1, **options).fit_transform(documents)
    except ValueError:
        return TfidfVectorizer(min_df=1, **options).fit_transform(documents)


def _ppmi(bought: sp.spmatrix, partners: np.ndarray, min_orders: int = 3) -> sp.csr_matrix:
    """Positive pointwise mutual information of each item with each of the ``partners`` items.

    ``bought`` is orders by items (1 = bought); ``partners`` are column indices of it. Pairs seen
    in fewer than ``min_orders`` orders, and an item with itself, count 0. Returns a matrix of
    shape (n_items, n_partners).
    """
    paired = bought[:, partners]
    together = (bought.T @ paired).tocoo()
    each = np.asarray(bought.sum(axis=0)).ravel()
    keep = (together.data >= min_orders) & (together.row != partners[together.col])
    rows, cols, counts = together.row[keep], together.col[keep], together.data[keep]
    pmi = np.log(counts * bought.shape[0] / (each[rows] * each[partners[cols]]))
    positive = pmi > 0
    return sp.csr_matrix((pmi[positive], (rows[positive], cols[positive])), (bought.shape[1], len(partners)))


def _characteristic_words(
    documents: pd.Series, labels: np.ndarray, n_categories: int, top: int = 10
) -> list[list[str]]:
    """Rank each category's most typical words: share of its products with the word minus the share elsewhere."""
    counter = CountVectorizer(binary=True, token_pattern=r"\S+", lowercase=False)
    present = counter.fit_transform(documents).tocsr()
    terms = counter.get_feature_names_out()
    words = []
    for category in range(n_categories):
        inside = labels == category
        share_in = np.asarray(present[inside].mean(axis=0)).ravel() if inside.any() else np.zeros(len(terms))
        share_out = np.asarray(present[~inside].mean(axis=0)).ravel() if (~inside).any() else np.zeros(len(terms))
        score = share_in - share_out
        order = np.lexsort((terms, -score))
        words.append([str(terms[j]) for j in order[:top] if score[j] > 0])
    return words


def in_sentence(label: str) -> str:
    """Return a category label as it reads inside a sentence ("Hearts and mirrors" -> "hearts and mirrors").

    A label that starts with an acronym keeps it ("USB lights").
    """
    return label[0].lower() + label[1:] if label[:1].isupper() and not label[1:2].isupper() else label


def unique_labels(labels: list[str]) -> list[str]:
    """Return the labels with repeats numbered ("Bags", "Bags (2)"), so that no two things share a name."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def product_summary(lines: ir.Table) -> ir.Table:
    """One row per product of the kept lines.

    Returns
    -------
    ibis.Table of shape (n_products, 5)
        product_id, description (the most frequent one; ties by text), median_price, units (net
        quantity) and revenue (net); ordered by product_id.
    """
    counts = lines.group_by("product_id", "description").aggregate(n=lines.count())
    rank = ibis.row_number().over(group_by=counts.product_id, order_by=[counts.n.desc(), counts.description.asc()])
    description = counts.mutate(rank=rank).filter(lambda t: t["rank"] == 0).select("product_id", "description")
    totals = lines.group_by("product_id").aggregate(
        median_price=lines.unit_price.median(),
        units=exact_sum(lines.net_quantity),
        revenue=exact_sum(lines.net_revenue),
    )
    # Ordered, so that categorize sees the same rows in the same order on every engine.
    return (
        totals.left_join(description, "product_id")
        .select("product_id", "description", "median_price", "units", "revenue")
        .order_by("product_id")
    )


def basket_pairs(lines: ir.Table, *, max_orders: int = 200_000) -> ir.Table:
    """Return the products of each order, for co-purchase: one row per (invoice_id, product_id).

    Logs of more than ``max_orders`` orders keep every k-th order by invoice id, the same on
    every engine, so that co-purchase costs the same on a log of any size.
    """
    pairs = lines.select("invoice_id", "product_id").distinct()
    orders = lines.select("invoice_id").distinct()
    n_orders = orders.count().execute()
    if n_orders <= max_orders:
        return pairs
    step = math.ceil(n_orders / max_orders)
    kept = orders.mutate(position=ibis.row_number().over(order_by="invoice_id"))
    kept = kept.filter(kept.position % step == 0).select("invoice_id")
    return pairs.semi_join(kept, "invoice_id")


def basket_matrix(pairs: pd.DataFrame, product_ids: pd.Series) -> sp.csr_matrix:
    """Orders by products, 1 where the order holds the product; columns in the order of ``product_ids``."""
    column = pd.Index(product_ids).get_indexer(pairs.product_id)
    known = column >= 0
    rows = pd.factorize(pairs.invoice_id[known], sort=True)[0]
    return sp.csr_matrix(
        (np.ones(int(known.sum())), (rows, column[known])), (int(rows.max()) + 1 if len(rows) else 0, len(product_ids))
    )


@dataclass(frozen=True)
class ProductOptions:
    """Settings of the product stage.

    Attributes
    ----------
    min_categories, max_categories : int
        The fewest and most categories (default 10 to 40).
    min_type_share : float
        The share of the described products a product type must name to be a category of its own
        (default 0.01).
    mapping_file : str or None
        A CSV with columns product_id and category that overrides the learned categories.
    extra_ignored_words : list of str
        Words to ignore besides the default colours, sizes and stop words.
    """

    min_categories: int = 10
    max_categories: int = 40
    min_type_share: float = 0.01
    mapping_file: str | None = None
    extra_ignored_words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.min_categories <= self.max_categories:
            raise ConfigError(
                f"[products] min_categories={self.min_categories} and max_categories={self.max_categories} "
                "must satisfy 1 <= min <= max"
            )
        if not 0 < self.min_type_share < 1:
            raise ConfigError(f"[products] min_type_share={self.min_type_share} must be between 0 and 1")


def categorize(
    products: pd.DataFrame, options: ProductOptions | None = None, *, baskets: sp.spmatrix | None = None
) -> tuple[pd.DataFrame, dict]:
    """Add product_type, category and category_label to the product table; summarise the categories.

    Parameters
    ----------
    products : DataFrame of shape (n_products, 5)
        From `product_summary`, ordered by product_id.
    options : ProductOptions, optional
        Range of numbers of categories, type share, mapping file, extra ignored words.
    baskets : sparse matrix of shape (n_orders, n_products), optional
        `basket_matrix` over the same products, in the same order: the co-purchase evidence.

    Returns
    -------
    products : DataFrame of shape (n_products, 8)
        With ``product_type`` (the phrase the description names it by), ``category`` (a stable id
        such as ``c03``, or ``unknown``) and ``category_label``.
    summary : dict
        ``method``, ``criterion``, ``chosen`` (the number of categories), ``candidates`` (the most
        common product types and where each went) and ``categories`` (label, products, revenue
        share, top words, examples).
    """
    options = options or ProductOptions()
    ignored = DEFAULT_IGNORED_WORDS | {w.lower() for w in options.extra_ignored_words}
    if not any(product_words(d, frozenset(ignored)) for d in products.description):
        products = products.assign(product_type="", category=UNKNOWN, category_label=UNKNOWN)
        summary = {
            "method": "none: no product has a description, so customers' interests cannot be told apart",
            "criterion": "-",
            "chosen": 0,
            "candidates": [],
        }
        return products, {**summary, "categories": category_table(products).to_dict(orient="records")}
    model = ProductCategorizer(
        n_categories=(options.min_categories, options.max_categories),
        min_type_share=options.min_type_share,
        ignored_words=frozenset(ignored),
    ).fit(products.description.reset_index(drop=True), baskets)
    ids = [f"c{i + 1:02d}" for i in range(model.n_categories_)]
    labels = model.labels_
    products = products.assign(
        product_type=model.types_,
        category=[ids[i] if i >= 0 else UNKNOWN for i in labels],
        category_label=[model.category_labels_[i] if i >= 0 else UNKNOWN for i in labels],
    )
    top_words = {ids[i]: model.top_words_[i] for i in range(model.n_categories_)}
    method = "product types" + (" + co-purchase" if baskets is not None else "")
    if options.mapping_file:
        products = _apply_mapping(products, options.mapping_file)
        method += " + user mapping"
    summary = {
        "method": method,
        "criterion": (
            f"every product type named by at least {options.min_type_share:.0%} of the described products, "
            f"{options.min_categories} to {options.max_categories}; the rarer types join the one they are most like"
        ),
        "chosen": model.n_categories_,
        "candidates": model.type_records(),
        "categories": category_table(products, top_words).to_dict(orient="records"),
    }
    return products, summary


def _apply_mapping(products: pd.DataFrame, path: str) -> pd.DataFrame:
    try:
        mapping = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: cannot read the category mapping: {exc}") from None
    missing = {"product_id", "category"} - set(mapping.columns)
    if missing:
        raise ConfigError(
            f"{path}: the category mapping needs columns product_id and category; found {', '.join(mapping.columns)}"
        )
    mapping = mapping.dropna(subset=["product_id", "category"]).drop_duplicates("product_id", keep="last")
    given = products.product_id.map(dict(zip(mapping.product_id, mapping.category.str.strip(), strict=True)))
    products = products.copy()
    products.loc[given.notna(), "category"] = given[given.notna()].to_numpy()
    products.loc[given.notna(), "category_label"] = given[given.notna()].to_numpy()
    return products


def categories_state(products: pd.DataFrame) -> dict[str, Any]:
    """Return what a model folder keeps of the learned categories (JSON): product -> category, labels, order."""
    return {
        "categories": dict(zip(products.product_id, products.category, strict=True)),
        "labels": dict(zip(products.category, products.category_label, strict=True)),
        "category_order": sorted(products.category.unique()),
    }


def apply_categories(products: pd.DataFrame, state: dict[str, Any]) -> pd.DataFrame:
    """Put products in stored categories (`categories_state`); products never seen are ``unknown``."""
    category = products.product_id.map(state["categories"]).fillna("unknown")
    return products.assign(category=category, category_label=category.map(state["labels"]).fillna("unknown"))


def category_table(products: pd.DataFrame, top_words: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per category: label, products, revenue share, top words and three best-selling examples.

    The examples are the best sellers of the category's commonest product type (the first its
    label names) where the products have types: they show what the label says, not the rarer
    types that joined it.
    """
    total = products.revenue.clip(lower=0).sum()
    rows = []
    for category, group in products.groupby("category", sort=True):
        typed = group[group.product_type.ne("")] if "product_type" in group else group.iloc[:0]
        if len(typed):
            # The label's first type: the commonest phrase, ties by name.
            typed = typed[typed.product_type == typed.product_type.value_counts().sort_index().idxmax()]
        # Then the category's other best sellers, where its commonest type has fewer than three.
        ranked = [frame.sort_values(["revenue", "product_id"], ascending=[False, True]) for frame in (typed, group)]
        best = pd.concat(ranked).drop_duplicates("product_id").description.dropna().head(3)
        rows.append(
            {
                "category": category,
                "label": group.category_label.iloc[0],
                "products": len(group),
                "revenue_share": round(float(group.revenue.clip(lower=0).sum() / total), 4) if total else 0.0,
                "top_words": ", ".join((top_words or {}).get(category, [])),
                "examples": " | ".join(best),
            }
        )
    return pd.DataFrame(rows, columns=["category", "label", "products", "revenue_share", "top_words", "examples"])
