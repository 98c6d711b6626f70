"""The SQL of notification settings and webhook endpoints, as the API reads and writes them.
Every statement runs in the caller's organization scope and names the organization too."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from invoicing.domain.notices import DEFAULT_EMAIL_PREFERENCE, EmailPreference
from invoicing.notifications.views import Webhook, WebhookDelivery

READ_PREFERENCE = """
SELECT email FROM notification_preferences WHERE organization_id = $1 AND user_id = $2
"""

WRITE_PREFERENCE = """
INSERT INTO notification_preferences (organization_id, user_id, email) VALUES ($1, $2, $3)
ON CONFLICT (organization_id, user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = now()
"""

_WEBHOOK_COLUMNS = "id, url, events, description, enabled, disabled_reason, failing_since, created_at"

COUNT_WEBHOOKS = "SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1"

# A lock held to the transaction's end on adding an endpoint, so that two at once cannot both
# pass the count (two-key advisory lock: this use, then the organization).
LOCK_WEBHOOKS = "SELECT pg_advisory_xact_lock($2, hashtext($1::uuid::text))"
WEBHOOK_CREATION_LOCK_CLASS = 724_031_505

INSERT_WEBHOOK = f"""
INSERT INTO webhook_endpoints (organization_id, url, events, description, secret_salt)
VALUES ($1, $2, $3, $4, $5)
RETURNING {_WEBHOOK_COLUMNS}, secret_salt
"""

LIST_WEBHOOKS = f"""
SELECT {_WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE organization_id = $1 ORDER BY created_at, id
"""

READ_WEBHOOK = f"""
SELECT {_WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE organization_id = $1 AND id = $2
"""

ROTATE_SECRET = f"""
UPDATE webhook_endpoints SET secret_salt = $3 WHERE organization_id = $1 AND id = $2
RETURNING {_WEBHOOK_COLUMNS}
"""

# Enabling starts the failure clock afresh; disabling by hand records that an admin decided
# (failing_since still tells whether the endpoint was failing).
ENABLE_WEBHOOK = f"""
UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, failing_since = NULL
WHERE organization_id = $1 AND id = $2
RETURNING {_WEBHOOK_COLUMNS}
"""
DISABLE_WEBHOOK = f"""
UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'admin'
WHERE organization_id = $1 AND id = $2
RETURNING {_WEBHOOK_COLUMNS}
"""

# An edit; a new URL is a new destination, whose failure clock starts afresh (an endpoint
# disabled for failing keeps it, as its record, until it is enabled).
UPDATE_WEBHOOK = f"""
UPDATE webhook_endpoints
SET url = coalesce($3, url), events = coalesce($4, events), description = coalesce($5, description),
    failing_since = CASE WHEN enabled AND $3::text IS DISTINCT FROM NULL AND $3 <> url THEN NULL
                         ELSE failing_since END
WHERE organization_id = $1 AND id = $2
RETURNING {_WEBHOOK_COLUMNS}
"""

DELETE_WEBHOOK = "DELETE FROM webhook_endpoints WHERE organization_id = $1 AND id = $2 RETURNING id"

_DELIVERY_COLUMNS = """
delivery.id, delivery.event_id, event.type AS event_type, delivery.status, delivery.attempts,
delivery.last_status_code, delivery.last_error, delivery.next_attempt_at, delivery.delivered_at,
delivery.created_at
"""

# Newest first, by the index on (webhook_id, created_at DESC, id DESC).
LIST_DELIVERIES = f"""
SELECT {_DELIVERY_COLUMNS}
FROM notification_deliveries AS delivery
JOIN notification_events AS event ON event.id = delivery.event_id
WHERE delivery.organization_id = $1 AND delivery.webhook_id = $2
  AND ($3::timestamptz IS NULL OR (delivery.created_at, delivery.id) < ($3, $4))
ORDER BY delivery.created_at DESC, delivery.id DESC
LIMIT $5
"""

# A webhook delivery's endpoint: whether it is enabled (no row: no such webhook delivery). The
# endpoint is held (shared) to the transaction's end, so it is not disabled between this
# answer and the redelivery; taken before the delivery's row, as recording an outcome does.
ENDPOINT_OF_DELIVERY = """
SELECT endpoint.enabled
FROM notification_deliveries AS delivery
JOIN webhook_endpoints AS endpoint ON endpoint.id = delivery.webhook_id
WHERE delivery.organization_id = $1 AND delivery.id = $2
FOR SHARE OF endpoint
"""

# Once more, now, with a fresh round of attempts; the same event (and event id).
REDELIVER = f"""
WITH delivery AS (
    UPDATE notification_deliveries
    SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL,
        last_status_code = NULL, last_error = NULL, claim_token = NULL
    WHERE organization_id = $1 AND id = $2
    RETURNING *
)
SELECT {_DELIVERY_COLUMNS}
FROM delivery JOIN notification_events AS event ON event.id = delivery.event_id
"""


# Whether the endpoint is there and enabled, and how many test calls it was sent in the last
# minute; its row locked to the transaction's end, so that test calls asked at once count
# each other.
LOCK_FOR_PING = """
SELECT endpoint.enabled,
       (SELECT count(*) FROM notification_deliveries AS delivery
        JOIN notification_events AS event ON event.id = delivery.event_id
        WHERE delivery.organization_id = $1 AND delivery.webhook_id = $2 AND event.type = $3
          AND delivery.created_at > now() - interval '1 minute') AS recent
FROM webhook_endpoints AS endpoint
WHERE endpoint.organization_id = $1 AND endpoint.id = $2
FOR NO KEY UPDATE OF endpoint
"""

# A test call to one endpoint: an event of its own (the endpoint as its data) and its delivery,
# due now; nothing if the endpoint is disabled.
PING = f"""
WITH endpoint AS (
    SELECT id, url, events, description FROM webhook_endpoints
    WHERE organization_id = $1 AND id = $2 AND enabled
),
event AS (
    INSERT INTO notification_events (organization_id, type, data)
    SELECT $1, $3, jsonb_build_object('webhook', jsonb_build_object(
        'id', endpoint.id, 'url', endpoint.url, 'events', to_jsonb(endpoint.events),
        'description', endpoint.description))
    FROM endpoint
    RETURNING id, type
),
delivery AS (
    INSERT INTO notification_deliveries (organization_id, event_id, channel, webhook_id)
    SELECT $1, event.id, 'webhook', $2 FROM event
    RETURNING *
)
SELECT {_DELIVERY_COLUMNS}
FROM delivery JOIN event ON event.id = delivery.event_id
"""


async def ping(
    connection: asyncpg.Connection, organization_id: UUID, webhook_id: UUID, event_type: str
) -> WebhookDelivery | None:
    """The test call's delivery; None if the endpoint is disabled (or missing)."""
    row = await connection.fetchrow(PING, organization_id, webhook_id, event_type)
    return None if row is None else WebhookDelivery.from_row(row)


async def read_preference(
    connection: asyncpg.Connection, organization_id: UUID, user_id: UUID
) -> EmailPreference:
    value = await connection.fetchval(READ_PREFERENCE, organization_id, user_id)
    return DEFAULT_EMAIL_PREFERENCE if value is None else EmailPreference(value)


async def write_preference(
    connection: asyncpg.Connection, organization_id: UUID, user_id: UUID, email: EmailPreference
) -> None:
    await connection.execute(WRITE_PREFERENCE, organization_id, user_id, email.value)


async def lock_webhooks(connection: asyncpg.Connection, organization_id: UUID) -> None:
    await connection.execute(LOCK_WEBHOOKS, organization_id, WEBHOOK_CREATION_LOCK_CLASS)


async def count_webhooks(connection: asyncpg.Connection, organization_id: UUID) -> int:
    return int(await connection.fetchval(COUNT_WEBHOOKS, organization_id))


async def insert_webhook(
    connection: asyncpg.Connection,
    organization_id: UUID,
    url: str,
    events: tuple[str, ...],
    description: str,
    salt: bytes,
) -> Webhook:
    row = await connection.fetchrow(INSERT_WEBHOOK, organization_id, url, list(events), description, salt)
    return Webhook.from_row(row)


async def list_webhooks(connection: asyncpg.Connection, organization_id: UUID) -> list[Webhook]:
    return [Webhook.from_row(row) for row in await connection.fetch(LIST_WEBHOOKS, organization_id)]


async def read_webhook(
    connection: asyncpg.Connection, organization_id: UUID, webhook_id: UUID
) -> Webhook | None:
    row = await connection.fetchrow(READ_WEBHOOK, organization_id, webhook_id)
    return None if row is None else Webhook.from_row(row)


async def change_webhook(
    connection: asyncpg.Connection, statement: str, organization_id: UUID, webhook_id: UUID, *args: object
) -> Webhook | None:
    """Run one of ROTATE_SECRET, ENABLE_WEBHOOK, DISABLE_WEBHOOK, UPDATE_WEBHOOK; None if there
    is no such endpoint."""
    row = await connection.fetchrow(statement, organization_id, webhook_id, *args)
    return None if row is None else Webhook.from_row(row)


async def delete_webhook(connection: asyncpg.Connection, organization_id: UUID, webhook_id: UUID) -> bool:
    return await connection.fetchval(DELETE_WEBHOOK, organization_id, webhook_id) is not None


async def list_deliveries(
    connection: asyncpg.Connection,
    organization_id: UUID,
    webhook_id: UUID,
    *,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[WebhookDelivery]:
    at, delivery_id = before if before is not None else (None, None)
    rows = await connection.fetch(LIST_DELIVERIES, organization_id, webhook_id, at, delivery_id, limit)
    return [WebhookDelivery.from_row(row) for row in rows]


async def delivery_endpoint_enabled(
    connection: asyncpg.Connection, organization_id: UUID, delivery_id: UUID
) -> bool | None:
    """Whether the webhook delivery's endpoint is enabled (held so to the transaction's end);
    None if there is no such webhook delivery."""
    enabled: bool | None = await connection.fetchval(ENDPOINT_OF_DELIVERY, organization_id, delivery_id)
    return enabled


async def redeliver(
    connection: asyncpg.Connection, organization_id: UUID, delivery_id: UUID
) -> WebhookDelivery:
    """The delivery made pending again, due now (check its endpoint first)."""
    return WebhookDelivery.from_row(await connection.fetchrow(REDELIVER, organization_id, delivery_id))
