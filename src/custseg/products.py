"""What kinds of product the shop sells, learned from the product descriptions.

To segment customers by what they buy, products need categories a person recognises ("bags",
"candles and lights"), not price bands. This module normalises the short descriptions, finds
topics with non-negative matrix factorisation (NMF), and puts every product in its dominant topic,
with the number of categories chosen by a stated criterion and a readable label for each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from custseg.errors import ConfigError
from custseg.schema import exact_sum

UNKNOWN = "unknown"
"""Category of products without a description."""

COLOUR_WORDS = frozenset(
    "red pink blue green white ivory black cream purple orange yellow gold silver grey gray brown turquoise "
    "lilac multicolour colour colours colour assorted natural mint".split()
)
OTHER_IGNORED_WORDS = frozenset("of with and the in on to for a an set small large mini jumbo cm design pack".split())
DEFAULT_IGNORED_WORDS = COLOUR_WORDS | OTHER_IGNORED_WORDS
"""Words that say nothing about what a product is: colours, sizes, packaging, stop words."""


def singular(word: str) -> str:
    """Strip a plural ending ("bags" -> "bag", "boxes" -> "box", "doilies" -> "doily")."""
    if len(word) <= 3 or re.search(r"(ss|us|is|as|os)$", word):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if re.search(r"(ch|sh|x|z)es$", word):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def normalise(description: str | None, ignored: frozenset[str] = DEFAULT_IGNORED_WORDS) -> str:
    """Lower-case words of a description, without digits, punctuation, plurals and ignored words."""
    words = re.findall(r"[a-z]+", description.lower() if isinstance(description, str) else "")
    return " ".join(singular(w) for w in words if len(w) > 1 and w not in ignored)


COHERENCE_WORDS = 5


def npmi_coherence(matrix, heaviest: np.ndarray) -> float:
    """Mean normalised pointwise mutual information of each topic's heaviest words.

    Two words score +1 when they always appear together in a description, 0 when independent,
    -1 when never together. A topic that merges unrelated product lines has words that never
    meet, so this falls when too few categories are forced on the catalogue, and when topics split
    hairs it falls too, as their words are rare and scattered.

    Parameters
    ----------
    matrix : sparse matrix of shape (n_products, n_words)
        The TF-IDF weights of the products' words (only presence is used).
    heaviest : ndarray of shape (n_topics, n_top)
        Word indices of each topic's heaviest words.
    """
    present = (matrix > 0).astype(np.float64).tocsc()
    n = present.shape[0]
    counts = np.asarray(present.sum(axis=0)).ravel()
    scores = []
    for words in heaviest:
        pairs = []
        for i, a in enumerate(words):
            for b in words[i + 1 :]:
                together = present[:, a].multiply(present[:, b]).sum()
                if together == 0:
                    pairs.append(-1.0)
                elif together == n:
                    pairs.append(1.0)
                else:
                    pairs.append(np.log(together * n / (counts[a] * counts[b])) / -np.log(together / n))
        scores.append(np.mean(pairs))
    return float(np.mean(scores))


@dataclass
class Candidate:
    """One number of categories tried: its labels, coherence and how confidently products belong."""

    n_categories: int
    coherence: float
    confidence: float
    smallest_share: float
    labels: np.ndarray | None = field(default=None, repr=False)
    placed: np.ndarray | None = field(default=None, repr=False)


class ProductCategorizer(BaseEstimator):
    """Group products into categories from their descriptions.

    Descriptions are normalised (`normalise`), weighted with TF-IDF and factorised with NMF
    (NNDSVD initialisation, whose only randomness is a randomized SVD, so different seeds give
    the same categories but for products on a knife edge). Each product goes to its dominant
    topic. For every number of categories in ``n_categories`` the mean assignment confidence is
    computed (a product's weight on its own topic over its total weight: how unambiguously
    products belong to one category); the highest wins, and candidates within 0.005 of it go to
    the larger number, which gives more specific categories. The topic coherence
    (`npmi_coherence`) is reported beside it. Products whose description keeps no weighted word
    go to the category of their nearest product by character trigrams.
    Price is not used: categories that follow price bands are the trap to avoid.

    Parameters
    ----------
    n_categories : tuple of (int, int), default (6, 20)
        The inclusive range of numbers of categories to try.
    ignored_words : frozenset of str
        Words removed before vectorising (default colours, sizes, packaging, stop words).
    random_state : int, default 0
        Seed of the randomized SVD inside the NNDSVD initialisation.

    Attributes
    ----------
    candidates_ : list of Candidate
        Every number of categories tried, with its confidence.
    n_categories_ : int
        The chosen number.
    labels_ : ndarray of shape (n_products,)
        Category index of each product (0-based), -1 for no description.
    category_labels_ : list of str
        A readable label per category, from its three most characteristic words.
    top_words_ : list of list of str
        The ten most characteristic words of each category: the share of its products that
        carry the word minus the share of other products that do.
    """

    def __init__(
        self,
        *,
        n_categories: tuple[int, int] = (6, 20),
        ignored_words: frozenset[str] = DEFAULT_IGNORED_WORDS,
        random_state: int = 0,
    ) -> None:
        self.n_categories = n_categories
        self.ignored_words = ignored_words
        self.random_state = random_state

    def fit(self, descriptions: pd.Series) -> ProductCategorizer:
        """Learn the categories of ``descriptions`` (one per product; null for none).

        A catalogue too small for the range (fewer products or words than categories) gets as
        many categories as it can hold, one at the least.
        """
        low, high = self.n_categories
        if not 2 <= low <= high:
            raise ConfigError(f"n_categories={self.n_categories} must be a range with 2 <= low <= high")
        texts = descriptions.map(lambda d: normalise(d, frozenset(self.ignored_words)))
        has_description = descriptions.map(lambda d: isinstance(d, str) and d.strip() != "").to_numpy(dtype=bool)
        usable = texts.ne("").to_numpy() & has_description
        if usable.sum() < 1:
            raise ConfigError("product categories need at least one product with a description")
        documents = texts[usable]
        # Small catalogues keep words seen once; larger ones drop them as noise.
        vectorizer = TfidfVectorizer(
            min_df=2 if len(documents) >= 50 else 1, sublinear_tf=True, token_pattern=r"[a-z]+"
        )
        matrix = vectorizer.fit_transform(documents)
        high = min(high, len(documents) - 1, matrix.shape[1])
        if high < 2:
            self.candidates_ = [_single_category(len(documents))]
        else:
            # In processes, not threads: two NMF fits on threads of one process gave different
            # categories now and then when both cores were busy (1 run in 4 under load).
            # max_nbytes=None: no read-only memory map of the matrix, which NMF fails on in a worker
            # (WRITEBACKIFCOPY) from about 70,000 products on.
            self.candidates_ = Parallel(n_jobs=-1, max_nbytes=None)(
                delayed(self._fit_k)(matrix, k) for k in range(min(low, high), high + 1)
            )
        best = max(c.confidence for c in self.candidates_)
        chosen = max((c for c in self.candidates_ if c.confidence >= best - 0.005), key=lambda c: c.n_categories)
        self.n_categories_ = chosen.n_categories
        labels = np.full(len(descriptions), -1)
        labels[usable] = chosen.labels
        placed = np.zeros(len(descriptions), dtype=bool)
        placed[np.flatnonzero(usable)[chosen.placed]] = True
        orphans = has_description & ~placed
        if orphans.any():
            labels[orphans] = self._nearest_category(descriptions, placed, orphans, labels)
        self.labels_ = labels
        self.top_words_ = _characteristic_words(documents, chosen.labels, self.n_categories_)
        self.category_labels_ = _unique_labels([" / ".join(words[:3]) or "all products" for words in self.top_words_])
        return self

    def _fit_k(self, matrix, k: int) -> Candidate:
        model = NMF(k, init="nndsvd", max_iter=300, tol=1e-3, random_state=self.random_state)
        # One BLAS thread: threaded sums change the last bits, and NMF amplifies them.
        with threadpool_limits(limits=1, user_api="blas"):
            weights = model.fit_transform(matrix)
        totals = weights.sum(axis=1)
        kept = totals > 0
        labels = weights.argmax(axis=1)
        confidence = float((weights.max(axis=1)[kept] / totals[kept]).mean()) if kept.any() else 0.0
        shares = np.bincount(labels[kept], minlength=k) / max(int(kept.sum()), 1)
        heaviest = np.argsort(-model.components_, axis=1)[:, :COHERENCE_WORDS]
        return Candidate(
            n_categories=k,
            coherence=round(npmi_coherence(matrix, heaviest), 4),
            confidence=round(confidence, 4),
            smallest_share=round(float(shares.min()), 4),
            labels=labels,
            placed=kept,
        )

    @staticmethod
    def _nearest_category(descriptions, usable, orphans, labels) -> np.ndarray:
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3))
        known = vectorizer.fit_transform(descriptions[usable].fillna("").str.lower())
        unknown = vectorizer.transform(descriptions[orphans].fillna("").str.lower())
        nearest = NearestNeighbors(n_neighbors=1, metric="cosine").fit(known).kneighbors(unknown)[1][:, 0]
        return labels[usable][nearest]

    def candidate_table(self) -> pd.DataFrame:
        """Return every candidate number of categories with its criterion (for run.json and the report)."""
        check_is_fitted(self, "candidates_")
        return pd.DataFrame(
            {
                "n_categories": [c.n_categories for c in self.candidates_],
                "coherence": [c.coherence for c in self.candidates_],
                "confidence": [c.confidence for c in self.candidates_],
                "smallest_share": [c.smallest_share for c in self.candidates_],
                "chosen": [c.n_categories == self.n_categories_ for c in self.candidates_],
            }
        )


def _single_category(n_products: int) -> Candidate:
    return Candidate(
        n_categories=1,
        coherence=0.0,
        confidence=1.0,
        smallest_share=1.0,
        labels=np.zeros(n_products, dtype=int),
        placed=np.ones(n_products, dtype=bool),
    )


def _characteristic_words(
    documents: pd.Series, labels: np.ndarray, n_categories: int, top: int = 10
) -> list[list[str]]:
    """Rank each category's most typical words: share of its products with the word minus the share elsewhere."""
    counter = CountVectorizer(binary=True, token_pattern=r"[a-z]+")
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


def _unique_labels(labels: list[str]) -> list[str]:
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


@dataclass(frozen=True)
class ProductOptions:
    """Settings of the product stage.

    Attributes
    ----------
    min_categories, max_categories : int
        The range of numbers of categories to try (default 6 to 20).
    mapping_file : str or None
        A CSV with columns product_id and category that overrides the learned categories.
    extra_ignored_words : list of str
        Words to ignore besides the default colours, sizes and stop words.
    """

    min_categories: int = 6
    max_categories: int = 20
    mapping_file: str | None = None
    extra_ignored_words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 2 <= self.min_categories <= self.max_categories:
            raise ConfigError(
                f"[products] min_categories={self.min_categories} and max_categories={self.max_categories} "
                "must satisfy 2 <= min <= max"
            )


def categorize(
    products: pd.DataFrame, options: ProductOptions | None = None, *, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Add category and category_label to the product table; summarise the categories.

    Parameters
    ----------
    products : DataFrame of shape (n_products, 5)
        From `product_summary`.
    options : ProductOptions, optional
        Range of numbers of categories, mapping file, extra ignored words.
    seed : int
        Random seed (`ProductCategorizer`'s ``random_state``).

    Returns
    -------
    products : DataFrame of shape (n_products, 7)
        With ``category`` (a stable id such as ``c03``, or ``unknown``) and ``category_label``.
    summary : dict
        ``method``, ``chosen``, ``candidates`` (the criterion for every number tried) and
        ``categories`` (label, products, revenue share, top words, examples).
    """
    options = options or ProductOptions()
    products = products.sort_values("product_id", kind="mergesort").reset_index(drop=True)
    ignored = DEFAULT_IGNORED_WORDS | {w.lower() for w in options.extra_ignored_words}
    described = products.description.map(lambda d: isinstance(d, str) and normalise(d, frozenset(ignored)) != "")
    if not described.any():
        products = products.assign(category=UNKNOWN, category_label=UNKNOWN)
        summary = {"method": "none: no product has a description", "criterion": "-", "chosen": 0, "candidates": []}
        return products, {**summary, "categories": category_table(products).to_dict(orient="records")}
    model = ProductCategorizer(
        n_categories=(options.min_categories, options.max_categories),
        ignored_words=frozenset(ignored),
        random_state=seed,
    ).fit(products.description)
    ids = [f"c{i + 1:02d}" for i in range(model.n_categories_)]
    labels = model.labels_
    products["category"] = [ids[i] if i >= 0 else UNKNOWN for i in labels]
    products["category_label"] = [model.category_labels_[i] if i >= 0 else UNKNOWN for i in labels]
    top_words = {ids[i]: model.top_words_[i] for i in range(model.n_categories_)}
    method = "nmf"
    if options.mapping_file:
        products = _apply_mapping(products, options.mapping_file)
        method = "nmf + user mapping"
    summary = {
        "method": method,
        "criterion": "mean assignment confidence, highest wins (within 0.005: more categories)",
        "chosen": model.n_categories_,
        "candidates": model.candidate_table().to_dict(orient="records"),
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
    """Per category: label, products, revenue share, top words and three best-selling examples."""
    total = products.revenue.clip(lower=0).sum()
    rows = []
    for category, group in products.groupby("category", sort=True):
        best = group.sort_values(["revenue", "product_id"], ascending=[False, True]).description.dropna().head(3)
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
