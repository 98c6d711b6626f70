"""The outbox as the workers read and write it: claim what is due, learn what to send, record
how it went. The rows are written by the transaction that finishes a job (the trigger in
migrations/0014_notifications.sql); every statement here runs in the organization's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.notice_emails import FailureGroup
from invoicing.domain.notices import PING_EVENT

# Due deliveries, oldest due first; each is leased by moving its next attempt past the time a
# send may take, so that a worker that dies leaves it due again, and others skip it meanwhile.
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM notification_deliveries
    WHERE organization_id = $1 AND status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE notification_deliveries AS delivery
SET attempts = delivery.attempts + 1, next_attempt_at = now() + make_interval(secs => $3),
    claim_token = gen_random_uuid()
FROM due, notification_events AS event
WHERE delivery.id = due.id AND event.id = delivery.event_id
RETURNING delivery.id, delivery.event_id, delivery.channel, delivery.user_id, delivery.webhook_id,
          delivery.attempts, delivery.claim_token, event.type AS event_type, event.job_id, event.data,
          event.created_at AS event_created_at
"""

# Due again after every attempt was claimed: the last one's worker died before it recorded
# anything (a send that kills its worker must not be claimed forever).
GIVE_UP_CRASHED = """
UPDATE notification_deliveries
SET status = 'failed', last_error = 'worker_stopped: the last attempt''s worker stopped before it ended',
    claim_token = NULL
WHERE organization_id = $1 AND status = 'pending' AND next_attempt_at <= now() AND attempts >= $2
"""

# The body's data is fixed by the first delivery that renders it: every other one sends that.
FIX_EVENT_DATA = """
UPDATE notification_events SET data = coalesce(data, $3::jsonb)
WHERE organization_id = $1 AND id = $2
RETURNING data
"""

READ_ENDPOINT = """
SELECT url, enabled, secret_salt FROM webhook_endpoints WHERE organization_id = $1 AND id = $2
"""

# Whom an email goes to: a member of the organization (NULL once they left).
READ_RECIPIENT = """
SELECT u.email FROM users AS u
JOIN memberships AS m ON m.user_id = u.id AND m.organization_id = $1
WHERE u.id = $2
"""

# The failed orders of a job by reason, most frequent first, with a few order numbers each.
FAILURE_GROUPS = """
SELECT item.error_code AS code, min(item.error_message) AS message, count(*) AS count,
       (array_remove(array_agg(sales_order.number ORDER BY item.position), NULL))[1:$3] AS order_numbers
FROM batch_job_items AS item
-- An order deleted since (or never found) still counts, without a number.
LEFT JOIN sales_orders AS sales_order ON sales_order.id = item.order_id AND sales_order.organization_id = $1
WHERE item.job_id = $2 AND item.status = 'failed'
GROUP BY item.error_code
ORDER BY count(*) DESC, item.error_code
LIMIT $4
"""

# Each outcome applies only while the row is still this claim's.
RECORD_DELIVERED = """
UPDATE notification_deliveries
SET status = 'delivered', delivered_at = now(), last_status_code = $4, last_error = NULL, claim_token = NULL
WHERE organization_id = $1 AND id = $2 AND claim_token = $3 AND status = 'pending'
"""
RECORD_RETRY = """
UPDATE notification_deliveries
SET next_attempt_at = now() + make_interval(secs => $6), last_status_code = $4, last_error = $5,
    claim_token = NULL
WHERE organization_id = $1 AND id = $2 AND claim_token = $3 AND status = 'pending'
"""
RECORD_END = """
UPDATE notification_deliveries
SET status = $6, last_status_code = $4, last_error = $5, claim_token = NULL
WHERE organization_id = $1 AND id = $2 AND claim_token = $3 AND status = 'pending'
"""

# The endpoint's row is locked before its delivery's outcome is written: the order in which
# deleting an endpoint takes them (the endpoint, then its deliveries by cascade).
LOCK_ENDPOINT = """
SELECT 1 FROM webhook_endpoints WHERE organization_id = $1 AND id = $2 FOR NO KEY UPDATE
"""
ENDPOINT_SUCCEEDED = """
UPDATE webhook_endpoints SET failing_since = NULL
WHERE organization_id = $1 AND id = $2 AND failing_since IS NOT NULL
"""
# A failure starts the endpoint's failure clock (if it is not running yet).
ENDPOINT_FAILED = """
UPDATE webhook_endpoints SET failing_since = now()
WHERE organization_id = $1 AND id = $2 AND failing_since IS NULL
"""
# An endpoint failing for long enough ($3 seconds), or whose delivery just failed its every
# attempt ($4) while it was failing, is disabled; only the statement that disables it returns
# a row (the row is re-checked after any concurrent change), so its admins hear of it once.
DISABLE_FAILING = """
UPDATE webhook_endpoints
SET enabled = false, disabled_reason = 'failing'
WHERE organization_id = $1 AND id = $2 AND enabled AND failing_since IS NOT NULL
  AND ($4 OR failing_since <= now() - make_interval(secs => $3))
RETURNING url, description, failing_since
"""

# An endpoint disabled for failing: its administrators get an email each (one event).
ENDPOINT_DISABLED_EVENT = """
WITH event AS (
    INSERT INTO notification_events (organization_id, type, data)
    VALUES ($1, $3, $2::jsonb)
    RETURNING id
)
INSERT INTO notification_deliveries (organization_id, event_id, channel, user_id)
SELECT $1, event.id, 'email', member.user_id
FROM event, memberships AS member
WHERE member.organization_id = $1 AND member.role = 'admin'
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this worker may send now (its attempt is counted already)."""

    id: UUID
    event_id: UUID
    channel: str
    user_id: UUID | None
    webhook_id: UUID | None
    attempts: int
    claim_token: UUID
    event_type: str
    job_id: UUID | None
    data: dict[str, Any] | None
    event_created_at: datetime

    @property
    def is_test_call(self) -> bool:
        """An admin's ``webhook.ping``: sent once, and no sign of the endpoint's health."""
        return self.event_type == PING_EVENT

    @classmethod
    def from_row(cls, row: Any) -> Claimed:
        data = row["data"]
        return cls(
            row["id"],
            row["event_id"],
            row["channel"],
            row["user_id"],
            row["webhook_id"],
            row["attempts"],
            row["claim_token"],
            row["event_type"],
            row["job_id"],
            data,  # jsonb comes decoded (the pool's codec)
            row["event_created_at"],
        )


async def give_up_crashed(connection: asyncpg.Connection, organization_id: UUID, max_attempts: int) -> None:
    await connection.execute(GIVE_UP_CRASHED, organization_id, max_attempts)


async def claim_due(
    connection: asyncpg.Connection, organization_id: UUID, *, limit: int, lease_seconds: float
) -> list[Claimed]:
    rows = await connection.fetch(CLAIM_DUE, organization_id, limit, lease_seconds)
    return [Claimed.from_row(row) for row in rows]


async def fix_event_data(
    connection: asyncpg.Connection, organization_id: UUID, event_id: UUID, data: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = await connection.fetchval(FIX_EVENT_DATA, organization_id, event_id, data)
    return result


async def failure_groups(
    connection: asyncpg.Connection, organization_id: UUID, job_id: UUID, *, groups: int = 10, numbers: int = 5
) -> list[FailureGroup]:
    rows = await connection.fetch(FAILURE_GROUPS, organization_id, job_id, numbers, groups)
    return [
        FailureGroup(
            code=row["code"] or "unknown",
            message=row["message"] or "",
            count=row["count"],
            order_numbers=tuple(row["order_numbers"]),
        )
        for row in rows
    ]


async def record(
    connection: asyncpg.Connection,
    organization_id: UUID,
    claimed: Claimed,
    *,
    status: str,
    status_code: int | None = None,
    error: str | None = None,
    retry_in: float | None = None,
) -> None:
    """``delivered``; ``pending`` with ``retry_in`` seconds; or ``failed`` / ``skipped``."""
    key = (organization_id, claimed.id, claimed.claim_token)
    if status == "delivered":
        await connection.execute(RECORD_DELIVERED, *key, status_code)
    elif status == "pending":
        await connection.execute(RECORD_RETRY, *key, status_code, error, retry_in)
    else:
        await connection.execute(RECORD_END, *key, status_code, error, status)
