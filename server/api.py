"""JSON API handlers: parse, one domain call, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from invoicing.accounts import store as accounts
from invoicing.accounts.views import me_json
from invoicing.domain.invoice_rules import order_not_found
from invoicing.domain.job_states import ItemStatus, JobStatus
from invoicing.domain.order_filters import BATCH_DEFAULTS, FILTER_FIELDS, OrderFilter, parse_order_filter
from invoicing.invoices import store as invoices
from invoicing.invoices.single_order import invoice_single_order
from invoicing.invoices.views import Invoice
from invoicing.jobs import actions
from invoicing.jobs import store as jobs
from invoicing.jobs.views import BatchJob, BatchJobItem
from invoicing.kernel.errors import BadRequest, NotFound
from invoicing.kernel.principal import Principal
from invoicing.orders import customers
from invoicing.orders import store as orders
from invoicing.orders.views import CustomerSummary, SalesOrderSummary
from server import state
from server.auth import authenticate
from server.paging import (
    int_cursor,
    limit_of,
    page,
    text_id_cursor,
    time_id_cursor,
    time_text_cursor,
    uuid_cursor,
)
from server.requests import (
    path_uuid,
    query_choice,
    query_uuid,
    read_json,
    read_optional_json,
    reject_unknown_query,
)


async def _principal(request: Request) -> Principal:
    return await authenticate(request, state.services(request).database)


def _scoped(request: Request, principal: Principal) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A transaction that sees the caller's organization only (row-level security too)."""
    return state.services(request).database.scoped(principal.organization_id)


def _job_response(job: BatchJob, status_code: int = 200) -> JSONResponse:
    return JSONResponse(job.to_json(), status_code=status_code)


ANY_ORDER = OrderFilter()


#: A page larger than this is a heavy read (it takes its organization's turn, see read_gate).
HEAVY_PAGE = 100


@asynccontextmanager
async def _reading(
    request: Request, principal: Principal, *, heavy: bool
) -> AsyncIterator[asyncpg.Connection]:
    """A scoped transaction for a read that may be long (a count, a sum): it stops in
    PostgreSQL after ``DB_READ_TIMEOUT_SECONDS``, whether or not its client is still there. A
    ``heavy`` one first waits for one of its organization's heavy-read turns, without a
    connection, so that one organization cannot fill the pool with them."""
    services = state.services(request)
    timeout = services.settings.db_read_timeout_seconds
    async with AsyncExitStack() as stack:
        if heavy:
            await stack.enter_async_context(services.read_gate.heavy(principal.organization_id))
        yield await stack.enter_async_context(
            services.database.scoped(principal.organization_id, statement_timeout=timeout)
        )


def _order_filter(request: Request, defaults: OrderFilter = ANY_ORDER) -> OrderFilter:
    """The filters of the query string; a field left out keeps its default ("any" unless
    ``defaults`` says otherwise)."""
    values: dict[str, object] = {
        name: request.query_params[name] for name in FILTER_FIELDS if request.query_params.get(name)
    }
    if "invoiced" in values:
        values["invoiced"] = {"true": True, "false": False}.get(str(values["invoiced"]), values["invoiced"])
    return parse_order_filter(values, defaults=defaults, refuse=_invalid_parameter)


def _invalid_parameter(message: str) -> BadRequest:
    return BadRequest(f"Query parameter {message}", code="invalid_parameter")


async def list_sales_orders(request: Request) -> Response:
    principal = await _principal(request)
    reject_unknown_query(request, {*FILTER_FIELDS, "limit", "cursor", "include_total"})
    order_filter = _order_filter(request)
    include_total = query_choice(request, "include_total", ("true", "false")) == "true"
    limit = limit_of(request)
    async with _reading(request, principal, heavy=include_total or limit > HEAVY_PAGE) as connection:
        found = await orders.list_orders(
            connection,
            principal.organization_id,
            order_filter,
            limit=limit + 1,
            after=text_id_cursor(request),
        )
        # "Select all N matching" needs N (and how many of them running jobs hold); counted only
        # on request, as it costs a scan of the matching orders' index entries.
        count = None
        if include_total:
            settings = state.services(request).settings
            most_held = settings.max_active_jobs_per_org * settings.max_batch_size
            count = await orders.count_orders(
                connection, principal.organization_id, order_filter, most_held=most_held
            )
    extra = {} if count is None else count.to_json()
    return page(found, limit, SalesOrderSummary.to_json, lambda o: (o.number, str(o.id)), **extra)


async def sales_order_totals(request: Request) -> Response:
    """What a batch of "every matching order" would invoice, per currency, by the invoice rules:
    a field left out means what it means in a batch's filter (confirmed, not invoiced)."""
    principal = await _principal(request)
    reject_unknown_query(request, set(FILTER_FIELDS))
    order_filter = _order_filter(request, defaults=BATCH_DEFAULTS)
    settings = state.services(request).settings
    async with _reading(request, principal, heavy=True) as connection:
        totals = await orders.selection_totals(
            connection, principal.organization_id, order_filter, limit=settings.max_batch_size
        )
    return JSONResponse(totals.to_json())


async def list_customers(request: Request) -> Response:
    """The organization's customers by name, for the order list's customer filter."""
    principal = await _principal(request)
    reject_unknown_query(request, {"limit", "cursor"})
    limit = limit_of(request)
    async with _scoped(request, principal) as connection:
        found = await customers.list_customers(
            connection, principal.organization_id, limit=limit + 1, after=uuid_cursor(request)
        )
    return page(found, limit, CustomerSummary.to_json, lambda c: (str(c.id),))


async def invoice_sales_order(request: Request) -> Response:
    principal = await _principal(request)
    order_id = path_uuid(request, "order_id", order_not_found)
    invoice = await invoice_single_order(
        state.services(request).database,
        organization_id=principal.organization_id,
        order_id=order_id,
        user_id=principal.user_id,
    )
    return JSONResponse(invoice.to_json(), status_code=201)


def _accepted(job: BatchJob) -> Response:
    response = _job_response(job, status_code=202)
    response.headers["Location"] = f"/api/batch-jobs/{job.id}"
    return response


async def create_batch_job(request: Request) -> Response:
    """The body is read only once the user's limits allow a job request (jobs.actions)."""
    principal = await _principal(request)
    job = await actions.create_job(state.services(request), principal, lambda: read_json(request))
    return _accepted(job)


async def list_batch_jobs(request: Request) -> Response:
    principal = await _principal(request)
    reject_unknown_query(request, {"status", "limit", "cursor"})
    status = query_choice(request, "status", tuple(s.value for s in JobStatus))
    limit = limit_of(request)
    async with _scoped(request, principal) as connection:
        found = await jobs.list_jobs(
            connection,
            principal.organization_id,
            status=None if status is None else JobStatus(status),
            limit=limit + 1,
            after=time_id_cursor(request),
        )
    return page(found, limit, BatchJob.to_json, lambda j: (j.created_at.isoformat(), str(j.id)))


#: The one authenticated answer not ``no-store`` (server/headers.py): a poller's copy may be kept
#: by its own client, never by a shared cache, and is revalidated every time (ETag, 304).
JOB_CACHE_CONTROL = "private, no-cache"


async def get_batch_job(request: Request) -> Response:
    """Cheap to poll every 2 s: the ETag is the job's sequence number, so 304 until it moves."""
    principal = await _principal(request)
    job_id = path_uuid(request, "job_id", NotFound.job)
    async with _scoped(request, principal) as connection:
        job = await jobs.get_job(connection, principal.organization_id, job_id)
    # A retry does not move the original's seq, yet changes its JSON (``retried_as``).
    retried = "" if job.retried_as is None else "-retried"
    etag = f'W/"{job.id}-{job.progress_seq}{retried}"'
    if_none_match = request.headers.get("if-none-match", "")
    if etag in if_none_match or if_none_match.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": JOB_CACHE_CONTROL})
    response = _job_response(job)
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = JOB_CACHE_CONTROL
    return response


async def list_batch_job_items(request: Request) -> Response:
    principal = await _principal(request)
    job_id = path_uuid(request, "job_id", NotFound.job)
    reject_unknown_query(request, {"status", "limit", "cursor"})
    status = query_choice(request, "status", tuple(s.value for s in ItemStatus))
    limit = limit_of(request)
    async with _scoped(request, principal) as connection:
        job = await jobs.get_job(connection, principal.organization_id, job_id)
        items = await jobs.list_items(
            connection,
            job,
            status=None if status is None else ItemStatus(status),
            limit=limit + 1,
            after_position=int_cursor(request),
        )
    return page(items, limit, BatchJobItem.to_json, lambda i: (i.position,))


async def cancel_batch_job(request: Request) -> Response:
    principal = await _principal(request)
    job_id = path_uuid(request, "job_id", NotFound.job)
    job = await actions.cancel_job(state.services(request), principal, job_id)
    return _job_response(job)


async def retry_batch_job(request: Request) -> Response:
    """A new job over the finished job's orders that got no invoice (audited on both jobs)."""
    principal = await _principal(request)
    job = await actions.retry_job(
        state.services(request),
        principal,
        request.path_params["job_id"],
        partial(read_optional_json, request),
    )
    return _accepted(job)


async def change_batch_job_priority(request: Request) -> Response:
    """Admins: ``{"priority": "urgent" | "normal" | "low"}`` for a pending or running job."""
    principal = await _principal(request)
    job_id = path_uuid(request, "job_id", NotFound.job)
    job = await actions.change_priority(
        state.services(request), principal, job_id, partial(read_json, request)
    )
    return _job_response(job)


async def list_invoices(request: Request) -> Response:
    principal = await _principal(request)
    reject_unknown_query(request, {"job_id", "limit", "cursor"})
    job_id = query_uuid(request, "job_id")
    limit = limit_of(request)
    async with _scoped(request, principal) as connection:
        found = await invoices.list_invoices(
            connection,
            principal.organization_id,
            job_id=job_id,
            limit=limit + 1,
            after=time_text_cursor(request),
        )
    return page(found, limit, Invoice.to_json, lambda i: (i.created_at.isoformat(), i.number))


async def get_invoice(request: Request) -> Response:
    principal = await _principal(request)
    invoice_id = path_uuid(request, "invoice_id", NotFound.invoice)
    async with _scoped(request, principal) as connection:
        invoice = await invoices.get_invoice(connection, principal.organization_id, invoice_id)
    return JSONResponse(invoice.to_json())


async def batch_jobs(request: Request) -> Response:
    # One route for both methods, so a 405 on this path lists both in its Allow header.
    if request.method == "POST":
        return await create_batch_job(request)
    return await list_batch_jobs(request)


async def me(request: Request) -> Response:
    """Who the caller is, for the UI's header."""
    principal = await _principal(request)
    async with _scoped(request, principal) as connection:
        name = await accounts.organization_name(connection, principal.organization_id)
    return JSONResponse(me_json(principal, name))


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/customers", list_customers, methods=["GET"]),
    Route("/api/sales-orders", list_sales_orders, methods=["GET"]),
    Route("/api/sales-orders/totals", sales_order_totals, methods=["GET"]),
    Route("/api/sales-orders/{order_id}/invoice", invoice_sales_order, methods=["POST"]),
    Route("/api/batch-jobs", batch_jobs, methods=["GET", "POST"]),
    Route("/api/batch-jobs/{job_id}", get_batch_job, methods=["GET"]),
    Route("/api/batch-jobs/{job_id}/items", list_batch_job_items, methods=["GET"]),
    Route("/api/batch-jobs/{job_id}/cancel", cancel_batch_job, methods=["POST"]),
    Route("/api/batch-jobs/{job_id}/retry", retry_batch_job, methods=["POST"]),
    Route("/api/batch-jobs/{job_id}/priority", change_batch_job_priority, methods=["POST"]),
    Route("/api/invoices", list_invoices, methods=["GET"]),
    Route("/api/invoices/{invoice_id}", get_invoice, methods=["GET"]),
]
