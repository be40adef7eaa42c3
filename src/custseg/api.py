"""The HTTP API: segments for customers from their transactions, as JSON.

`custseg serve --model DIR` loads a model folder once (with skops' trusted-type checks) and
answers ``POST /v1/assign`` with the same cleaning, features, RFM scores, learned segment, expected
value and early prediction as `custseg assign`; ``GET /v1/segments`` describes the segments and
``GET /healthz`` says it is up. The OpenAPI schema is at ``/openapi.json``, the docs at ``/docs``.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from custseg import __version__
from custseg.model import FittedModel, load_model
from custseg.serve import Batcher, Scored, Scorer
from custseg.value import value_columns

TOKEN_VARIABLE = "CUSTSEG_API_TOKEN"
DEFAULT_MAX_BODY_BYTES = 1_000_000


class Transaction(BaseModel):
    """One line of an order, in the shop's local time.

    A line needs the customer, the time, the quantity and the unit price. As in a file without those
    columns, without an invoice id the customer's lines at one timestamp are one order, and without a
    product id the description stands for the product.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=200)
    invoice_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The order; default: one order per customer and timestamp, as a file without an invoice column.",
    )
    invoiced_at: datetime.datetime = Field(description="The shop's local time; a UTC offset is dropped, not applied.")
    product_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the description stands for the product."
    )
    description: str | None = Field(default=None, max_length=1000)
    quantity: float = Field(allow_inf_nan=False, description="Negative for a return.")
    unit_price: float = Field(allow_inf_nan=False)
    country: str | None = Field(default=None, max_length=200)

    @field_validator("invoiced_at")
    @classmethod
    def _local_time(cls, value: datetime.datetime) -> datetime.datetime:
        # The shop's wall clock, as a file's timestamps are read: 11:52+01:00 is 11:52.
        return value.replace(tzinfo=None)


class AssignRequest(BaseModel):
    """Transactions of one or many customers."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "transactions": [
                        {
                            "customer_id": "web-42",
                            "invoice_id": "A1",
                            "invoiced_at": "2011-11-20T10:15:00",
                            "product_id": "85123A",
                            "description": "WHITE HANGING HEART T-LIGHT HOLDER",
                            "quantity": 6,
                            "unit_price": 2.55,
                            "country": "United Kingdom",
                        },
                        {
                            "customer_id": "web-42",
                            "invoiced_at": "2011-12-01T09:30:00",
                            "description": "REGENCY CAKESTAND 3 TIER",
                            "quantity": 1,
                            "unit_price": 12.75,
                        },
                    ],
                    "as_of": "2011-12-10",
                }
            ]
        },
    )

    transactions: list[Transaction] = Field(min_length=1)
    as_of: datetime.date | None = Field(
        default=None, description="Reference date; default: the day after the last transaction."
    )


class EarlyPrediction(BaseModel):
    """What a customer younger than the model's horizon is likely to become, from their first orders."""

    orders_used: int
    segment: str | None = Field(description="The early model's pick (the one its macro-F1 is measured on).")
    segment_name: str | None
    segment_probability: float | None = Field(description="The chance the customer ends in `segment`.")
    category: str | None
    category_name: str | None
    category_probability: float | None = Field(description="The chance `category` ends their biggest.")


class ExpectedValue(BaseModel):
    """What the customer is expected to do over the next ``horizon_days`` (the model's backtest horizon)."""

    horizon_days: int
    p_order_again: float = Field(description="Chance of an order of positive net revenue within the horizon.")
    expected_orders: float
    expected_revenue: float = Field(description="Expected net revenue, in the shop's currency.")


class CustomerSegments(BaseModel):
    """A customer's features, RFM scores, segments, interest group and expected value."""

    customer_id: str
    recency_days: int
    frequency: int
    monetary: float
    avg_order_value: float
    tenure_days: int
    revenue_90d: float
    r_score: int
    f_score: int
    m_score: int
    rfm_code: str
    rfm_segment: str | None
    segment: str | None
    segment_name: str | None
    segment_rule: str | None = Field(
        description="The rule every member of the segment satisfies, in words; empty for clustered segments."
    )
    action: str | None
    interest_group: str | None = Field(
        description="The customer's interest group (I1, I2, ...: what they buy); null when the model has none."
    )
    interest_group_name: str | None = Field(description="The interest group's name, from what its customers buy.")
    value: ExpectedValue | None = Field(description="Null when the model has no value model (no backtest).")
    early: EarlyPrediction | None


class RejectedTransaction(BaseModel):
    """A transaction that was not kept, with the cleaning rule's reason."""

    row: int = Field(description="1-based position in the request's transactions.")
    customer_id: str | None
    reason: str


class ModelInfo(BaseModel):
    """Which model answered."""

    model_id: str = Field(description="The model folder's id, as custseg assign writes it (model_id).")
    model_version: int
    custseg_version: str
    trained_on_sha256: str
    as_of_training: str


class AssignResponse(BaseModel):
    """Segments of the request's customers."""

    model: ModelInfo
    as_of: datetime.datetime | None = Field(
        description="The reference date used; null when none was given and no transaction had a valid timestamp."
    )
    as_of_source: Literal["given", "last_transaction"] | None = Field(
        description="Why that date: given in the request, or the day after the request's last transaction "
        "(custseg assign's as_of_source)."
    )
    customers: list[CustomerSegments]
    rejected: list[RejectedTransaction]
    unscored_customers: list[str] = Field(
        description="Customers without an order of positive net revenue before as_of (nothing to score)."
    )


class SegmentsResponse(BaseModel):
    """The model's segments: learned profiles and the RFM segment map."""

    model: ModelInfo
    learned: list[dict[str, Any]]
    rfm: list[dict[str, Any]]


def model_info(fitted: FittedModel) -> ModelInfo:
    """Describe the model behind the answers."""
    manifest = fitted.manifest
    return ModelInfo(
        model_id=fitted.model_id,
        model_version=manifest["model_version"],
        custseg_version=manifest["custseg_version"],
        trained_on_sha256=manifest["trained_on"]["sha256"],
        as_of_training=manifest["as_of"],
    )


def _value(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


_ECHO_DEPTH = 10
"""How deep a 422's errors are shown: the list, an error, then its input to 8 levels (a body may nest 1,000)."""


def _echoed(value: Any, depth: int = _ECHO_DEPTH) -> Any:
    """Return errors that echo the input as JSON can hold them.

    NaN and infinities become their text, and objects or lists below ``depth`` levels become
    ``"..."``: the answer stays small and is built without deep recursion.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list | tuple) and depth == 0:
        return "..."
    if isinstance(value, dict):
        return {key: _echoed(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_echoed(item, depth - 1) for item in value]
    return value


def _customers(scored: Scored, horizon_days: int) -> list[CustomerSegments]:
    columns = value_columns(horizon_days)
    answers = []
    for row in scored.customers.to_dict(orient="records"):
        row = {key: _value(value) for key, value in row.items()}
        early = None
        if row["early_orders"] is not None:
            early = EarlyPrediction(
                orders_used=row["early_orders"],
                **{
                    f"{target}{suffix}": row[f"predicted_{target}{suffix}"]
                    for target in ("segment", "category")
                    for suffix in ("", "_name", "_probability")
                },
            )
        value = None
        if row[columns["expected_revenue"]] is not None:
            value = ExpectedValue(horizon_days=horizon_days, **{target: row[c] for target, c in columns.items()})
        fields = {k: v for k, v in row.items() if k in CustomerSegments.model_fields}
        answers.append(CustomerSegments(**fields, value=value, early=early))
    return answers


def create_app(
    model_folder: str | Path, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, token: str | None = None
) -> FastAPI:
    """Build the API for one model folder.

    Parameters
    ----------
    model_folder : str or Path
        The output folder of `custseg run`, or its ``model/``.
    max_body_bytes : int
        Larger request bodies get 413.
    token : str, optional
        Bearer token the ``/v1`` endpoints require; default the ``CUSTSEG_API_TOKEN``
        environment variable. Empty or unset: no token is required.

    Raises
    ------
    InputFileError
        If the model folder is missing, of another version, or holds untrusted types.
    """
    token = (token if token is not None else os.environ.get(TOKEN_VARIABLE)) or None
    return _app(load_model(model_folder), max_body_bytes=max_body_bytes, token=token)


def openapi_schema() -> dict[str, Any]:
    """Return the API's OpenAPI schema, which does not depend on the model (the docs publish it)."""
    return _app(None, max_body_bytes=DEFAULT_MAX_BODY_BYTES, token=None).openapi()


def _app(fitted: FittedModel | None, *, max_body_bytes: int, token: str | None) -> FastAPI:
    """Build the app; without a model (``fitted=None``) only for its schema: no request can be answered."""
    info = model_info(fitted) if fitted is not None else None
    batcher = Batcher(Scorer(fitted)) if fitted is not None else None
    bearer = HTTPBearer(auto_error=False)

    # The dependency sits in the default: under postponed annotations FastAPI could not see a
    # local object inside Annotated.
    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if batcher is not None:
            batcher.close()

    app = FastAPI(
        title="custseg",
        summary="Customer segments from transactions",
        version=info.custseg_version if info is not None else __version__,
        lifespan=lifespan,
        max_body_size=max_body_bytes,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The errors echo the input: it may hold NaN or Infinity, which JSON cannot write, and nest
        # deeper than Python's recursion limit lets jsonable_encoder go.
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(_echoed(exc.errors()))})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Say the service is up and which model it serves."""
        return {"status": "ok", "model": info.model_dump()}

    @app.post("/v1/assign", dependencies=[Depends(authorised)])
    async def assign(request: AssignRequest) -> AssignResponse:
        """Clean the transactions, score RFM and assign segments, expected value and early predictions per customer."""
        transactions = pd.DataFrame([t.model_dump() for t in request.transactions])
        as_of = datetime.datetime.combine(request.as_of, datetime.time()) if request.as_of else None
        scored = await asyncio.wrap_future(batcher.submit(transactions, as_of))
        return AssignResponse(
            model=info,
            as_of=scored.as_of,
            as_of_source=None if scored.as_of is None else "given" if request.as_of else "last_transaction",
            customers=_customers(scored, fitted.horizon_days),
            rejected=[
                RejectedTransaction(row=r.request_row, customer_id=r.customer_id, reason=r.reason)
                for r in scored.rejected.itertuples()
            ],
            unscored_customers=scored.unscored,
        )

    @app.get("/v1/segments", dependencies=[Depends(authorised)])
    def segments() -> SegmentsResponse:
        """Describe the learned segments (profiles, names, actions) and the RFM segment map."""
        return SegmentsResponse(
            model=info, learned=fitted.manifest.get("segments") or [], rfm=fitted.manifest["rfm"]["rules"]
        )

    return app
