"""The published OpenAPI 3.1 description of the JSON API (``GET /api/openapi.json``).

The paths and operations are the server's and are written here (notifications and webhooks in
``server/openapi_notifications.py``), in the words of ``server/openapi_parts.py``; every
component schema comes from the module that writes that JSON, beside its ``to_json``
(``invoicing/*/views.py``, the request parsers, ``server/errors.py``, ``server/paging.py``,
``server/health.py``).
``tests/integration/test_openapi_answers.py`` calls every route and holds each answer to its
schema; the schemathesis test in ``tests/security`` fuzzes the document against the app.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from invoicing.accounts import views as account_views
from invoicing.accounts.api_tokens import TOKEN_REQUEST_SCHEMA
from invoicing.admin import views as admin_views
from invoicing.domain.batch_requests import (
    PRIORITY_REQUEST_SCHEMA,
    RETRY_REQUEST_SCHEMA,
    batch_request_schema,
)
from invoicing.domain.job_states import ItemStatus, JobStatus
from invoicing.domain.order_filters import ORDER_STATUSES
from invoicing.invoices import views as invoice_views
from invoicing.jobs import views as job_views
from invoicing.jobs.sweep import SWEEP_RESULT_SCHEMA
from invoicing.kernel.json_schema import CURRENCY, DATE, ID, Schema, ref
from invoicing.kernel.settings import ENVIRONMENT
from invoicing.orders import views as order_views
from server import health, state
from server.errors import ERROR_SCHEMA, error_responses
from server.openapi_notifications import NOTIFICATION_SCHEMAS, notification_paths
from server.openapi_parts import (
    BOOLEAN_TEXT,
    IF_NONE_MATCH,
    LIMIT,
    NOT_MODIFIED,
    PAGING,
    api,
    enum_query,
    id_parameter,
    json_body,
    json_content,
    ok,
    public,
    query,
)
from server.paging import paged

DEFAULT_MAX_BATCH_SIZE = int(ENVIRONMENT["MAX_BATCH_SIZE"] or 100_000)


ORDER_FILTERS = [
    enum_query("status", ORDER_STATUSES),
    enum_query("invoiced", BOOLEAN_TEXT, "Only orders with (true) or without (false) an invoice."),
    query("order_date_from", DATE, "Orders dated on or after this day (YYYY-MM-DD)."),
    query("order_date_to", DATE, "Orders dated on or before this day."),
    query("customer_id", ID, "Only this customer's orders."),
    query("currency", CURRENCY, "Only orders in this currency."),
]


# --- paths ----------------------------------------------------------------------------


def _job_paths() -> dict[str, Any]:
    job_id = id_parameter("job_id", "batch job")
    return {
        "/api/batch-jobs": {
            "get": api(
                "listBatchJobs",
                "The organization's batch jobs, newest first.",
                ok("A page of jobs.", "BatchJobPage"),
                400,
                parameters=[enum_query("status", JobStatus), *PAGING],
            ),
            "post": api(
                "createBatchJob",
                "Invoice many orders in the background: explicit ids, or every order matching a filter.",
                ok("The job, accepted.", "BatchJob", Location={"type": "string"}),
                *(400, 403, 409, 413, 429),
                status=202,
                requestBody=json_body("BatchRequest"),
            ),
        },
        "/api/batch-jobs/{job_id}": {
            "get": api(
                "getBatchJob",
                "One job. Poll with If-None-Match: 304 until it changes.",
                ok("The job.", "BatchJob", ETag={"type": "string"}),
                404,
                also={"304": NOT_MODIFIED},
                parameters=[job_id, IF_NONE_MATCH],
            ),
        },
        "/api/batch-jobs/{job_id}/items": {
            "get": api(
                "listBatchJobItems",
                "The job's orders in request order, with each one's outcome.",
                ok("A page of items.", "BatchJobItemPage"),
                *(400, 404),
                parameters=[job_id, enum_query("status", ItemStatus), *PAGING],
            ),
        },
        "/api/batch-jobs/{job_id}/cancel": {
            "post": api(
                "cancelBatchJob",
                "Cancel a pending job now, or stop a processing one before its next chunk.",
                ok("The job.", "BatchJob"),
                *(403, 404, 409),
                parameters=[job_id],
            ),
        },
        "/api/batch-jobs/{job_id}/retry": {
            "post": api(
                "retryBatchJob",
                "A new job over a finished job's orders that got no invoice (failed, cancelled or never "
                "reached); a job is retried once (409 `already_retried`), then retry the retry.",
                ok("The new job, accepted.", "BatchJob", Location={"type": "string"}),
                *(400, 403, 404, 409, 413, 429),
                status=202,
                parameters=[job_id],
                requestBody={"required": False, "content": json_content(ref("RetryRequest"))},
            ),
        },
        "/api/batch-jobs/{job_id}/priority": {
            "post": api(
                "changeBatchJobPriority",
                "Admins: move a pending or running job to another priority (409 `job_finished` once "
                "it ended).",
                ok("The job.", "BatchJob"),
                *(400, 403, 404, 409, 413),
                parameters=[job_id],
                requestBody=json_body("PriorityRequest"),
            ),
        },
    }


def _token_paths() -> dict[str, Any]:
    return {
        "/api/tokens": {
            "get": api(
                "listApiTokens",
                "The caller's API tokens in this organization, newest first (never the tokens themselves).",
                ok("The tokens.", "ApiTokenList"),
            ),
            "post": api(
                "createApiToken",
                "Create an API token for the caller in this organization.",
                ok("The token, shown only here.", "CreatedToken", **{"Cache-Control": {"const": "no-store"}}),
                *(400, 403, 404, 409, 413),
                status=201,
                requestBody=json_body("TokenRequest"),
            ),
        },
        "/api/tokens/{token_id}/revoke": {
            "post": api(
                "revokeApiToken",
                "Revoke one of the caller's tokens (revoking twice is harmless).",
                ok("The token's record.", "ApiToken"),
                *(403, 404),
                parameters=[id_parameter("token_id", "API token")],
            ),
        },
    }


def _paths() -> dict[str, Any]:
    return {
        "/api/me": {"get": api("getMe", "Who the caller is.", ok("The caller.", "Me"))},
        "/api/customers": {
            "get": api(
                "listCustomers",
                "The organization's customers by name (the order list's customer filter).",
                ok("A page of customers.", "CustomerPage"),
                400,
                parameters=PAGING,
            ),
        },
        "/api/sales-orders": {
            "get": api(
                "listSalesOrders",
                "The organization's sales orders, by number.",
                ok("A page of orders.", "SalesOrderPage"),
                400,
                parameters=[
                    *ORDER_FILTERS,
                    *PAGING,
                    enum_query(
                        "include_total",
                        BOOLEAN_TEXT,
                        "Also count every matching order (`total`) and those running jobs hold "
                        "(`in_active_jobs`).",
                    ),
                ],
            ),
        },
        "/api/sales-orders/totals": {
            "get": api(
                "getSalesOrderTotals",
                "What a batch of every matching order would invoice now, per currency (orders held by "
                "running jobs left out), by the invoice rules.",
                ok("Totals per currency.", "SalesOrderTotals"),
                400,
                parameters=ORDER_FILTERS,
            ),
        },
        "/api/sales-orders/{order_id}/invoice": {
            "post": api(
                "invoiceSalesOrder",
                "Invoice one order now.",
                ok("The invoice.", "Invoice"),
                *(403, 404, 409, 422),
                status=201,
                parameters=[id_parameter("order_id", "sales order")],
            ),
        },
        **_job_paths(),
        **_token_paths(),
        **notification_paths(),
        "/api/invoices": {
            "get": api(
                "listInvoices",
                "The organization's invoices, newest first (without lines).",
                ok("A page of invoices.", "InvoicePage"),
                400,
                parameters=[query("job_id", ID, "Only the invoices of this batch job."), *PAGING],
            ),
        },
        "/api/invoices/{invoice_id}": {
            "get": api(
                "getInvoice",
                "One invoice with its lines.",
                ok("The invoice.", "Invoice"),
                404,
                parameters=[id_parameter("invoice_id", "invoice")],
            ),
        },
        "/api/admin/process-pending": {
            "post": api(
                "processPending",
                "Admins only: run the sweep now (re-enqueue pending jobs, resume abandoned ones).",
                ok("What the sweep did.", "SweepResult"),
                403,
            ),
        },
        "/api/admin/stats": {
            "get": api(
                "getOperationalStats",
                "Admins only: active and stuck jobs, the last 24 hours' outcomes, failures by reason.",
                ok("The organization's job health.", "OperationalStats"),
                *(400, 403),
            ),
        },
        "/api/admin/audit-log": {
            "get": api(
                "listAuditLog",
                "Admins only: who created, cancelled or retried which job, and when; newest first.",
                ok("A page of entries.", "AuditEntryPage"),
                *(400, 403),
                parameters=[query("limit", {**LIMIT, "maximum": 200}, "Page size."), PAGING[1]],
            ),
        },
        "/api/openapi.json": {
            "get": public(
                "getOpenApi",
                "This document.",
                {"200": {"description": "OpenAPI 3.1.", "content": json_content({"type": "object"})}},
            ),
        },
        "/healthz": {"get": public("healthz", "Liveness: the process is up.", {"200": ok("Up.", "Health")})},
        "/readyz": {
            "get": public(
                "readyz",
                "Readiness: PostgreSQL and Redis both answer.",
                {"200": ok("Ready.", "Readiness"), "503": ok("A dependency is down.", "Readiness")},
            ),
        },
    }


def _component_schemas(max_batch_size: int) -> dict[str, Schema]:
    """Each resource's schema from the module that writes it; the pages are ``server/paging``'s
    envelope around them."""
    return {
        "Error": ERROR_SCHEMA,
        **account_views.SCHEMAS,
        "TokenRequest": TOKEN_REQUEST_SCHEMA,
        "SweepResult": SWEEP_RESULT_SCHEMA,
        **health.SCHEMAS,
        **order_views.SCHEMAS,
        "CustomerPage": paged("Customer"),
        "SalesOrderPage": paged("SalesOrder", **order_views.ORDER_COUNT_PROPERTIES),
        **invoice_views.SCHEMAS,
        "InvoicePage": paged("InvoiceSummary"),
        "BatchRequest": batch_request_schema(max_batch_size),
        "RetryRequest": RETRY_REQUEST_SCHEMA,
        "PriorityRequest": PRIORITY_REQUEST_SCHEMA,
        **job_views.SCHEMAS,
        "BatchJobPage": paged("BatchJob"),
        "BatchJobItemPage": paged("BatchJobItem"),
        **admin_views.SCHEMAS,
        **NOTIFICATION_SCHEMAS,
        "AuditEntryPage": paged("AuditEntry"),
    }


@lru_cache(maxsize=4)
def _document(max_batch_size: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Batch invoicing API",
            "version": "0.1.0",
            "description": "Turns sales orders into invoices, one at a time or in background batch jobs.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token."},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "invoicing_session",
                    "description": "The browser's session; a state-changing request must come from the site.",
                },
            },
            "schemas": _component_schemas(max_batch_size),
            "responses": error_responses(),
        },
    }


def openapi_document(max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API (built once per batch size; do not mutate it)."""
    return _document(max_batch_size)


@lru_cache(maxsize=4)
def _rendered(max_batch_size: int) -> bytes:
    return orjson.dumps(openapi_document(max_batch_size))


async def openapi_json(request: Request) -> Response:
    settings = state.services(request).settings
    return Response(_rendered(settings.max_batch_size), media_type="application/json")


routes = [Route("/api/openapi.json", openapi_json, methods=["GET"])]
