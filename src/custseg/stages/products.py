"""Products: each product's category, learned from the descriptions or taken from a stored model."""

from __future__ import annotations

import ibis.expr.types as ir
import pandas as pd

from custseg.model import FittedModel
from custseg.products import basket_matrix, basket_pairs, categorize, category_table, product_summary
from custseg.record import Category, ProductsSection, StoredProducts, frozen
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.clean import Cleaned


@frozen
class Products:
    """Each product's category (``table``: product_id, category, ...), every category id and its label.

    ``frame`` is the products table in memory and ``categories`` the per-category table
    (categories.csv) when they were learned here (None with a stored model's categories).
    """

    table: ir.Table
    order: list[str]
    labels: dict[str, str]
    products: ProductsSection | StoredProducts
    frame: pd.DataFrame | None = None
    categories: pd.DataFrame | None = None


def learn_products(*, clean: Cleaned, settings: Settings, store: Store) -> Products:
    """Learn product categories from the descriptions and the orders (or take the user's map)."""
    summary = product_summary(clean.lines).execute()
    baskets = basket_matrix(basket_pairs(clean.lines).execute(), summary.product_id)
    products, described = categorize(summary, settings.products, baskets=baskets)
    categories = category_table(products, {c["category"]: c["top_words"].split(", ") for c in described["categories"]})
    return Products(
        table=store.cache("products", products),
        order=sorted(categories.category),
        labels=dict(zip(categories.category, categories.label, strict=True)),
        products=ProductsSection(
            products=len(products),
            method=described["method"],
            criterion=described["criterion"],
            chosen=described["chosen"],
            candidates=described["candidates"],
            categories=[Category(**row) for row in described["categories"]],
        ),
        frame=products,
        categories=categories,
    )


def stored_products(*, clean: Cleaned, fitted: FittedModel, store: Store) -> Products:
    """Put products in a stored model's categories; products it never saw are ``unknown``."""
    summary = product_summary(clean.lines).execute()
    products = fitted.categorize(summary)
    stored = fitted.manifest["products"]
    unknown = int((~summary.product_id.isin(stored["categories"])).sum())
    return Products(
        table=store.cache("products", products),
        order=stored["category_order"],
        labels=stored["labels"],
        products=StoredProducts(products=len(products), unknown_to_the_model=unknown),
    )
