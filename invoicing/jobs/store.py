"""Batch jobs and their items: every database operation on them, named by intent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.job_states import JOB_TYPE_BULK_INVOICE, ItemStatus, JobStatus, Priority
from invoicing.infra.keyset import after_key
from invoicing.jobs.views import BatchJob, BatchJobItem
from invoicing.kernel.errors import Conflict, NotFound


def job_columns(table: str = "batch_job_queue") -> str:
    """A job row and what its JSON adds, for a SELECT list or a RETURNING clause: who started
    it (name, else email; NULL once they are no longer a member of the job's organization, which
    also holds where row-level security is off) and the job that retried it. Two key lookups
    per row (memberships and users by primary key, the unique index on ``retry_of``), and
    the parts of it held right now (a range of the parts' primary key)."""
    return f"""{table}.*,
    (SELECT coalesce(nullif(creator.name, ''), creator.email)
     FROM memberships membership JOIN users creator ON creator.id = membership.user_id
     WHERE membership.organization_id = {table}.organization_id
       AND membership.user_id = {table}.created_by) AS created_by_name,
    (SELECT retry.id FROM batch_job_queue retry
     WHERE retry.retry_of = {table}.id AND retry.organization_id = {table}.organization_id) AS retried_as,
    (SELECT count(*)::int FROM batch_job_parts part
     WHERE part.job_id = {table}.id AND {table}.status = 'processing'
       AND part.lease_owner IS NOT NULL AND part.lease_expires_at > now()) AS active_workers"""


JOB = job_columns()

INSERT_JOB = f"""
INSERT INTO batch_job_queue (organization_id, job_type, total_items, payload, created_by, retry_of, priority)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {JOB}
"""

# A job's place in the queue, while it has one (pending or processing) and it is a change.
SET_PRIORITY = f"""
UPDATE batch_job_queue
SET priority = $3, progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND organization_id = $2 AND status IN ('pending', 'processing') AND priority <> $3
RETURNING {JOB}
"""

# One statement for any number of items: the ids travel as one array parameter.
INSERT_ITEMS = """
INSERT INTO batch_job_items (job_id, position, order_id, organization_id)
SELECT $1, item.position, item.order_id, $3
FROM unnest($2::uuid[]) WITH ORDINALITY AS item(order_id, position)
"""

# The job's parts: consecutive ranges of ``$2`` positions (the last one shorter).
INSERT_PARTS = """
INSERT INTO batch_job_parts (job_id, first_position, last_position, organization_id)
SELECT $1, first, least(first + $2 - 1, $3), $4
FROM generate_series(1, $3, $2) AS first
"""

# The parts of a finished job that nobody holds. One a slot is claiming at this moment is
# skipped, not waited for (the claim, holding it, waits for the job row): that claim then finds
# the job finished and claims nothing, and the sweep deletes what is left.
DROP_FREE_PARTS = """
DELETE FROM batch_job_parts
WHERE (job_id, first_position) IN (
    SELECT job_id, first_position FROM batch_job_parts
    WHERE job_id = $1 AND lease_owner IS NULL
    FOR UPDATE SKIP LOCKED
)
"""

INSERT_AUDIT = """
INSERT INTO audit_log (organization_id, user_id, action, job_id, detail) VALUES ($1, $2, $3, $4, $5)
"""

# The order number is shown only for this organization's orders: a foreign id stays opaque.
LIST_ITEMS = """
SELECT item.*, o.number AS order_number, invoice.number AS invoice_number
FROM batch_job_items item
LEFT JOIN sales_orders o ON o.id = item.order_id AND o.organization_id = $5
LEFT JOIN invoices invoice ON invoice.id = item.invoice_id AND invoice.organization_id = $5
WHERE item.job_id = $1 AND item.position > $2 AND ($4::text IS NULL OR item.status = $4)
ORDER BY item.position
LIMIT $3
"""

SELECT_JOB = f"SELECT {JOB} FROM batch_job_queue WHERE id = $1 AND organization_id = $2"

# The job row, locked by a statement of its own, so that the next statement's snapshot sees
# every transaction that changed the job's parts before this one got the row: a claim that
# committed while a cancel waited for the row is then seen as a part held (the cancel is only
# flagged, and the part's chunk ends the job), and a claim counting held parts sees the others.
LOCK_JOB = "SELECT 1 FROM batch_job_queue WHERE id = $1 FOR NO KEY UPDATE"

# A job no worker holds a part of (pending, or every part handed back, waiting out a backoff)
# is cancelled at once; a running one is flagged and each worker holding a part stops before
# its next chunk. A part claimed while this runs cannot write: every chunk checks that the job
# is still processing, and a claim that finds the job cancelled claims nothing.
REQUEST_CANCEL = f"""
WITH held AS (
    SELECT EXISTS (SELECT 1 FROM batch_job_parts WHERE job_id = $1 AND lease_owner IS NOT NULL) AS any
)
UPDATE batch_job_queue
SET cancel_requested = true,
    cancel_requested_at = coalesce(cancel_requested_at, now()),
    cancelled_by = coalesce(cancelled_by, $3),
    status = CASE WHEN held.any THEN status ELSE 'cancelled' END,
    completed_at = CASE WHEN held.any THEN completed_at ELSE now() END,
    cancelled_items = CASE WHEN held.any THEN cancelled_items ELSE total_items - processed_items END,
    progress_seq = progress_seq + 1,
    updated_at = now()
FROM held
WHERE id = $1 AND organization_id = $2 AND status IN ('pending', 'processing')
RETURNING {JOB}
"""

# The orders of a finished job that got no invoice (failed, cancelled, or never reached) and
# still have none.
UNINVOICED_ORDER_IDS = """
SELECT item.order_id
FROM batch_job_items item
CROSS JOIN LATERAL (
    SELECT 1 FROM sales_orders o WHERE o.id = item.order_id AND o.invoice_id IS NULL OFFSET 0
) AS o
WHERE item.job_id = $1 AND item.status <> 'succeeded'
ORDER BY item.position
"""

CANCEL_PENDING_ITEMS = """
UPDATE batch_job_items SET status = 'cancelled', processed_at = now()
WHERE job_id = $1 AND status = 'pending'
"""


async def create_job(
    connection: asyncpg.Connection,
    *,
    organization_id: UUID,
    created_by: UUID,
    order_ids: Sequence[UUID],
    payload: dict[str, Any],
    retry_of: UUID | None = None,
    priority: Priority = Priority.normal,
    part_size: int,
) -> BatchJob:
    """Record a job, one pending item per order and its parts of ``part_size`` items. Call
    inside a transaction.

    A retry (``retry_of``) is audited on both jobs; a second retry of the same job is refused
    by the database's unique index, whichever request commits first wins.
    """
    try:
        row = await connection.fetchrow(
            INSERT_JOB,
            organization_id,
            JOB_TYPE_BULK_INVOICE,
            len(order_ids),
            payload,
            created_by,
            retry_of,
            priority.value,
        )
    except asyncpg.UniqueViolationError:
        raise _already_retried() from None
    job = BatchJob.from_row(row)
    await connection.execute(INSERT_ITEMS, job.id, list(order_ids), organization_id)
    await connection.execute(INSERT_PARTS, job.id, part_size, len(order_ids), organization_id)
    detail: dict[str, Any] = {"total_items": len(order_ids), "priority": priority.value}
    if retry_of is not None:
        detail["retry_of"] = str(retry_of)
        retried = {"retry_job_id": str(job.id), "total_items": len(order_ids)}
        await audit(connection, organization_id, retry_of, created_by, "job_retried", retried)
    await audit(connection, organization_id, job.id, created_by, "job_created", detail)
    return job


async def drop_free_parts(connection: asyncpg.Connection, job_id: UUID) -> None:
    """Delete the parts of a finished job that no worker holds (see ``DROP_FREE_PARTS``)."""
    await connection.execute(DROP_FREE_PARTS, job_id)


async def refuse_second_retry(connection: asyncpg.Connection, job_id: UUID) -> None:
    """Conflict ``already_retried`` if ``job_id`` has a retry (the unique index on retry_of
    decides between two that commit at once)."""
    if await connection.fetchval("SELECT 1 FROM batch_job_queue WHERE retry_of = $1", job_id):
        raise _already_retried()


def _already_retried() -> Conflict:
    return Conflict("The job was already retried; follow the retry job instead.", code="already_retried")


async def uninvoiced_order_ids(connection: asyncpg.Connection, job: BatchJob) -> list[UUID]:
    """The orders a retry of ``job`` would invoice again, in the job's order."""
    return [row["order_id"] for row in await connection.fetch(UNINVOICED_ORDER_IDS, job.id)]


async def audit(
    connection: asyncpg.Connection,
    organization_id: UUID,
    job_id: UUID,
    user_id: UUID | None,
    action: str,
    detail: dict[str, Any],
) -> None:
    await connection.execute(INSERT_AUDIT, organization_id, user_id, action, job_id, detail)


async def get_job(connection: asyncpg.Connection, organization_id: UUID, job_id: UUID) -> BatchJob:
    row = await connection.fetchrow(SELECT_JOB, job_id, organization_id)
    if row is None:
        raise NotFound.job()
    return BatchJob.from_row(row)


async def list_jobs(
    connection: asyncpg.Connection,
    organization_id: UUID,
    *,
    status: JobStatus | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[BatchJob]:
    """Newest first; ``after`` is the (created_at, id) of the last job of the previous page."""
    conditions = ["organization_id = $1"]
    values: list[Any] = [organization_id]
    if status is not None:
        values.append(status.value)
        conditions.append(f"status = ${len(values)}")
    if after is not None:
        conditions.append(after_key(("created_at", "id"), len(values) + 1, descending=True))
        values += after
    values.append(limit)
    query = f"""
        SELECT {JOB} FROM batch_job_queue WHERE {" AND ".join(conditions)}
        ORDER BY created_at DESC, id DESC LIMIT ${len(values)}
    """
    return [BatchJob.from_row(row) for row in await connection.fetch(query, *values)]


async def list_active_jobs(connection: asyncpg.Connection, organization_id: UUID) -> list[BatchJob]:
    """Pending and processing jobs, oldest first (what a live jobs page shows at the top)."""
    rows = await connection.fetch(
        f"""
        SELECT {JOB} FROM batch_job_queue
        WHERE organization_id = $1 AND status IN ('pending', 'processing')
        ORDER BY created_at, id
        LIMIT 200
        """,
        organization_id,
    )
    return [BatchJob.from_row(row) for row in rows]


async def list_items(
    connection: asyncpg.Connection,
    job: BatchJob,
    *,
    status: ItemStatus | None,
    limit: int,
    after_position: int | None,
) -> list[BatchJobItem]:
    status_value = None if status is None else status.value
    after = after_position or 0
    rows = await connection.fetch(LIST_ITEMS, job.id, after, limit, status_value, job.organization_id)
    return [BatchJobItem.from_row(row) for row in rows]


async def set_priority(
    connection: asyncpg.Connection, organization_id: UUID, job_id: UUID, user_id: UUID, priority: Priority
) -> BatchJob:
    """Move a pending or running job to ``priority``; Conflict ``job_finished`` once it ended.
    Asking for the priority it has changes nothing (no audit entry, no new ``seq``)."""
    row = await connection.fetchrow(SET_PRIORITY, job_id, organization_id, priority.value)
    if row is None:  # missing, finished, or already at that priority
        job = await get_job(connection, organization_id, job_id)
        if not job.is_finished:
            return job
        message = f"The job is already {job.status.value}; its priority no longer matters."
        raise Conflict(message, code="job_finished")
    job = BatchJob.from_row(row)
    await audit(
        connection, organization_id, job_id, user_id, "job_priority_changed", {"priority": priority.value}
    )
    return job


async def request_cancel(
    connection: asyncpg.Connection, organization_id: UUID, job_id: UUID, user_id: UUID
) -> BatchJob:
    """Cancel a pending job now, or ask its workers to stop; Conflict if it already finished."""
    await connection.execute(LOCK_JOB, job_id)
    row = await connection.fetchrow(REQUEST_CANCEL, job_id, organization_id, user_id)
    if row is None:
        job = await get_job(connection, organization_id, job_id)
        raise Conflict(f"The job is already {job.status.value}; it cannot be cancelled.", code="job_finished")
    job = BatchJob.from_row(row)
    if job.status is JobStatus.cancelled:
        await connection.execute(CANCEL_PENDING_ITEMS, job.id)
        await drop_free_parts(connection, job.id)
    await audit(
        connection, job.organization_id, job.id, user_id, "job_cancel_requested", {"status": job.status.value}
    )
    return job
