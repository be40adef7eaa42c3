from __future__ import annotations

import ibis
import pytest

from custseg.errors import MissingColumnsError
from custseg.presets import PRESETS
from custseg.schema import CANONICAL, ColumnMapping, detect_preset, resolve_mapping, to_canonical

UCI = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
UCI_II = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]


@pytest.mark.parametrize(
    ("columns", "preset"),
    [
        (UCI, "uci_online_retail"),
        (UCI_II, "uci_online_retail_ii"),
        (["customer_id", "invoiced_at"], "canonical"),
        (["Client", "When"], None),
    ],
)
def test_presets_are_recognised_from_the_header(columns, preset):
    found = detect_preset(columns)
    assert (found.name if found else None) == preset


@pytest.mark.parametrize("preset", PRESETS, ids=lambda preset: preset.name)
def test_every_preset_reads_its_own_header_with_no_mapping(preset):
    header = list(preset.columns.values())
    assert detect_preset(header) is preset
    assert resolve_mapping(header, {}, source_name="x.csv") == ColumnMapping(preset.name, preset.columns, preset)


def test_a_header_with_custsegs_names_is_read_by_the_canonical_preset():
    mapping = resolve_mapping(["invoiced_at", "customer_id", "amount"], {}, source_name="x.csv")
    assert mapping == ColumnMapping(
        "canonical", {"customer_id": "customer_id", "invoiced_at": "invoiced_at", "amount": "amount"}, CANONICAL
    )


def test_user_map_completes_an_unknown_layout():
    mapping = resolve_mapping(
        ["Client", "When", "Total"],
        {"customer_id": "Client", "invoiced_at": "When", "amount": "Total"},
        source_name="x.csv",
    )
    assert mapping == ColumnMapping("custom", {"customer_id": "Client", "invoiced_at": "When", "amount": "Total"})


def test_missing_required_columns_are_listed_with_the_columns_found():
    with pytest.raises(MissingColumnsError) as caught:
        resolve_mapping(["Client", "When"], {"customer_id": "Client"}, source_name="x.csv")
    assert str(caught.value) == (
        "x.csv: missing required column(s) invoiced_at, amount (or quantity and unit_price); "
        "columns found: Client, When; map them with --map canonical=source (e.g. --map customer_id=Client) "
        "or a [columns] table in custseg.toml"
    )


def test_mapping_to_a_column_that_does_not_exist_names_it():
    with pytest.raises(MissingColumnsError, match=r"x.csv: --map customer_id=Kunde: no column 'Kunde'"):
        resolve_mapping(["Client"], {"customer_id": "Kunde"}, source_name="x.csv")


def canonical(data: dict, columns: dict, fmt=None):
    data = {**data, "row": list(range(1, len(next(iter(data.values()))) + 1))}
    return to_canonical(
        ibis.memtable(data), ColumnMapping("custom", columns), timestamp_format=fmt, row_id="row"
    ).to_pandas()


def test_amount_only_gives_sign_as_quantity_and_synthesised_orders():
    out = canonical(
        {"c": ["a", "a"], "t": ["2011-01-01 10:00:00", "2011-01-02 10:00:00"], "amt": ["25.5", "-5"]},
        {"customer_id": "c", "invoiced_at": "t", "amount": "amt"},
    )
    assert out.quantity.tolist() == [1.0, -1.0]
    assert out.unit_price.tolist() == [25.5, 5.0]
    assert out.invoice_id.tolist() == ["a@2011-01-01 10:00:00", "a@2011-01-02 10:00:00"]
    assert out.product_id.isna().all()


def test_a_blank_invoice_id_is_an_order_of_the_customer_and_timestamp_as_without_the_column():
    out = canonical(
        {
            "c": ["a", "a", "a", "a"],
            "i": ["A1", "", None, None],
            "t": ["2011-01-01 10:00:00", "2011-01-01 11:00:00", "2011-01-02 10:00:00", "2011-01-02 10:00:00"],
            "amt": ["1", "2", "3", "4"],
        },
        {"customer_id": "c", "invoice_id": "i", "invoiced_at": "t", "amount": "amt"},
    )
    assert out.invoice_id.tolist() == ["A1", "a@2011-01-01 11:00:00", "a@2011-01-02 10:00:00", "a@2011-01-02 10:00:00"]


def test_float_ids_lose_their_decimal_point_and_decimal_commas_parse():
    out = canonical(
        {"c": [17850.0, None], "t": ["1/12/2011 8:26", "13/12/2011 9:00"], "q": ["6", "2"], "p": ["2,55", "1.5"]},
        {"customer_id": "c", "invoiced_at": "t", "quantity": "q", "unit_price": "p"},
        fmt="%d/%m/%Y %H:%M",
    )
    assert out.customer_id.tolist()[0] == "17850"
    assert out.customer_id.isna().tolist() == [False, True]
    assert out.unit_price.tolist() == [2.55, 1.5]
    assert [str(t) for t in out.invoiced_at] == ["2011-12-01 08:26:00", "2011-12-13 09:00:00"]


@pytest.mark.parametrize(
    "quantity, price, expected",
    [
        ("6", "2,55", (6.0, 2.55)),
        ("1,000", "1", (None, 1.0)),  # a thousands separator or three decimals: refused, not guessed
        ("2", "NaN", (2.0, None)),
        ("2", "inf", (2.0, None)),
        ("2", "Infinity", (2.0, None)),
        ("1e300", "1", (None, 1.0)),
        ("-3", "1e16", (-3.0, None)),
    ],
)
def test_numbers_that_are_not_finite_too_large_or_ambiguous_are_invalid(quantity, price, expected):
    out = canonical(
        {"c": ["a"], "t": ["2011-01-01 10:00:00"], "q": [quantity], "p": [price]},
        {"customer_id": "c", "invoiced_at": "t", "quantity": "q", "unit_price": "p"},
    )
    got = tuple(None if v != v else v for v in (out.quantity[0], out.unit_price[0]))
    assert got == expected
    if None in expected:
        assert out.problem_reason[0] == "invalid_number"


def test_typed_nan_and_infinity_are_invalid_numbers_too():
    out = canonical(
        {"c": ["a", "b"], "t": ["2011-01-01 10:00:00"] * 2, "q": [1.0, 2.0], "p": [float("nan"), float("inf")]},
        {"customer_id": "c", "invoiced_at": "t", "quantity": "q", "unit_price": "p"},
    )
    assert out.problem_reason.tolist() == ["invalid_number", "invalid_number"]


def test_ids_written_as_floats_in_text_are_one_customer_and_placeholders_are_guests():
    ids = ["17850.0", "17850", " 17850 ", "NULL", "None", "N/A", "-", "nan", "  "]
    out = canonical(
        {"c": ids, "t": ["2011-01-01 10:00:00"] * len(ids), "q": ["1"] * len(ids), "p": ["1"] * len(ids)},
        {"customer_id": "c", "invoiced_at": "t", "quantity": "q", "unit_price": "p"},
    )
    assert out.customer_id.tolist()[:3] == ["17850"] * 3
    assert out.customer_id[3:].isna().all()


def test_placeholder_years_are_invalid_timestamps():
    out = canonical(
        {"c": ["a", "b", "c"], "t": ["0001-01-01 00:00:00", "9999-12-31 00:00:00", "2011-01-01 10:00:00"]}
        | {"q": ["1"] * 3, "p": ["1"] * 3},
        {"customer_id": "c", "invoiced_at": "t", "quantity": "q", "unit_price": "p"},
    )
    assert out.problem_reason.tolist()[:2] == ["invalid_timestamp", "invalid_timestamp"]
    assert out.problem_reason.isna().tolist()[2]
