"""Notification settings of the caller, the organization's webhook endpoints and their
deliveries (administrators), and the Webhooks page."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from invoicing.kernel.errors import InvoicingError, NotFound
from invoicing.kernel.principal import Principal
from invoicing.notifications import webhooks
from invoicing.notifications.views import WebhookDelivery, notification_settings_json
from invoicing.notifications.webhook_requests import parse_notification_settings
from server import state
from server.auth import authenticate
from server.pages import account_context, principal_or_none, render_page
from server.paging import limit_of, page, time_id_cursor
from server.requests import path_uuid, read_json, reject_unknown_query

#: A URL of 2,048 characters and a description of 200, escaped, fit many times over.
MAX_BODY_BYTES = 16 * 1024
#: The secret is in this answer only: never cached, never stored by the client's caches.
NOT_STORED = {"Cache-Control": "no-store"}


async def _admin_on(
    request: Request, name: str = "webhook_id", not_found: Callable[[], InvoicingError] = NotFound.webhook
) -> tuple[state.Services, Principal, UUID]:
    """An administrator's request about one endpoint (or delivery): the caller's role is checked
    before anything about the request is looked at."""
    services = state.services(request)
    principal = await authenticate(request, services.database)
    principal.require_admin()
    return services, principal, path_uuid(request, name, not_found)


async def notification_settings(request: Request) -> Response:
    services = state.services(request)
    principal = await authenticate(request, services.database)
    if request.method == "PUT":
        email = parse_notification_settings(await read_json(request, max_bytes=MAX_BODY_BYTES))
        await webhooks.set_email_preference(services.database, principal, email)
    else:
        email = await webhooks.email_preference(services.database, principal)
    return JSONResponse(notification_settings_json(email))


async def webhooks_collection(request: Request) -> Response:
    # One route for both methods, so a 405 on this path lists both in its Allow header.
    services = state.services(request)
    principal = await authenticate(request, services.database)
    if request.method == "POST":
        principal.require_admin()
        body = await read_json(request, max_bytes=MAX_BODY_BYTES)
        created = await webhooks.create_webhook(services.database, services.settings, principal, body)
        return JSONResponse(created.to_json(), status_code=201, headers=NOT_STORED)
    found = await webhooks.list_webhooks(services.database, principal)
    return JSONResponse({"items": [item.to_json() for item in found]})


async def one_webhook(request: Request) -> Response:
    # One route for both methods, so a 405 on this path lists both in its Allow header.
    services, principal, webhook_id = await _admin_on(request)
    if request.method == "PATCH":
        body = await read_json(request, max_bytes=MAX_BODY_BYTES)
        item = await webhooks.update_webhook(
            services.database, services.settings, principal, webhook_id, body
        )
        return JSONResponse(item.to_json())
    await webhooks.delete_webhook(services.database, principal, webhook_id)
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    services, principal, webhook_id = await _admin_on(request)
    rotated = await webhooks.rotate_secret(services.database, services.settings, principal, webhook_id)
    return JSONResponse(rotated.to_json(), headers=NOT_STORED)


async def _set_enabled(request: Request, *, enabled: bool) -> Response:
    services, principal, webhook_id = await _admin_on(request)
    item = await webhooks.set_enabled(services.database, principal, webhook_id, enabled=enabled)
    return JSONResponse(item.to_json())


async def enable_webhook(request: Request) -> Response:
    return await _set_enabled(request, enabled=True)


async def disable_webhook(request: Request) -> Response:
    return await _set_enabled(request, enabled=False)


async def list_deliveries(request: Request) -> Response:
    services, principal, webhook_id = await _admin_on(request)
    reject_unknown_query(request, {"limit", "cursor"})
    limit = limit_of(request, maximum=100)
    found = await webhooks.list_deliveries(
        services.database, principal, webhook_id, before=time_id_cursor(request), limit=limit + 1
    )
    return page(found, limit, WebhookDelivery.to_json, lambda d: (d.created_at.isoformat(), str(d.id)))


async def ping_webhook(request: Request) -> Response:
    services, principal, webhook_id = await _admin_on(request)
    delivery = await webhooks.ping(services.database, principal, webhook_id)
    await services.queue.enqueue_notifications(principal.organization_id, f"ping:{delivery.event_id}")
    return JSONResponse(delivery.to_json(), status_code=202)


async def redeliver(request: Request) -> Response:
    services, principal, delivery_id = await _admin_on(request, "delivery_id", NotFound.webhook_delivery)
    delivery = await webhooks.redeliver(services.database, principal, delivery_id)
    await services.queue.enqueue_notifications(principal.organization_id, f"redeliver:{delivery.id}")
    return JSONResponse(delivery.to_json(), status_code=202)


async def webhooks_page(request: Request) -> Response:
    """A shell that webhooks.js fills from the API (administrators only)."""
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    context = {"page": "webhooks", **await account_context(request, principal)}
    if not principal.is_admin:
        return render_page(request, "forbidden.html", 403, **context)
    return render_page(request, "webhooks.html", **context)


routes: list[Route] = [
    Route("/api/me/notifications", notification_settings, methods=["GET", "PUT"]),
    Route("/api/webhooks", webhooks_collection, methods=["GET", "POST"]),
    Route("/api/webhooks/{webhook_id}", one_webhook, methods=["PATCH", "DELETE"]),
    Route("/api/webhooks/{webhook_id}/rotate-secret", rotate_secret, methods=["POST"]),
    Route("/api/webhooks/{webhook_id}/enable", enable_webhook, methods=["POST"]),
    Route("/api/webhooks/{webhook_id}/disable", disable_webhook, methods=["POST"]),
    Route("/api/webhooks/{webhook_id}/ping", ping_webhook, methods=["POST"]),
    Route("/api/webhooks/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/webhook-deliveries/{delivery_id}/redeliver", redeliver, methods=["POST"]),
    Route("/webhooks", webhooks_page, methods=["GET"]),
]
