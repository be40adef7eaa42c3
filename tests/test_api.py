from __future__ import annotations

import json
import re

import duckdb
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import PROJECT
from custseg import model as model_folder
from custseg.api import create_app
from custseg.cli import app as cli
from custseg.errors import InputFileError
from custseg.model import MODEL_VERSION, load_model
from custseg.serve import Scorer


@pytest.fixture(scope="module")
def model_dir(trained):
    return trained[1].out_dir


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir, token="")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def transactions(model_dir):
    """The training run's canonical transactions (as the API takes them), in source order."""
    with duckdb.connect(str(model_dir / "custseg.duckdb"), read_only=True) as con:
        return con.sql(
            "select customer_id, invoice_id, invoiced_at, product_id, description, quantity, unit_price, country "
            "from transactions where customer_id is not null and invoiced_at is not null order by row_id"
        ).df()


def request_body(rows: pd.DataFrame) -> dict:
    records = json.loads(rows.to_json(orient="records", date_format="iso"))
    for record in records:
        record["invoiced_at"] = record["invoiced_at"].removesuffix("Z").removesuffix(".000")
    return {"transactions": records}


def test_scorer_reproduces_the_run_for_every_customer(model_dir, transactions, trained):
    _, result = trained
    as_of = result.record.customers.as_of
    fitted = load_model(model_dir)
    columns = fitted.assigned_columns()
    scored = Scorer(fitted).score(transactions, as_of)
    customers = pd.read_parquet(model_dir / "customers.parquet")[list(columns)]
    assert len(scored.customers) == len(customers)
    merged = customers.merge(scored.customers, on="customer_id", suffixes=("_run", "_api"))
    for column in columns[1:]:
        run_values, api_values = merged[f"{column}_run"], merged[f"{column}_api"]
        if pd.api.types.is_float_dtype(run_values):
            assert ((run_values - api_values).abs().fillna(0) < 1e-9).all(), column
        else:
            missing = "<missing>"
            differ = run_values.astype(object).fillna(missing) != api_values.astype(object).fillna(missing)
            assert not differ.any(), merged.loc[differ, ["customer_id", f"{column}_run", f"{column}_api"]]
    assert set(scored.rejected.reason) <= {"duplicate_row", "non_product", "non_positive_price", "zero_quantity"} | {
        "matched_return",
        "partly_matched_return",
        "unmatched_return",
    }


def test_one_batch_keeps_two_requests_for_the_same_customer_id_apart(model_dir, transactions):
    customer = transactions.customer_id.value_counts().index[0]
    rows = transactions[transactions.customer_id == customer]
    purchases = rows[rows.quantity > 0].sort_values("invoiced_at")
    first_order = rows[rows.invoice_id == purchases.invoice_id.iloc[0]]
    scorer = Scorer(load_model(model_dir))
    alone_all, alone_first = scorer.score(rows), scorer.score(first_order)
    together = scorer.score_many([(rows, None), (first_order, None)])
    for alone, batched in zip((alone_all, alone_first), together, strict=True):
        assert batched.customers.equals(alone.customers)
        assert batched.as_of == alone.as_of
    assert together[0].customers.frequency.iloc[0] > together[1].customers.frequency.iloc[0] == 1


def test_healthz_names_the_model(client, trained):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["model"]["trained_on_sha256"] == trained[1].record.input.sha256


def test_assign_answers_segment_rfm_value_and_early_prediction(client, model_dir, trained):
    with duckdb.connect(str(model_dir / "custseg.duckdb"), read_only=True) as con:
        new_customer = con.sql(
            "select customer_id, invoice_id, invoiced_at, product_id, description, quantity, unit_price, country "
            "from lines where returned_quantity = 0 order by row_id limit 3"
        ).df()
    new_customer["customer_id"] = "web-42"
    postage = new_customer.iloc[[0]].assign(product_id="POST", description="POSTAGE")
    response = client.post("/v1/assign", json=request_body(pd.concat([new_customer, postage])))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"]["model_version"] == MODEL_VERSION
    # The id custseg assign writes beside its customers, so that an answer can be matched to a file.
    assert answer["model"]["model_id"] == load_model(trained[1].out_dir).model_id
    (customer,) = answer["customers"]
    assert customer["customer_id"] == "web-42"
    assert customer["segment_name"] and customer["action"] and customer["rfm_code"]
    names = {p["segment"]: p["name"] for p in trained[1].record.segments.profiles}
    assert customer["segment_name"] == names[customer["segment"]]
    # The rule in words; a customer whose only order was the day before can be neither lapsing nor lost.
    rules = {r["segment"]: r["rule"] for r in trained[1].record.segments.rules}
    assert customer["segment_rule"] == rules[customer["segment"]]
    assert not customer["segment_name"].startswith(("Lapsing", "Lapsed", "Lost", "Overdue")), customer
    early = customer["early"]
    assert early["orders_used"] >= 1 and 0 < early["category_probability"] <= 1
    value = customer["value"]
    assert value["horizon_days"] == trained[1].record.value.horizon_days == 90
    assert 0 < value["p_order_again"] < 1 and value["expected_orders"] > 0 and value["expected_revenue"] > 0
    assert answer["rejected"] == [{"row": len(new_customer) + 1, "customer_id": "web-42", "reason": "non_product"}]


def test_a_customer_with_only_rejected_rows_is_reported_not_dropped(client, transactions):
    row = transactions.iloc[[0]].assign(customer_id="fees-only", product_id="POST", description="POSTAGE")
    answer = client.post("/v1/assign", json=request_body(row)).json()
    assert answer["customers"] == [] and answer["unscored_customers"] == ["fees-only"]
    assert answer["rejected"][0]["reason"] == "non_product"


def test_segments_lists_every_learned_segment_and_the_rfm_map(client, trained):
    response = client.get("/v1/segments")
    assert response.status_code == 200
    body = response.json()
    profiles = trained[1].record.segments.profiles
    assert [s["segment"] for s in body["learned"]] == [p["segment"] for p in profiles]
    assert all(s["name"] and s["action"] for s in body["learned"])
    assert all(s["expected_revenue_90d_total"] > 0 and 0 < s["p_order_again_90d"] < 1 for s in body["learned"])
    assert len(body["rfm"]) == 11


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"quantity": "many"}, ["body", "transactions", 0, "quantity"]),
        ({"invoiced_at": "2011-13-45"}, ["body", "transactions", 0, "invoiced_at"]),
        ({"customer_id": ""}, ["body", "transactions", 0, "customer_id"]),
        ({"colour": "red"}, ["body", "transactions", 0, "colour"]),
    ],
)
def test_bad_input_gets_422_naming_the_field(client, transactions, change, where):
    body = request_body(transactions.head(1))
    body["transactions"][0].update(change)
    response = client.post("/v1/assign", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where


@pytest.mark.parametrize(
    ("number", "column"), [("NaN", "quantity"), ("Infinity", "unit_price"), ("-Infinity", "quantity")]
)
def test_json_numbers_that_are_not_finite_get_422_not_500(client, transactions, number, column):
    body = request_body(transactions.head(1))
    body["transactions"][0][column] = 0
    text = json.dumps(body).replace(f'"{column}": 0', f'"{column}": {number}')
    response = client.post("/v1/assign", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "transactions", 0, column]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": 1e300}, "invalid_number"),
        ({"unit_price": 1e40}, "invalid_number"),
        ({"invoiced_at": "9999-12-01T10:00:00"}, "invalid_timestamp"),
        ({"invoiced_at": "0001-01-01T00:00:00"}, "invalid_timestamp"),
        ({"customer_id": "   "}, "missing_customer_id"),
        ({"customer_id": "NULL"}, "missing_customer_id"),
        ({"customer_id": "n/a"}, "missing_customer_id"),
    ],
)
def test_values_the_cli_rejects_are_rejected_with_the_same_reason(client, transactions, change, reason):
    body = request_body(transactions.head(1))
    written = {**body["transactions"][0], **change}["customer_id"]
    body["transactions"][0].update(change)
    response = client.post("/v1/assign", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["customers"] == []
    assert answer["rejected"] == [{"row": 1, "customer_id": written, "reason": reason}]


def test_a_placeholder_year_is_not_the_last_transaction(client, transactions):
    first = transactions[transactions.customer_id == transactions.customer_id.iloc[0]]
    plain = client.post("/v1/assign", json=request_body(first)).json()
    body = request_body(first)
    body["transactions"].append({**body["transactions"][0], "invoiced_at": "9999-12-31T23:59:00"})
    answer = client.post("/v1/assign", json=body).json()
    assert (answer["customers"], answer["as_of"]) == (plain["customers"], plain["as_of"])
    assert answer["rejected"] == [
        *plain["rejected"],
        {"row": len(first) + 1, "customer_id": body["transactions"][0]["customer_id"], "reason": "invalid_timestamp"},
    ]
    body["transactions"] = body["transactions"][-1:]
    answer = client.post("/v1/assign", json=body).json()
    assert (answer["as_of"], answer["as_of_source"], answer["customers"], len(answer["rejected"])) == (
        None,
        None,
        [],
        1,
    )


def test_the_answer_says_which_reference_date_it_used_and_why(client, transactions):
    first = transactions[transactions.customer_id == transactions.customer_id.iloc[0]]
    plain = client.post("/v1/assign", json=request_body(first)).json()
    last = pd.to_datetime(first.invoiced_at).max().normalize() + pd.Timedelta(days=1)
    assert (plain["as_of"], plain["as_of_source"]) == (last.isoformat(), "last_transaction")
    given = client.post("/v1/assign", json={**request_body(first), "as_of": "2011-12-10"}).json()
    assert (given["as_of"], given["as_of_source"]) == ("2011-12-10T00:00:00", "given")


def test_ids_and_offsets_are_read_by_the_files_rules(client, transactions):
    first = transactions[transactions.customer_id == transactions.customer_id.iloc[0]]
    plain = client.post("/v1/assign", json=request_body(first)).json()
    assert len(plain["customers"]) == 1
    body = request_body(first)
    for row in body["transactions"]:
        row.update(customer_id=f" {row['customer_id']}.0 ", invoiced_at=row["invoiced_at"] + "+05:00")
    answer = client.post("/v1/assign", json=body).json()
    assert (answer["customers"], answer["as_of"]) == (plain["customers"], plain["as_of"])


def test_an_empty_request_gets_422(client):
    response = client.post("/v1/assign", json={"transactions": []})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "transactions"]


def test_bodies_over_the_limit_get_413_declared_or_streamed(model_dir, transactions):
    body = json.dumps(request_body(transactions.head(50))).encode()
    with TestClient(create_app(model_dir, max_body_bytes=len(body) - 1, token="")) as small:
        assert small.post("/v1/assign", content=body, headers={"content-type": "application/json"}).status_code == 413

        def chunks():
            yield body[:100]
            yield body[100:]

        streamed = small.post("/v1/assign", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert "content-length" not in streamed.request.headers
    with TestClient(create_app(model_dir, max_body_bytes=len(body), token="")) as exact:
        assert exact.post("/v1/assign", content=body, headers={"content-type": "application/json"}).status_code == 200


def test_a_set_token_is_required_on_v1(model_dir, transactions, monkeypatch):
    monkeypatch.setenv("CUSTSEG_API_TOKEN", "s3cret")
    body = request_body(transactions.head(3))
    with TestClient(create_app(model_dir)) as guarded:
        assert guarded.post("/v1/assign", json=body).status_code == 401
        wrong = guarded.post("/v1/assign", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert guarded.get("/v1/segments").status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert guarded.post("/v1/assign", json=body, headers=right).status_code == 200
        assert guarded.get("/v1/segments", headers=right).status_code == 200
        assert guarded.get("/healthz").status_code == 200


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/assign", "/v1/segments", "/healthz"} <= set(paths)


def test_a_model_with_untrusted_types_is_refused(model_dir, monkeypatch):
    monkeypatch.setattr(model_folder, "TRUSTED_TYPES", frozenset())
    with pytest.raises(InputFileError, match="refusing untrusted types"):
        create_app(model_dir)


def test_serve_reports_a_missing_model_in_one_line(tmp_path):
    outcome = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path)])
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith("custseg: error: ") and outcome.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("depth", "statuses"),
    # Python's JSON parser stops near its recursion limit (1,000 frames, less those in use): 400.
    [(10, {422}), (450, {422}), (500, {422}), (700, {422}), (999, {422, 400}), (1000, {400}), (5000, {400})],
)
def test_a_field_nested_at_any_depth_gets_a_small_4xx_not_500(client, transactions, depth, statuses):
    body = request_body(transactions.head(1))
    body["transactions"][0]["customer_id"] = "HOLE"
    # Written by hand: json.dumps would itself go past the recursion limit.
    text = json.dumps(body).replace('"HOLE"', "[" * depth + '"x"' + "]" * depth)
    response = client.post("/v1/assign", content=text, headers={"content-type": "application/json"})
    assert response.status_code in statuses and len(response.content) < 1000, response.text[:1000]
    if response.status_code == 422:
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "transactions", 0, "customer_id"]
        shown = min(depth, 8)
        assert error["input"] == json.loads("[" * shown + ('"x"' if depth <= 8 else '"..."') + "]" * shown)


def test_invoice_and_product_ids_are_optional_as_in_a_file(client, transactions):
    customer = transactions.customer_id.value_counts().index[0]
    rows = transactions[transactions.customer_id == customer]
    # Each invoice of the simulated shop has one timestamp: without invoice ids, the same orders.
    assert rows.groupby("invoice_id").invoiced_at.nunique().max() == 1
    plain = client.post("/v1/assign", json=request_body(rows)).json()
    body = request_body(rows)
    for line in body["transactions"]:
        del line["invoice_id"]
    without_invoices = client.post("/v1/assign", json=body)
    assert without_invoices.status_code == 200, without_invoices.text
    assert without_invoices.json()["customers"] == plain["customers"]
    for line in body["transactions"]:
        line["product_id"] = None
    without_products = client.post("/v1/assign", json=body)
    assert without_products.status_code == 200, without_products.text
    (answer,), (expected,) = without_products.json()["customers"], plain["customers"]
    # The description stands for the product: the customer's orders and spend are the same.
    for field in ("recency_days", "frequency", "monetary", "rfm_code", "segment", "value"):
        assert answer[field] == expected[field], field


def test_the_documented_request_is_accepted_and_says_which_fields_are_required(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Transaction"]["required"] == ["customer_id", "invoiced_at", "quantity", "unit_price"]
    (example,) = schema["AssignRequest"]["examples"]
    assert any("invoice_id" not in line and "product_id" not in line for line in example["transactions"])
    # The documentation's curl command sends it.
    page = (PROJECT / "docs" / "http-api.md").read_text(encoding="utf-8")
    assert json.loads(re.search(r"-d '(.*?)'\n```", page, re.DOTALL).group(1)) == example
    response = client.post("/v1/assign", json=example)
    assert response.status_code == 200, response.text
    (customer,) = response.json()["customers"]
    assert (customer["customer_id"], customer["frequency"], customer["monetary"]) == ("web-42", 2, 28.05)
