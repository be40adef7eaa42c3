"""The exploration's tables, aggregated in the engine, on hand-made lines with obvious answers."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from conftest import make_transactions
from custseg.clean import clean
from custseg.eda import exact_quantiles, explore, month_label

ROWS = [
    # customer, invoice, time, quantity, price
    ("a", "i1", "2011-01-03 09:15", 2, 5.0),  # a Monday
    ("a", "i1", "2011-01-03 09:15", 1, 10.0),
    ("a", "i2", "2011-02-07 14:00", 1, 100.0),
    ("b", "i3", "2011-01-04 09:30", 3, 1.0),  # a Tuesday
    ("c", "i4", "2011-02-08 09:00", 1, 40.0),
]


@pytest.fixture
def tables():
    rows = [
        {"customer_id": c, "invoice_id": i, "invoiced_at": t, "quantity": q, "unit_price": p, "product_id": f"p{n}"}
        for n, (c, i, t, q, p) in enumerate(ROWS)
    ]
    return explore(clean(make_transactions(rows)).lines)


def test_months_weekdays_and_hours_are_counted_per_order(tables):
    assert [month_label(m) for m in tables.monthly.month] == ["2011-01", "2011-02"]
    assert tables.monthly.orders.tolist() == [2, 2]
    assert tables.monthly.revenue.tolist() == [23.0, 140.0]
    counts = {(r.weekday, r.hour): r.orders for r in tables.weekday_hour.itertuples()}
    assert counts == {(0, 9): 1, (0, 14): 1, (1, 9): 2}


def test_new_and_returning_customers_and_cohorts(tables):
    assert tables.new_returning.to_dict(orient="list") == {
        "month": tables.monthly.month.tolist(),
        "new": [2, 1],
        "returning": [0, 1],
    }
    cohorts = {(r.first_month, r.offset): r.customers for r in tables.cohorts.itertuples()}
    january, february = tables.monthly.month
    assert cohorts == {(january, 0): 2, (january, 1): 1, (february, 0): 1}


def test_baskets_and_totals(tables):
    assert tables.basket_sizes.to_dict(orient="list") == {"lines": [1, 2], "orders": [3, 1]}
    assert tables.basket_values.orders.sum() == 4
    assert tables.summary["customers"] == 3 and tables.summary["total_revenue"] == 163.0
    assert tables.summary["median_basket_value"] == pytest.approx(np.median([20.0, 100.0, 3.0, 40.0]))
    assert tables.summary["median_basket_lines"] == 1.0


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [9.0, 1.0, 4.0, 7.0, 2.0, 8.0]])
def test_exact_quantiles_match_numpy(values):
    table = ibis.memtable(pd.DataFrame({"x": values}))
    got = exact_quantiles(table, "x", (0.0, 0.25, 0.5, 0.9, 1.0))
    assert got == pytest.approx({q: float(np.quantile(values, q)) for q in got})
