"""The sweep's part in notifications: every organization with deliveries due and not sent (a
cue lost with Redis, a worker killed mid-send, a retry whose time came) gets a delivery run."""

from __future__ import annotations

from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue

#: Organizations sent a run per sweep at most (the most overdue first); the next sweep goes on.
ORGANIZATIONS_PER_SWEEP = 200

DUE_ORGANIZATIONS = "SELECT organization_id FROM organizations_with_due_notifications($1)"


async def enqueue_due(database: Database, queue: JobQueue) -> int:
    """Queue a delivery run for each organization with something due; how many were queued (a
    run already queued for an organization is not queued twice)."""
    async with database.unscoped() as connection:
        rows = await connection.fetch(DUE_ORGANIZATIONS, ORGANIZATIONS_PER_SWEEP)
    queued = 0
    for row in rows:
        queued += await queue.enqueue_notifications(row["organization_id"], "sweep")
    return queued
