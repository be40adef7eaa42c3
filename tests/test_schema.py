from __future__ import annotations

import ibis
import pytest

from custseg.errors import MissingColumnsError
from custseg.schema import ColumnMapping, detect_preset, resolve_mapping, to_canonical

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
    assert detect_preset(columns) == preset


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
