from __future__ import annotations

import datetime

import pandas as pd
from pandas.testing import assert_frame_equal

from conftest import make_transactions
from custseg.clean import clean
from custseg.features import customer_features, fully_returned_customers, reference_date

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
