from __future__ import annotations

import ibis
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from conftest import make_transactions
from custseg.clean import REASONS, CleanRules, allocate_returns, check_partition, clean, reconcile
from custseg.schema import ColumnMapping, to_canonical


def run_clean(rows, rules=None):
    transactions = make_transactions(rows)
    result = clean(transactions, rules)
    lines = result.lines.order_by("row_id").to_pandas()
    rejected = result.rejected.order_by("row_id").to_pandas()
    return transactions, result, lines, rejected


def net(lines):
    return dict(zip(lines.row_id, lines.net_quantity, strict=True))


def reasons(rejected):
    return dict(zip(rejected.row_id, rejected.reason, strict=True))


def test_return_of_12_after_6_then_12_nets_the_newer_purchase():
    _, _, lines, rejected = run_clean(
        [
            {"quantity": 6, "invoiced_at": "2011-01-01"},
            {"quantity": 12, "invoiced_at": "2011-01-02"},
            {"quantity": -12, "invoiced_at": "2011-01-03"},
        ]
    )
    assert net(lines) == {1: 6.0, 2: 0.0}
    assert reasons(rejected) == {3: "matched_return"}
    assert rejected.matched_quantity.tolist() == [12.0]


def test_return_of_10_after_6_and_6_nets_newer_to_0_and_older_to_2():
    _, _, lines, rejected = run_clean(
        [
            {"quantity": 6, "invoiced_at": "2011-01-01"},
            {"quantity": 6, "invoiced_at": "2011-01-02"},
            {"quantity": -10, "invoiced_at": "2011-01-03"},
        ]
    )
    expected = pd.DataFrame(
        {
            "row_id": [1, 2],
            "quantity": [6.0, 6.0],
            "returned_quantity": [4.0, 6.0],
            "net_quantity": [2.0, 0.0],
            "net_revenue": [2.0, 0.0],
        }
    )
    assert_frame_equal(lines[expected.columns.tolist()], expected)
    assert reasons(rejected) == {3: "matched_return"}


def test_return_without_earlier_purchase_is_unmatched():
    _, _, lines, rejected = run_clean(
        [
            {"quantity": -3, "invoiced_at": "2011-01-01"},
            {"quantity": 5, "invoiced_at": "2011-01-02"},
        ]
    )
    assert net(lines) == {2: 5.0}
    assert reasons(rejected) == {1: "unmatched_return"}
    assert rejected.matched_quantity.tolist() == [0.0]


def test_return_never_touches_another_customers_or_products_purchases():
    _, _, lines, rejected = run_clean(
        [
            {"customer_id": "other", "quantity": 10, "invoiced_at": "2011-01-01"},
            {"customer_id": "c1", "product_id": "p2", "quantity": 10, "invoiced_at": "2011-01-01"},
            {"customer_id": "c1", "product_id": "p1", "quantity": -4, "invoiced_at": "2011-01-02"},
        ]
    )
    assert net(lines) == {1: 10.0, 2: 10.0}
    assert reasons(rejected) == {3: "unmatched_return"}


def test_return_larger_than_purchases_is_partly_matched_and_never_below_zero():
    _, _, lines, rejected = run_clean(
        [
            {"quantity": 4, "invoiced_at": "2011-01-01"},
            {"quantity": -10, "invoiced_at": "2011-01-02"},
        ]
    )
    assert net(lines) == {1: 0.0}
    assert reasons(rejected) == {2: "partly_matched_return"}
    assert rejected.matched_quantity.tolist() == [4.0]


def test_two_returns_consume_newest_remaining_purchases_in_turn():
    _, _, lines, _ = run_clean(
        [
            {"quantity": 6, "invoiced_at": "2011-01-01"},
            {"quantity": 12, "invoiced_at": "2011-01-02"},
            {"quantity": -12, "invoiced_at": "2011-01-03"},
            {"quantity": 5, "invoiced_at": "2011-01-04"},
            {"quantity": -8, "invoiced_at": "2011-01-05"},
        ]
    )
    assert net(lines) == {1: 3.0, 2: 0.0, 4: 0.0}


def test_allocate_returns_counts_same_timestamp_purchase_as_earlier():
    events = pd.DataFrame(
        {
            "row_id": [1, 2],
            "customer_id": "c",
            "product_key": "p",
            "invoiced_at": pd.to_datetime(["2011-01-01 10:00"] * 2),
            "quantity": [-2.0, 3.0],
        }
    )
    assert allocate_returns(events).allocated_quantity.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"customer_id": None}, "missing_customer_id"),
        ({"customer_id": "  "}, "missing_customer_id"),
        ({"product_id": "POST", "description": "POSTAGE"}, "non_product"),
        ({"product_id": "post", "description": "postage"}, "non_product"),
        ({"product_id": "M", "description": "Manual"}, "non_product"),
        ({"product_id": "gift_0001_20", "description": "Dotcomgiftshop Gift Voucher £20.00"}, "non_product"),
        ({"product_id": "X1", "description": "DOTCOM POSTAGE"}, "non_product"),
        ({"product_id": "X2", "description": "CARRIAGE"}, "non_product"),
        ({"product_id": "X3", "description": "Bank Charges"}, "non_product"),
        ({"product_id": "X4", "description": "Discount"}, "non_product"),
        ({"quantity": 0}, "zero_quantity"),
        ({"unit_price": 0}, "non_positive_price"),
        ({"unit_price": -11062.06}, "non_positive_price"),
    ],
)
def test_each_screening_rule_rejects_with_its_reason(row, reason):
    _, _, lines, rejected = run_clean([{"product_id": "KEEP", "quantity": 2}, row])
    assert lines.row_id.tolist() == [1]
    assert reasons(rejected) == {2: reason}


def test_products_that_only_mention_a_fee_word_in_passing_are_kept():
    _, _, lines, rejected = run_clean(
        [
            {"product_id": "22633", "description": "VINTAGE CARRIAGE CLOCK"},
            {"product_id": "22634", "description": "SAMPLE SIZE SOAP"},
        ]
    )
    assert lines.row_id.tolist() == [1, 2]
    assert rejected.empty


def test_exact_duplicate_keeps_the_first_copy_only():
    row = {"quantity": 3, "invoiced_at": "2011-01-01", "invoice_id": "A"}
    _, _, lines, rejected = run_clean([row, {**row, "quantity": 4}, row, row])
    assert lines.row_id.tolist() == [1, 2]
    assert reasons(rejected) == {3: "duplicate_row", 4: "duplicate_row"}


def test_non_product_rules_are_configurable():
    rules = CleanRules(non_product_codes=("SHIP",), non_product_description_pattern="handling")
    _, _, lines, rejected = run_clean(
        [{"product_id": "POST"}, {"product_id": "ship"}, {"product_id": "Z", "description": "Handling"}],
        rules,
    )
    assert lines.row_id.tolist() == [1]
    assert reasons(rejected) == {2: "non_product", 3: "non_product"}


def test_unparseable_values_are_rejected_with_the_source_column_and_value():
    raw = ibis.memtable(
        {
            "Client": ["a", "b", "c", "d"],
            "When": ["2011-01-01 10:00", "yesterday", "2011-01-02 10:00", ""],
            "Qty": ["1", "2", "three", "4"],
            "Price": ["1.5", "2", "2", "2"],
            "row": [1, 2, 3, 4],
        }
    )
    mapping = ColumnMapping(
        "custom", {"customer_id": "Client", "invoiced_at": "When", "quantity": "Qty", "unit_price": "Price"}
    )
    transactions = to_canonical(raw, mapping, timestamp_format="%Y-%m-%d %H:%M", row_id="row")
    result = clean(transactions)
    rejected = result.rejected.order_by("row_id").to_pandas()
    assert rejected[["row_id", "reason", "detail"]].values.tolist() == [
        [2, "invalid_timestamp", "When=yesterday"],
        [3, "invalid_number", "Qty=three"],
        [4, "invalid_timestamp", "When="],
    ]


@pytest.mark.parametrize(
    ("rules", "kept"),
    [
        (None, {"paid": 2.0, "refunded": 0.0}),
        (CleanRules(unpaid_statuses=("voided",)), {"paid": 2.0, "refunded": 0.0, "pending": 2.0}),
    ],
)
def test_a_status_column_without_a_layout_is_read_with_the_layouts_words(rules, kept):
    # A mapped export of no known layout: its refunded order nets to zero, and its unpaid ones are
    # rejected by [clean] unpaid_statuses (the layouts' words unless the shop lists its own).
    statuses = [" Voided", "pending", "paid", "REFUNDED"]
    raw = ibis.memtable(
        {
            "Client": ["a"] * 4,
            "When": ["2011-01-01 10:00"] * 4,
            "Order": ["o1", "o2", "o3", "o4"],
            "Status": statuses,
            "Amount": ["2"] * 4,
            "row": [1, 2, 3, 4],
        }
    )
    columns = {"customer_id": "Client", "invoiced_at": "When", "invoice_id": "Order", "order_status": "Status"}
    mapping = ColumnMapping("custom", {**columns, "amount": "Amount"})
    result = clean(to_canonical(raw, mapping, timestamp_format="%Y-%m-%d %H:%M", row_id="row"), rules)
    lines = result.lines.to_pandas()
    status = dict(zip(range(1, 5), [s.strip().lower() for s in statuses], strict=True))
    assert dict(zip(lines.row_id.map(status), lines.net_revenue, strict=True)) == kept
    unpaid = result.rejected.to_pandas()
    assert set(unpaid.detail) == {f"order_status={s}" for s in status.values() if s not in kept}


def test_every_row_is_kept_or_rejected_once_and_revenue_reconciles():
    rows = [
        {"quantity": 6, "unit_price": 2.0, "invoiced_at": "2011-01-01"},
        {"quantity": 6, "unit_price": 2.5, "invoiced_at": "2011-01-02"},
        {"quantity": -10, "unit_price": 2.5, "invoiced_at": "2011-01-03"},
        {"customer_id": None, "quantity": 3, "unit_price": 1.0},
        {"product_id": "POST", "quantity": 1, "unit_price": 15.0},
        {"customer_id": "c2", "quantity": -1, "unit_price": 4.0},
    ]
    transactions, result, _, _ = run_clean(rows)
    counts = check_partition(transactions, result.lines, result.rejected)
    assert counts == {"input_rows": 6, "kept_rows": 2, "rejected_rows": 4}
    money = reconcile(transactions, result.lines, result.rejected)
    # gross 12 + 15 = 27; returns at purchase price: 6 x 2.5 + 4 x 2.0 = 23
    assert money["gross_sales"] == 27.0
    assert money["returns_matched"] == 23.0
    assert money["net_revenue"] == 4.0
    assert money["rejected_amount"] == {
        "matched_return": -25.0,
        "missing_customer_id": 3.0,
        "non_product": 15.0,
        "unmatched_return": -4.0,
    }
    assert money["input_amount"] == 16.0
    assert money["balanced"] is True


def test_check_partition_catches_a_lost_row():
    transactions, result, _, _ = run_clean([{"quantity": 1}, {"quantity": 2, "product_id": "p2"}])
    with pytest.raises(RuntimeError, match="row audit failed"):
        check_partition(transactions, result.lines.filter(result.lines.row_id == 1), result.rejected)


def test_reason_codes_are_documented_in_rule_order():
    assert list(REASONS)[:6] == [
        "invalid_timestamp",
        "invalid_number",
        "unpaid_order",
        "disputed_order",
        "unknown_status",
        "missing_customer_id",
    ]
    assert list(REASONS)[-1] == "unmatched_return"
