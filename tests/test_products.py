from __future__ import annotations

import datetime

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest import make_transactions
from custseg.clean import clean
from custseg.errors import ConfigError
from custseg.features import customer_interests
from custseg.products import (
    UNKNOWN,
    ProductCategorizer,
    ProductOptions,
    categorize,
    normalise,
    product_summary,
    singular,
)
from custseg.simulate import simulate_to_files

OBVIOUS = [
    "JUMBO BAG RED RETROSPOT",
    "LUNCH BAG PINK POLKADOT",
    "SHOPPER BAG VINTAGE",
    "JUMBO BAG STRAWBERRY",
    "TOTE BAG BLUE",
    "CHARLOTTE BAG SUKI",
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "GLASS T-LIGHT HOLDER",
    "ZINC T-LIGHT HOLDER STAR",
    "RED T-LIGHT HOLDER",
    "CANDLE HOLDER T-LIGHT SILVER",
    "HANGING T-LIGHT HOLDER",
    "CHRISTMAS TREE DECORATION",
    "CHRISTMAS BAUBLE RED",
    "CHRISTMAS STAR DECORATION",
    "CHRISTMAS TREE STAR",
    "WOODEN CHRISTMAS TREE",
    "CHRISTMAS GARLAND DECORATION",
]


def test_normalise_drops_colours_sizes_punctuation_and_plurals():
    assert normalise("SET OF 3 RED RETROSPOT CAKE-TINS") == "retrospot cake tin"
    assert normalise("JUMBO BAG, PINK") == "bag"
    assert normalise(None) == ""
    assert [singular(w) for w in ("bags", "boxes", "doilies", "christmas", "glass")] == [
        "bag",
        "box",
        "doily",
        "christmas",
        "glass",
    ]


def test_obvious_groups_are_found():
    model = ProductCategorizer(n_categories=(3, 3)).fit(pd.Series(OBVIOUS))
    truth = np.repeat([0, 1, 2], 6)
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    assert [model.category_labels_[model.labels_[i]].split(" / ")[0] for i in (0, 6, 12)] == [
        "bag",
        "holder",
        "christmas",
    ]


def test_products_without_description_are_unknown_and_described_ones_are_not():
    descriptions = pd.Series([*OBVIOUS, None, "  ", "PINK"])
    model = ProductCategorizer(n_categories=(3, 3)).fit(descriptions)
    assert model.labels_[-3:-1].tolist() == [-1, -1]
    # "PINK" keeps no word after normalising: it goes to its nearest product's category
    assert model.labels_[-1] >= 0


def test_the_choice_is_reported_for_every_candidate():
    model = ProductCategorizer(n_categories=(2, 6)).fit(pd.Series(OBVIOUS))
    table = model.candidate_table()
    assert table.n_categories.tolist() == [2, 3, 4, 5, 6]
    assert table.chosen.sum() == 1
    assert table.loc[table.chosen, "n_categories"].item() == model.n_categories_
    assert table.confidence.between(0, 1).all() and table.coherence.between(-1, 1).all()
    best = table.confidence.max()
    assert model.n_categories_ == table[table.confidence >= best - 0.005].n_categories.max()


def test_categories_are_identical_on_repeated_fits():
    first = ProductCategorizer(n_categories=(2, 6)).fit(pd.Series(OBVIOUS * 3))
    second = ProductCategorizer(n_categories=(2, 6)).fit(pd.Series(OBVIOUS * 3))
    assert first.labels_.tolist() == second.labels_.tolist()
    assert first.candidate_table().equals(second.candidate_table())


def test_bad_ranges_are_refused():
    with pytest.raises(ConfigError, match="must be a range"):
        ProductCategorizer(n_categories=(1, 3)).fit(pd.Series(OBVIOUS))
    with pytest.raises(ConfigError, match="at least one product with a description"):
        ProductCategorizer().fit(pd.Series([None, "RED"]))


def test_tiny_catalogues_get_as_many_categories_as_they_hold():
    model = ProductCategorizer().fit(pd.Series(["JUMBO BAG", "LUNCH BAG", "CANDLE"]))
    assert model.n_categories_ == 2
    assert model.labels_[0] == model.labels_[1] != model.labels_[2]
    single = ProductCategorizer().fit(pd.Series(["JUMBO BAG"]))
    assert single.n_categories_ == 1 and single.labels_.tolist() == [0]


def test_a_log_without_descriptions_has_only_unknown_products():
    products = pd.DataFrame(
        {"product_id": ["a", "b"], "description": [None, None], "median_price": 1.0, "units": 1.0, "revenue": 1.0}
    )
    out, summary = categorize(products)
    assert set(out.category) == {UNKNOWN}
    assert summary["chosen"] == 0


def lines_for(descriptions_and_revenue):
    rows = [
        {
            "customer_id": customer,
            "product_id": f"p{i}",
            "description": description,
            "quantity": 1,
            "unit_price": revenue,
            "invoice_id": f"{customer}{i}",
        }
        for i, (customer, description, revenue) in enumerate(descriptions_and_revenue)
    ]
    return clean(make_transactions(rows)).lines


def test_customer_interests_are_revenue_shares_with_dominant_category_and_breadth():
    lines = lines_for([("a", "BAG", 30.0), ("a", "CANDLE", 10.0), ("b", "BAG", 5.0)])
    products = ibis.memtable({"product_id": ["p0", "p1", "p2"], "category": ["c01", "c02", "c01"]})
    got = customer_interests(lines, products, ["c01", "c02"], datetime.datetime(2012, 1, 1))
    got = got.order_by("customer_id").to_pandas()
    assert got.share_c01.tolist() == [0.75, 1.0]
    assert got.share_c02.tolist() == [0.25, 0.0]
    assert got.dominant_category.tolist() == ["c01", "c01"]
    entropy = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2)
    assert got.breadth.tolist() == pytest.approx([entropy, 0.0])


def test_user_mapping_overrides_learned_categories(tmp_path):
    mapping = tmp_path / "map.csv"
    mapping.write_text("product_id,category\np0,Bags\np99,Nothing\n")
    products = pd.DataFrame(
        {
            "product_id": [f"p{i}" for i in range(len(OBVIOUS))],
            "description": OBVIOUS,
            "median_price": 1.0,
            "units": 1.0,
            "revenue": 1.0,
        }
    )
    out, summary = categorize(products, ProductOptions(min_categories=3, max_categories=3, mapping_file=str(mapping)))
    assert out.set_index("product_id").loc["p0", "category"] == "Bags"
    assert out.set_index("product_id").loc["p1", "category"] != "Bags"
    assert summary["method"] == "nmf + user mapping"
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,kind\n1,2\n")
    with pytest.raises(ConfigError, match="needs columns product_id and category"):
        categorize(products, ProductOptions(min_categories=3, max_categories=3, mapping_file=str(bad)))


def test_simulated_kinds_are_recovered(tmp_path):
    files = simulate_to_files(tmp_path / "shop.parquet", 1500, seed=11)
    backend = ibis.duckdb.connect()
    transactions_source = backend.read_parquet(files.log)
    from custseg.schema import resolve_mapping, to_canonical

    raw = transactions_source.mutate(row=ibis.row_number() + 1)
    mapping = resolve_mapping(raw.columns, {}, source_name="shop")
    lines = clean(to_canonical(raw, mapping, timestamp_format=None, row_id="row")).lines
    products, summary = categorize(product_summary(lines).to_pandas())
    truth = pd.read_parquet(files.products).set_index("product_id").planted_kind
    ari = adjusted_rand_score(truth.loc[products.product_id], products.category)
    assert ari >= 0.7, (ari, summary["chosen"])
    assert UNKNOWN not in set(products.category)


def test_a_catalogue_of_100000_products_is_categorised():
    # A grocery-sized catalogue: a matrix over joblib's memory-map threshold, which NMF refused in
    # the worker processes (WRITEBACKIFCOPY base is read-only) before the fits got their own copy.
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(letters[rng.integers(0, 26, 6)]) for _ in range(20_000)]
    descriptions = pd.Series(
        [" ".join(words[j] for j in rng.integers(0, 20_000, rng.integers(2, 6))) for _ in range(100_000)]
    )
    fitted = ProductCategorizer(n_categories=(6, 7)).fit(descriptions)
    assert len(fitted.labels_) == 100_000 and (fitted.labels_ >= 0).all()
    assert fitted.n_categories_ in (6, 7)
