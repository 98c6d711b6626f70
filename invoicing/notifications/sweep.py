"""The sweep's part in notifications: every organization with deliveries due and not sent (a
cue lost with Redis, a worker killed mid-send, a retry whose time came) gets a delivery run."""

from __future__ import annotations

import time

from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue

#: Organizations sent a run per sweep at most (the most overdue first); the next sweep goes on.
ORGANIZATIONS_PER_SWEEP = 200

DUE_ORGANIZATIONS = "SELECT organization_id FROM organizations_with_due_notifications($1)"


async def enqueue_due(database: Database, queue: JobQueue, round_seconds: float = 10.0) -> int:
    """Queue a delivery run for each organization with something due; how many were queued.

    A run is named after the sweep's round: the sweeps of every worker in one round queue it
    once, and a run whose worker died (arq keeps its name taken until that run's timeout
    has passed) does not stop the next round's."""
    async with database.unscoped() as connection:
        rows = await connection.fetch(DUE_ORGANIZATIONS, ORGANIZATIONS_PER_SWEEP)
    cause = f"sweep:{int(time.time() // max(round_seconds, 1.0))}"
    queued = 0
    for row in rows:
        queued += await queue.enqueue_notifications(row["organization_id"], cause)
    return queued
