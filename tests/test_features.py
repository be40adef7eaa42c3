from __future__ import annotations

import datetime

import ibis
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from conftest import PROJECT, make_transactions
from custseg.clean import clean
from custseg.cluster import ClusterOptions
from custseg.early import CATEGORICAL_INPUTS, FRACTION_INPUTS, LOGGED_INPUTS, model_inputs
from custseg.features import (
    CATALOGUE,
    CUSTOMER_FEATURES,
    FEATURE_COLUMNS,
    INTEREST_FEATURES,
    MAGNITUDES,
    Transform,
    Unit,
    Use,
    catalogued,
    customer_features,
    customer_table,
    features_used_by,
    fully_returned_customers,
    reference_date,
    transform_of,
)
from custseg.spaces import FeatureSpace
from custseg.value import CUMULATIVE_FEATURES, VALUE_FEATURES, ValueOptions, per_quarter

AS_OF = datetime.datetime(2011, 2, 1)

ROWS = [
    # A: two orders, in two countries; a line after the reference date is ignored
    {
        "customer_id": "A",
        "invoice_id": "i1",
        "invoiced_at": "2011-01-01 10:00",
        "quantity": 2,
        "unit_price": 5.0,
        "country": "France",
    },
    {
        "customer_id": "A",
        "invoice_id": "i2",
        "invoiced_at": "2011-01-10 12:00",
        "quantity": 1,
        "unit_price": 20.0,
        "product_id": "p2",
    },
    {"customer_id": "A", "invoice_id": "i9", "invoiced_at": "2011-02-05 09:00", "quantity": 1, "unit_price": 99.0},
    # B: one order fully returned, one kept
    {"customer_id": "B", "invoice_id": "i3", "invoiced_at": "2011-01-05 10:00", "quantity": 3, "unit_price": 4.0},
    {"customer_id": "B", "invoice_id": "C4", "invoiced_at": "2011-01-06 10:00", "quantity": -3, "unit_price": 4.0},
    {
        "customer_id": "B",
        "invoice_id": "i5",
        "invoiced_at": "2011-01-20 10:00",
        "quantity": 1,
        "unit_price": 10.0,
        "product_id": "p2",
    },
    # C: two invoices at the same timestamp are two orders
    {"customer_id": "C", "invoice_id": "i6", "invoiced_at": "2011-01-15 09:00", "quantity": 1, "unit_price": 5.0},
    {
        "customer_id": "C",
        "invoice_id": "i7",
        "invoiced_at": "2011-01-15 09:00",
        "quantity": 1,
        "unit_price": 5.0,
        "product_id": "p2",
    },
    # D: an order whose purchase of p1 is returned, so only p2 counts
    {"customer_id": "D", "invoice_id": "i8", "invoiced_at": "2011-01-03 10:00", "quantity": 2, "unit_price": 3.0},
    {
        "customer_id": "D",
        "invoice_id": "i8",
        "invoiced_at": "2011-01-03 10:00",
        "quantity": 1,
        "unit_price": 7.0,
        "product_id": "p2",
    },
    {"customer_id": "D", "invoice_id": "C10", "invoiced_at": "2011-01-04 10:00", "quantity": -2, "unit_price": 3.0},
    # E: every order returned
    {"customer_id": "E", "invoice_id": "i11", "invoiced_at": "2011-01-07 10:00", "quantity": 5, "unit_price": 2.0},
    {"customer_id": "E", "invoice_id": "C12", "invoiced_at": "2011-01-08 10:00", "quantity": -5, "unit_price": 2.0},
    # F: one order more than 90 days before the reference date
    {"customer_id": "F", "invoice_id": "i13", "invoiced_at": "2010-10-01 10:00", "quantity": 4, "unit_price": 2.5},
]


def features() -> pd.DataFrame:
    lines = clean(make_transactions(ROWS)).lines
    return customer_features(lines, AS_OF).order_by("customer_id").to_pandas()


def test_recency_frequency_monetary_can_be_checked_by_eye():
    expected = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "F"],
            "recency_days": [21, 11, 16, 28, 122],
            "frequency": [2, 1, 2, 1, 1],
            "monetary": [30.0, 10.0, 10.0, 7.0, 10.0],
            "avg_order_value": [15.0, 10.0, 5.0, 7.0, 10.0],
            "tenure_days": [30, 11, 16, 28, 122],
            "distinct_products": [2, 1, 2, 1, 1],
            "lines": [2, 1, 2, 1, 1],
            "returned_share": [0.0, 0.75, 0.0, 2 / 3, 0.0],
            "main_country": ["United Kingdom"] * 5,
            "orders_90d": [2, 1, 2, 1, 0],
            "revenue_90d": [30.0, 10.0, 10.0, 7.0, 0.0],
            # Recency in the customer's own average gap, tenure / frequency: A ordered twice in 30 days
            # and last 21 days ago, 1.4 of its 15-day gaps; a one-order customer is always 1 gap away.
            "recency_own_gaps": [21 * 2 / 30, 1.0, 16 * 2 / 16, 1.0, 1.0],
        }
    )
    got = features()[expected.columns.tolist()]
    assert_frame_equal(got, expected, check_dtype=False)


def test_first_last_and_mean_days_between_orders():
    got = features().set_index("customer_id")
    assert str(got.loc["A", "first_order_at"]) == "2011-01-01 10:00:00"
    assert str(got.loc["A", "last_order_at"]) == "2011-01-10 12:00:00"
    assert abs(got.loc["A", "mean_days_between_orders"] - (9 + 2 / 24)) < 1e-9
    assert got.loc["C", "mean_days_between_orders"] == 0.0
    assert pd.isna(got.loc["B", "mean_days_between_orders"])


def test_main_country_is_where_most_revenue_came_from():
    rows = [
        {"customer_id": "A", "invoice_id": "1", "quantity": 1, "unit_price": 30.0, "country": "France"},
        {"customer_id": "A", "invoice_id": "2", "quantity": 1, "unit_price": 20.0, "product_id": "p2"},
        {"customer_id": "B", "invoice_id": "3", "quantity": 1, "unit_price": 5.0, "country": "Spain"},
        {
            "customer_id": "B",
            "invoice_id": "4",
            "quantity": 1,
            "unit_price": 5.0,
            "country": "EIRE",
            "product_id": "p2",
        },
    ]
    got = customer_features(clean(make_transactions(rows)).lines, AS_OF).order_by("customer_id").to_pandas()
    assert got.main_country.tolist() == ["France", "EIRE"]


def test_customers_who_returned_everything_are_listed_not_scored():
    lines = clean(make_transactions(ROWS)).lines
    assert fully_returned_customers(lines, AS_OF).to_pandas().customer_id.tolist() == ["E"]
    assert "E" not in set(features().customer_id)


def test_reference_date_is_midnight_after_the_last_transaction():
    assert reference_date(datetime.datetime(2011, 12, 9, 12, 50)) == datetime.datetime(2011, 12, 10)


# -- the catalogue ---------------------------------------------------------------------------------


def test_the_catalogue_names_every_column_of_the_customer_table_and_nothing_else():
    lines = clean(make_transactions(ROWS)).lines
    products = ibis.memtable({"product_id": ["p1", "p2"], "category": ["c01", "c02"]})
    table = customer_table(lines, products, ["c01", "c02"], AS_OF).to_pandas()
    assert list(features().columns) == list(FEATURE_COLUMNS) == [f.name for f in CUSTOMER_FEATURES]
    # The interests follow, the shares standing for their family.
    interests = [f.name for f in INTEREST_FEATURES]
    assert list(table.columns) == [*FEATURE_COLUMNS, "share_c01", "share_c02", *interests[1:]]
    assert {catalogued(column).name for column in table.columns} == {f.name for f in CATALOGUE}


def test_a_column_outside_the_catalogue_is_refused_by_the_catalogue_and_read_as_is():
    assert catalogued("share_home_decor").name == "share_*"
    with pytest.raises(KeyError, match="r_score"):
        catalogued("r_score")
    assert transform_of("r_score") is Transform.AS_IS


def test_feature_space_transforms_every_catalogued_number_as_declared():
    # The shop's typical gap is the median mean days between a repeat customer's orders: 10.
    numbers = [f.name for f in CATALOGUE if f.transform is not None and not f.is_family]
    rng = np.random.default_rng(0)
    table = pd.DataFrame({column: rng.uniform(0, 50, 6).round(1) for column in numbers})
    table["mean_days_between_orders"] = [10.0, 10.0, 10.0, 5.0, 20.0, np.nan]
    table["recency_days"] = [0.0, 10.0, 30.0, 90.0, 5.0, 1.0]
    table["share_c01"] = [0.0, 0.2, 0.5, 1.0, 0.3, 0.9]
    space = FeatureSpace(features=numbers, interests=True).fit(table)
    assert space.typical_gap_days_ == 10.0
    raw = pd.DataFrame(space.scaler_.inverse_transform(space.transform(table)), columns=space.columns_)
    declared = {
        Transform.LOG1P: np.log1p,
        Transform.TYPICAL_GAPS: lambda days: np.log1p(days / 10.0),
        Transform.AS_IS: lambda values: values,
    }
    expected = pd.DataFrame({column: declared[transform_of(column)](table[column].fillna(0.0)) for column in raw})
    assert_frame_equal(raw, expected)
    # Recency in typical gaps: 30 days are three gaps.
    assert raw.recency_days[2] == pytest.approx(np.log1p(3.0))
    assert [transform_of(c) for c in ("recency_days", "monetary", "returned_share", "share_c01")] == [
        Transform.TYPICAL_GAPS,
        Transform.LOG1P,
        Transform.AS_IS,
        Transform.AS_IS,
    ]


def test_segments_and_the_value_model_read_what_the_catalogue_says_they_use():
    assert ClusterOptions().features == list(features_used_by(Use.SEGMENTS))
    assert ClusterOptions().features == ["recency_days", "frequency", "monetary", "tenure_days"]
    assert ValueOptions().features == list(VALUE_FEATURES) == list(features_used_by(Use.VALUE))
    assert CUMULATIVE_FEATURES == features_used_by(Use.VALUE_PER_QUARTER)
    # Only the catalogued totals are read per quarter of tenure: 360 days are four quarters.
    customer = pd.DataFrame({c: [8.0] for c in VALUE_FEATURES}).assign(tenure_days=360.0)
    rates = per_quarter(customer).iloc[0]
    assert {c for c in VALUE_FEATURES if rates[c] == 2.0} == set(CUMULATIVE_FEATURES)


def test_the_early_models_read_every_feature_the_catalogue_gives_them():
    early = features_used_by(Use.EARLY)
    assert set(LOGGED_INPUTS) == {c for c in early if catalogued(c).unit in MAGNITUDES}
    assert FRACTION_INPUTS == tuple(c for c in early if catalogued(c).unit is Unit.FRACTION) == ("breadth",)
    assert set(early) - set(LOGGED_INPUTS) - set(FRACTION_INPUTS) - set(CATEGORICAL_INPUTS) == {"first_order_at"}
    # The order their fits depend on.
    assert LOGGED_INPUTS == (
        "monetary",
        "avg_order_value",
        "lines",
        "distinct_products",
        "tenure_days",
        "mean_days_between_orders",
    )
    customer = pd.DataFrame(
        {
            **{c: [np.e - 1] for c in LOGGED_INPUTS},
            "breadth": [0.5],
            "share_c01": [1.0],
            "first_order_at": [pd.Timestamp("2011-03-04 09:30")],
            "main_country": ["France"],
            "dominant_category": ["c01"],
        }
    )
    inputs = model_inputs(customer, ["c01"]).iloc[0]
    assert inputs[list(LOGGED_INPUTS)].tolist() == pytest.approx([1.0] * len(LOGGED_INPUTS))
    assert (inputs.breadth, inputs.first_hour, inputs.share_c01, inputs.main_country) == (0.5, 9.0, 1.0, "France")


def test_the_definitions_page_defines_every_catalogued_feature():
    page = (PROJECT / "docs" / "definitions.md").read_text()
    assert [f.name for f in CATALOGUE if f"`{f.name.rstrip('*')}" not in page] == []
