"""Notification settings, webhook endpoints and their deliveries as the API shows them: one JSON
serializer each and, beside it, the schema of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from invoicing.domain.notices import JOB_EVENTS, PING_EVENT, EmailPreference
from invoicing.kernel.json_schema import BOOLEAN, COUNT, ID, TEXT, Schema, array, closed_object, enum, ref
from invoicing.kernel.json_values import INSTANT, NULLABLE_INSTANT, iso_time

#: What ``GET``/``PUT /api/me/notifications`` answer.
NOTIFICATION_SETTINGS_SCHEMA = closed_object(
    {"email": enum(EmailPreference, description="always, failures (only when something failed) or never.")}
)


def notification_settings_json(email: EmailPreference) -> dict[str, Any]:
    return {"email": email.value}


@dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint the organization's events are posted to (its secret is never read here)."""

    id: UUID
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    #: Why it is disabled: "admin" (someone disabled it) or "failing" (a day of failed calls).
    disabled_reason: str | None
    #: Since when every call failed (None: the last one went through).
    failing_since: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Webhook:
        return cls(
            row["id"],
            row["url"],
            tuple(row["events"]),
            row["description"],
            row["enabled"],
            row["disabled_reason"],
            row["failing_since"],
            row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": iso_time(self.failing_since),
            "created_at": iso_time(self.created_at),
        }


WEBHOOK_SCHEMA = closed_object(
    {
        "id": ID,
        "url": TEXT,
        "events": array(enum(JOB_EVENTS)),
        "description": TEXT,
        "enabled": BOOLEAN,
        "disabled_reason": {
            "type": ["string", "null"],
            "enum": ["admin", "failing", None],
            "description": "admin: disabled by an administrator; failing: every call failed for a day.",
        },
        "failing_since": NULLABLE_INSTANT,
        "created_at": INSTANT,
    }
)
WEBHOOK_LIST_SCHEMA = closed_object({"items": array(ref("Webhook"))})


@dataclass(frozen=True, slots=True)
class WebhookWithSecret:
    """A new endpoint or a rotated secret: the only answers that carry the secret."""

    secret: str
    item: Webhook

    def to_json(self) -> dict[str, Any]:
        return {"secret": self.secret, "item": self.item.to_json()}


WEBHOOK_WITH_SECRET_SCHEMA = closed_object(
    {
        "secret": {"type": "string", "description": "The signing secret, shown this once."},
        "item": ref("Webhook"),
    }
)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event's call to one endpoint: its state and its last attempt."""

    id: UUID
    event_id: UUID
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> WebhookDelivery:
        return cls(
            row["id"],
            row["event_id"],
            row["event_type"],
            row["status"],
            row["attempts"],
            row["last_status_code"],
            row["last_error"],
            row["next_attempt_at"] if row["status"] == "pending" else None,
            row["delivered_at"],
            row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "next_attempt_at": iso_time(self.next_attempt_at),
            "delivered_at": iso_time(self.delivered_at),
            "created_at": iso_time(self.created_at),
        }


WEBHOOK_DELIVERY_SCHEMA = closed_object(
    {
        "id": ID,
        "event_id": {**ID, "description": "The same for every call of one event: drop repeats by it."},
        "event_type": enum([*JOB_EVENTS, PING_EVENT]),
        "status": enum(["pending", "delivered", "failed"]),
        "attempts": COUNT,
        "last_status_code": {"type": ["integer", "null"], "description": "HTTP status of the last attempt."},
        "last_error": {
            "type": ["string", "null"],
            "description": "Why the last attempt failed, when it got no answer or a refused one.",
        },
        "next_attempt_at": {**NULLABLE_INSTANT, "description": "When it is tried next (pending only)."},
        "delivered_at": NULLABLE_INSTANT,
        "created_at": INSTANT,
    }
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {
    "NotificationSettings": NOTIFICATION_SETTINGS_SCHEMA,
    "Webhook": WEBHOOK_SCHEMA,
    "WebhookList": WEBHOOK_LIST_SCHEMA,
    "WebhookWithSecret": WEBHOOK_WITH_SECRET_SCHEMA,
    "WebhookDelivery": WEBHOOK_DELIVERY_SCHEMA,
}
