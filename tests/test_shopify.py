"""Shopify's admin orders export, read with no mapping: a small hand-made export whose every rule is known."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from typer.testing import CliRunner

import custseg
from custseg import Stages
from custseg.cli import app
from custseg.errors import InvalidValueError
from custseg.record import read_record
from custseg.schema import detect_preset
from custseg.simulate import SHOPIFY_HEADER, simulate_to_files

HEADER = SHOPIFY_HEADER
"""The columns of Shopify's admin "Export orders" CSV, in its order (checked against its documentation)."""


def order(
    name, email, status, created, total, lines, *, refunded="0.00", currency="EUR", country="DE", shipping=0, notes=""
):
    """Rows of one order as Shopify writes them: the order's own fields on its first row only."""
    rows = []
    for i, (quantity, title, price, sku) in enumerate(lines):
        row = {"Name": name, "Lineitem quantity": quantity, "Lineitem name": title, "Lineitem price": price}
        row["Lineitem sku"] = sku
        if i == 0:
            row.update(
                {
                    "Email": email,
                    "Financial Status": status,
                    "Paid at": created if status in ("paid", "refunded", "partially_refunded") else "",
                    "Currency": currency,
                    "Subtotal": f"{total - shipping:.2f}",
                    "Shipping": f"{shipping:.2f}",
                    "Total": f"{total:.2f}",
                    "Created at": created,
                    "Billing Country": country,
                    "Refunded Amount": refunded,
                    "Notes": notes,
                    "Id": str(abs(hash(name)) % 10**9),
                }
            )
        rows.append(row)
    return rows


ORDERS = [
    # Two lines; the second row has only the order's name and its line-item fields. The notes hold
    # a line break inside quotes, as customers write them.
    *order(
        "#1001",
        "  Ann@Example.com ",
        "paid",
        "2025-10-07 09:50:26 +0200",
        45.0,
        [(2, "Lantern", "10.00", "LAN-1"), (1, "Mug", "25.00", "MUG-1")],
        notes="Please wrap it,\nit is a gift",
    ),
    *order("#1002", "ann@example.com", "paid", "2025-11-02 18:05:00 +0100", 12.0, [(1, "Mug", "12.00", "MUG-1")]),
    *order("#1003", "bob@example.com", "voided", "2025-10-08 10:00:00 +0200", 30.0, [(3, "Lantern", "10.00", "LAN-1")]),
    *order(
        "#1004",
        "bob@example.com",
        "refunded",
        "2025-10-09 11:00:00 +0200",
        35.0,
        [(1, "Vase", "30.00", "VAS-1")],
        refunded="35.00",
        shipping=5,
    ),
    # Half of the total refunded: each line loses half of its amount.
    *order(
        "#1005",
        "cara@example.com",
        "partially_refunded",
        "2025-10-10 08:00:00 -0500",
        50.0,
        [(2, "Candle", "20.00", "CAN-1")],
        refunded="25.00",
        shipping=10,
    ),
    *order("#1006", "", "paid", "2025-10-11 09:00:00 +0200", 10.0, [(1, "Mug", "10.00", "MUG-1")]),
    *order("#1007", "dan@example.com", "pending", "2025-10-12 09:00:00 +0200", 10.0, [(1, "Mug", "10.00", "MUG-1")]),
    # A line item without a SKU is known by its name.
    *order("#1008", "dan@example.com", "paid", "2025-10-13 09:00:00 +0200", 8.0, [(1, "Gift wrap", "8.00", "")]),
]


def write_export(path, orders=ORDERS):
    with open(path, "w", newline="", encoding="utf-8") as sink:
        writer = csv.DictWriter(sink, fieldnames=HEADER, restval="")
        writer.writeheader()
        writer.writerows(orders)
    return path


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    path = write_export(tmp_path_factory.mktemp("shopify") / "orders_export_1.csv")
    stages = Stages()
    read = stages.read(path)
    return read, stages.clean(read)


def test_the_header_of_shopifys_export_is_recognised():
    assert detect_preset(HEADER).name == "shopify"


def test_an_export_is_read_with_no_mapping_one_customer_per_email(cleaned):
    read, result = cleaned
    assert read.input.preset == "shopify"
    assert read.input.currency == "EUR"
    lines = result.lines.to_pandas()
    # The email is the customer, trimmed and in lower case; both rows of #1001 belong to it.
    assert sorted(lines.customer_id.unique()) == [
        "ann@example.com",
        "bob@example.com",
        "cara@example.com",
        "dan@example.com",
    ]
    assert lines[lines.customer_id == "ann@example.com"].invoice_id.nunique() == 2
    assert result.span.customers == 4


def test_order_fields_written_once_apply_to_every_line(cleaned):
    _, result = cleaned
    lines = result.lines.to_pandas().set_index("description")
    first = lines[lines.invoice_id == "#1001"]
    assert set(first.customer_id) == {"ann@example.com"}
    assert set(first.country) == {"DE"}
    # The shop's wall clock is kept: the offset is dropped, not applied.
    assert {str(t) for t in first.invoiced_at} == {"2025-10-07 09:50:26"}
    assert str(lines.loc["Candle", "invoiced_at"]) == "2025-10-10 08:00:00"
    assert lines.loc["Gift wrap", "product_id"] == "Gift wrap"


def test_unpaid_orders_are_rejected_with_their_status(cleaned):
    _, result = cleaned
    rejected = result.rejected.to_pandas().set_index("invoice_id")
    assert rejected.loc["#1003", "reason"] == "unpaid_order"
    assert rejected.loc["#1003", "detail"] == "order_status=voided"
    assert rejected.loc["#1007", "detail"] == "order_status=pending"
    assert rejected.loc["#1006", "reason"] == "missing_customer_id"
    assert result.rows.rejected_by_reason["unpaid_order"] == 2


def test_refunds_are_netted_and_reconciled(cleaned):
    _, result = cleaned
    lines = result.lines.to_pandas().set_index("invoice_id")
    # A fully refunded order nets to zero; half of #1005's total refunded takes half of its line.
    assert lines.loc["#1004", "net_revenue"] == 0.0
    assert lines.loc["#1004", "refunded_quantity"] == 1.0
    assert lines.loc["#1005", "net_revenue"] == pytest.approx(20.0)
    money = result.reconciliation
    assert money.refunds == pytest.approx(30.0 + 20.0)
    assert money.balanced
    assert money.net_revenue == pytest.approx(money.gross_sales - money.returns_matched - money.refunds)
    assert money.rejected_amount["unpaid_order"] == pytest.approx(40.0)


def test_several_currencies_stop_with_a_message_naming_them(tmp_path):
    mixed = [*ORDERS, *order("#2001", "eve@example.com", "paid", "2025-10-14 09:00:00 +0000", 9.0,
                             [(1, "Mug", "9.00", "MUG-1")], currency="USD")]
    path = write_export(tmp_path / "orders_export.csv", mixed)
    with pytest.raises(InvalidValueError, match=r"orders_export.csv: column 'Currency'.* 2 currencies: EUR .*USD"):
        Stages().read(path)


def test_a_line_with_a_blank_order_name_belongs_to_the_order_above(tmp_path):
    rows = order("#3001", "fay@example.com", "paid", "2025-10-15 09:00:00 +0200", 30.0,
                 [(1, "Lantern", "10.00", "LAN-1"), (1, "Vase", "20.00", "VAS-1")])
    rows[1]["Name"] = ""
    rows += order("#3002", "gus@example.com", "paid", "2025-10-16 09:00:00 +0200", 10.0, [(1, "Mug", "10.00", "MUG-1")])
    stages = Stages()
    lines = stages.clean(stages.read(write_export(tmp_path / "orders_export.csv", rows))).lines.to_pandas()
    assert lines.set_index("description").invoice_id.to_dict() == {"Lantern": "#3001", "Vase": "#3001", "Mug": "#3002"}
    assert set(lines[lines.invoice_id == "#3001"].customer_id) == {"fay@example.com"}


@pytest.fixture(scope="module")
def whole_shop(tmp_path_factory):
    """A simulated shop written as Shopify's export and run from the command line with no --map."""
    folder = tmp_path_factory.mktemp("shopify_shop")
    files = simulate_to_files(folder / "orders_export.csv", 900, seed=7, layout="shopify")
    result = CliRunner().invoke(app, ["run", str(files.log), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    (folder / "summary.json").write_text(result.stdout, encoding="utf-8")
    return files, folder / "out", read_record(folder / "out")


def test_a_whole_shop_counts_every_customer_with_a_paid_order_once(whole_shop):
    files, out, record = whole_shop
    export = pd.read_csv(files.log, dtype=str, keep_default_na=False)
    first_rows = export[export["Financial Status"] != ""]
    sold = first_rows[first_rows["Financial Status"].isin(["paid", "partially_refunded", "refunded"])]
    emails = sold.Email.str.strip().str.lower()
    paying = set(emails[emails != ""])
    customers = pd.read_parquet(out / "customers.parquet")
    assert customers.customer_id.is_unique
    # A customer whose every order was refunded in full is listed apart, as in any shop.
    refunded_only = set(record.customers.fully_returned.customer_ids)
    assert refunded_only and not refunded_only & set(customers.customer_id)
    assert set(customers.customer_id) | refunded_only == paying
    assert record.input.preset == "shopify"
    # Every voided order's rows are rejected as unpaid, with the order's status.
    rejected = pd.read_parquet(out / "rejected.parquet")
    voided = set(first_rows[first_rows["Financial Status"] == "voided"].Name)
    unpaid = rejected[rejected.reason == "unpaid_order"]
    assert voided and voided <= set(unpaid.invoice_id)
    assert set(unpaid[unpaid.invoice_id.isin(voided)].detail) == {"order_status=voided"}


def test_a_whole_shops_refunds_net_and_reconcile(whole_shop):
    files, out, record = whole_shop
    export = pd.read_csv(files.log, dtype=str, keep_default_na=False)
    refunded = set(export[export["Financial Status"] == "refunded"].Name)
    lines = custseg.load(out).lines
    money = record.reconciliation
    assert money.balanced
    assert money.refunds > 0
    assert money.net_revenue == pytest.approx(money.gross_sales - money.returns_matched - money.refunds, abs=0.01)
    refunded_lines = lines[lines.invoice_id.isin(refunded)]
    assert len(refunded_lines) and refunded_lines.net_revenue.abs().max() == 0.0


def test_no_email_address_reaches_the_report(whole_shop):
    files, out, _ = whole_shop
    export = pd.read_csv(files.log, dtype=str, keep_default_na=False)
    emails = {e.strip().lower() for e in export.Email if e.strip()}
    html = (out / "report.html").read_text(encoding="utf-8").lower()
    leaked = [e for e in emails if e in html]
    assert not leaked, leaked[:3]
    # The customer tables keep them: the marketer acts on a segment through them.
    assert pd.read_parquet(out / "customers.parquet").customer_id.str.contains("@").all()


def test_spark_reads_the_export_as_duckdb_does(tmp_path, cleaned):
    _, expected = cleaned
    stages = Stages(engine="spark", spark_master="local[2]")
    result = stages.clean(stages.read(write_export(tmp_path / "orders_export_1.csv")))
    got = result.lines.to_pandas().sort_values("row_id", ignore_index=True)
    want = expected.lines.to_pandas().sort_values("row_id", ignore_index=True)
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False)
    assert result.reconciliation == expected.reconciliation
    assert result.rows == expected.rows


def test_an_unreadable_refunded_amount_rejects_its_order_with_the_value(tmp_path):
    rows = order("#4001", "hal@example.com", "partially_refunded", "2025-10-17 09:00:00 +0200", 30.0,
                 [(1, "Lantern", "10.00", "LAN-1"), (1, "Vase", "20.00", "VAS-1")], refunded="ten pounds")
    rows += order("#4002", "hal@example.com", "paid", "2025-10-18 09:00:00 +0200", 10.0, [(1, "Mug", "10.00", "MUG-1")])
    path = write_export(tmp_path / "orders_export.csv", rows)
    # Most of this tiny export is unreadable: by default the input is refused, naming the value.
    with pytest.raises(InvalidValueError, match=r"row 1, column 'Refunded Amount': 'ten pounds' is not valid"):
        Stages().read(path)
    config = tmp_path / "custseg.toml"
    config.write_text("[input]\nmax_invalid_share = 0.9\n")
    stages = Stages(config=config)
    result = stages.clean(stages.read(path))
    rejected = result.rejected.to_pandas()
    # Both lines of the order, not only the row the amount was written on: the amount is the order's.
    assert sorted(rejected.invoice_id) == ["#4001", "#4001"]
    assert set(rejected.reason) == {"invalid_number"}
    assert set(rejected.detail) == {"Refunded Amount=ten pounds"}
    assert list(result.lines.to_pandas().invoice_id) == ["#4002"]


DISPUTED_AND_UNKNOWN = [
    row
    for name, email, status, day, n in (
        ("#2001", "eve@example.com", "paid", 7, 1),
        ("#2002", "eve@example.com", "partially_paid", 8, 1),
        ("#2003", "eve@example.com", "chargeback", 9, 2),
        ("#2004", "fay@example.com", "Disputed", 10, 1),
        ("#2005", "fay@example.com", "on_hold", 11, 1),
        ("#2006", "fay@example.com", "cancelled", 12, 1),
        ("#2007", "gus@example.com", "paid", 13, 1),
    )
    for row in order(name, email, status, f"2025-10-{day:02d} 09:00:00 +0200", 10.0 * n, [(n, "Mug", "10.00", "MUG-1")])
]


def test_every_status_of_an_export_is_a_sale_a_refund_unpaid_disputed_or_rejected_as_unknown(tmp_path):
    stages = Stages()
    read = stages.read(write_export(tmp_path / "orders_export_1.csv", DISPUTED_AND_UNKNOWN))
    assert read.input.layout == "shopify"
    result = stages.clean(read)
    rejected = result.rejected.to_pandas().set_index("invoice_id")
    assert rejected.reason.to_dict() == {
        "#2003": "disputed_order",
        "#2004": "disputed_order",
        "#2005": "unknown_status",
        "#2006": "unknown_status",
    }
    assert rejected.detail.to_dict() == {
        "#2003": "order_status=chargeback",
        "#2004": "order_status=disputed",
        "#2005": "order_status=on_hold",
        "#2006": "order_status=cancelled",
    }
    assert sorted(result.lines.to_pandas().invoice_id) == ["#2001", "#2002", "#2007"]
    assert result.reconciliation.balanced and result.reconciliation.rejected_amount["unknown_status"] == 20.0


def test_a_status_column_of_a_layout_without_declared_statuses_is_not_checked(tmp_path):
    # A shop's own export, mapped with --map: its words ("completed") are not Shopify's.
    path = tmp_path / "orders.csv"
    path.write_text(
        "order,client,when,sku,qty,price,state\n"
        "1,c1,2025-10-07 09:00,A,1,5.0,completed\n"
        "2,c1,2025-10-08 09:00,A,1,5.0,chargeback\n",
        encoding="utf-8",
    )
    column_map = {
        "invoice_id": "order",
        "customer_id": "client",
        "invoiced_at": "when",
        "product_id": "sku",
        "quantity": "qty",
        "unit_price": "price",
        "order_status": "state",
    }
    stages = Stages(column_map=column_map)
    result = stages.clean(stages.read(path))
    assert result.rows.kept_rows == 1
    assert {k: v for k, v in result.rows.rejected_by_reason.items() if v} == {"disputed_order": 1}


def test_a_shops_lists_key_on_email_and_carry_the_exports_currency(whole_shop):
    _, out, record = whole_shop
    assert (record.input.currency, record.input.currency_source) == ("GBP", "export")
    lists = sorted((out / "lists").glob("*.csv"))
    assert lists
    for path in lists:
        listed = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert listed.columns[0] == "Email Address"
        assert listed["Email Address"].str.contains("@").all()
        assert "Expected Revenue 90 Days (GBP)" in listed.columns and set(listed.Currency) == {"GBP"}
    assert "£" in (out / "report.html").read_text(encoding="utf-8")
    # The command's summary, piped (JSON), names it too.
    assert '"currency": "GBP"' in (out.parent / "summary.json").read_text(encoding="utf-8")


def test_a_currency_given_that_contradicts_the_export_stops_with_a_message(tmp_path):
    path = write_export(tmp_path / "orders_export.csv")
    shown = CliRunner().invoke(app, ["run", str(path), "--currency", "USD", "--out", str(tmp_path / "out")])
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert "not the currency given (USD)" in shown.output
