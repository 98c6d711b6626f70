"""The notification and webhook operations of the OpenAPI document, and their schemas."""

from __future__ import annotations

from typing import Any

from invoicing.kernel.json_schema import Schema
from invoicing.notifications import views as notification_views
from invoicing.notifications.webhook_requests import (
    NOTIFICATION_SETTINGS_REQUEST_SCHEMA,
    WEBHOOK_CHANGES_SCHEMA,
    WEBHOOK_REQUEST_SCHEMA,
)
from server.openapi_parts import LIMIT, PAGING, api, id_parameter, json_body, ok, query
from server.paging import paged

#: This part's component schemas, by name.
NOTIFICATION_SCHEMAS: dict[str, Schema] = {
    **notification_views.SCHEMAS,
    "NotificationSettingsRequest": NOTIFICATION_SETTINGS_REQUEST_SCHEMA,
    "WebhookRequest": WEBHOOK_REQUEST_SCHEMA,
    "WebhookChanges": WEBHOOK_CHANGES_SCHEMA,
    "WebhookDeliveryPage": paged("WebhookDelivery"),
}


def notification_paths() -> dict[str, Any]:
    """The caller's notification settings, webhook endpoints and their deliveries."""
    webhook_id = id_parameter("webhook_id", "webhook endpoint")
    no_store = {"Cache-Control": {"const": "no-store"}}

    def admin(operation_id: str, summary: str, success: dict[str, Any], *statuses: int, **fields: Any) -> Any:
        return api(operation_id, f"{summary} Administrators only.", success, 403, *statuses, **fields)

    return {
        "/api/me/notifications": {
            "get": api(
                "getNotificationSettings",
                "When the caller gets an email about their batches.",
                ok("The settings.", "NotificationSettings"),
            ),
            "put": api(
                "setNotificationSettings",
                "Choose when the caller gets an email about their batches.",
                ok("The settings.", "NotificationSettings"),
                400,
                403,
                413,
                requestBody=json_body("NotificationSettingsRequest"),
            ),
        },
        "/api/webhooks": {
            "get": admin(
                "listWebhooks",
                "The organization's webhook endpoints (never their secrets).",
                ok("The endpoints.", "WebhookList"),
            ),
            "post": admin(
                "createWebhook",
                "Register a webhook endpoint.",
                ok("The endpoint and its signing secret, shown only here.", "WebhookWithSecret", **no_store),
                400,
                409,
                413,
                status=201,
                requestBody=json_body("WebhookRequest"),
            ),
        },
        "/api/webhooks/{webhook_id}": {
            "patch": admin(
                "updateWebhook",
                "Change an endpoint's URL, events or description (its secret stays).",
                ok("The endpoint.", "Webhook"),
                400,
                404,
                413,
                parameters=[webhook_id],
                requestBody=json_body("WebhookChanges"),
            ),
            "delete": admin(
                "deleteWebhook",
                "Delete an endpoint; its pending deliveries are dropped.",
                {"description": "Deleted."},
                404,
                status=204,
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/rotate-secret": {
            "post": admin(
                "rotateWebhookSecret",
                "A new signing secret; the old one stops at once.",
                ok("The endpoint and its new secret, shown only here.", "WebhookWithSecret", **no_store),
                404,
                409,
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/enable": {
            "post": admin(
                "enableWebhook",
                "Send events to the endpoint again.",
                ok("The endpoint.", "Webhook"),
                404,
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/disable": {
            "post": admin(
                "disableWebhook",
                "Stop sending events to the endpoint.",
                ok("The endpoint.", "Webhook"),
                404,
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/ping": {
            "post": admin(
                "pingWebhook",
                "Send the endpoint a signed test call (`webhook.ping`, the endpoint as its data) now, once.",
                ok("The test call's delivery, pending.", "WebhookDelivery"),
                404,
                409,
                429,
                status=202,
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/deliveries": {
            "get": admin(
                "listWebhookDeliveries",
                "The endpoint's deliveries, newest first.",
                ok("A page of deliveries.", "WebhookDeliveryPage"),
                400,
                404,
                parameters=[webhook_id, query("limit", {**LIMIT, "maximum": 100}, "Page size."), PAGING[1]],
            ),
        },
        "/api/webhook-deliveries/{delivery_id}/redeliver": {
            "post": admin(
                "redeliverWebhook",
                "Send the delivery's event again now (same event id).",
                ok("The delivery, pending.", "WebhookDelivery"),
                404,
                409,
                status=202,
                parameters=[id_parameter("delivery_id", "webhook delivery")],
            ),
        },
    }
