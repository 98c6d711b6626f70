"""Administrators only: the operations page and its API (job health, failures, audit log)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from invoicing.admin import operations
from invoicing.admin.views import AuditEntry
from invoicing.jobs.sweep import sweep
from invoicing.kernel.principal import Principal
from server import state
from server.auth import authenticate
from server.pages import account_context, principal_or_none, render_page
from server.paging import limit_of, page, uuid_cursor
from server.requests import reject_unknown_query


async def _admin(request: Request) -> Principal:
    principal = await authenticate(request, state.services(request).database)
    principal.require_admin()
    return principal


async def process_pending(request: Request) -> Response:
    """The sweep, now, for the caller's organization only (the workers sweep every one)."""
    principal = await _admin(request)
    services = state.services(request)
    result = await sweep(services.database, services.queue, services.settings, principal.organization_id)
    body: dict[str, Any] = result.to_json()
    return JSONResponse(body)


async def stats(request: Request) -> Response:
    """The organization's job health now and over the last 24 hours."""
    principal = await _admin(request)
    reject_unknown_query(request, set())
    async with state.services(request).database.scoped(principal.organization_id) as connection:
        found = await operations.operational_stats(connection, principal.organization_id)
    return JSONResponse(found.to_json())  # no-store, as every authenticated answer (server/headers.py)


async def audit_log(request: Request) -> Response:
    """Who created, cancelled or retried which job, and when; newest first."""
    principal = await _admin(request)
    reject_unknown_query(request, {"limit", "cursor"})
    limit = limit_of(request, maximum=200)
    async with state.services(request).database.scoped(principal.organization_id) as connection:
        entries = await operations.audit_entries(
            connection,
            principal.organization_id,
            before_id=uuid_cursor(request),
            limit=limit + 1,
        )
    return page(entries, limit, AuditEntry.to_json, lambda e: (str(e.id),))


async def operations_page(request: Request) -> Response:
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    context = {"page": "operations", **await account_context(request, principal)}
    if not principal.is_admin:
        return render_page(request, "forbidden.html", 403, **context)
    return render_page(request, "operations.html", **context)


routes = [
    Route("/api/admin/process-pending", process_pending, methods=["POST"]),
    Route("/api/admin/stats", stats, methods=["GET"]),
    Route("/api/admin/audit-log", audit_log, methods=["GET"]),
    Route("/operations", operations_page, methods=["GET"]),
]
