"""The worker's writes to a job it holds the lease on: one call each per chunk transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob

# Renewing the lease also proves we still own the job, and reads the cancel flag, in one trip.
RENEW_LEASE = """
UPDATE batch_job_queue
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
RETURNING organization_id, created_by, cancel_requested, jsonb_array_length(errors) AS error_count
"""

# Items are processed in position order, so the next chunk starts after the last one: the
# index range scan then skips the processed items, which stay in the partial index until
# vacuum (scanning from the start each time made a 100,000-item job quadratic).
NEXT_PENDING_ITEMS = """
SELECT position, order_id FROM batch_job_items
WHERE job_id = $1 AND status = 'pending' AND position > $3
ORDER BY position LIMIT $2
"""

# Whether any item is left once a pass over the job reached its end: orders that were locked
# elsewhere when their chunk came stay pending for the next pass.
HAS_PENDING_ITEMS = """
SELECT EXISTS (SELECT 1 FROM batch_job_items WHERE job_id = $1 AND status = 'pending')
"""

# One primary-key lookup per item (see invoicing/invoices/store.py on LATERAL ... OFFSET 0):
# with the statistics of a freshly submitted job, the planner otherwise read every pending
# item of the job for each chunk. Only a pending item moves to its outcome.
RECORD_ITEMS = """
UPDATE batch_job_items AS item
SET status = found.status, invoice_id = found.invoice_id, error_code = found.error_code,
    error_message = found.error_message, processed_at = now()
FROM (
    SELECT target.row_id, outcome.*
    FROM unnest($2::int[], $3::text[], $4::uuid[], $5::text[], $6::text[])
         AS outcome(position, status, invoice_id, error_code, error_message)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id FROM batch_job_items
        WHERE job_id = $1 AND position = outcome.position AND status = 'pending'
        OFFSET 0
    ) AS target
) AS found
WHERE item.ctid = found.row_id AND item.status = 'pending'
"""

# Counters and, when this chunk was the last one, the final state: one statement, one commit.
# Like every statement changing a status (invoicing/jobs/transitions.py), it names the status it
# moves from, although the lease check earlier in its transaction already proved it.
RECORD_PROGRESS = f"""
UPDATE batch_job_queue
SET processed_items = processed_items + $2,
    successful_items = successful_items + $3,
    failed_items = failed_items + $4,
    errors = errors || $5::jsonb,
    status = CASE WHEN processed_items + cancelled_items + $2 >= total_items THEN 'completed' ELSE status END,
    completed_at = CASE WHEN processed_items + cancelled_items + $2 >= total_items THEN now() END,
    lease_owner = CASE WHEN processed_items + cancelled_items + $2 >= total_items
                       THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN processed_items + cancelled_items + $2 >= total_items
                            THEN NULL ELSE lease_expires_at END,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

FINISH_CANCELLED = f"""
WITH cancelled AS (
    UPDATE batch_job_items SET status = 'cancelled', processed_at = now()
    WHERE job_id = $1 AND status = 'pending'
    RETURNING 1
)
UPDATE batch_job_queue
SET status = 'cancelled', completed_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    cancelled_items = cancelled_items + (SELECT count(*) FROM cancelled),
    progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# Reached only if the counters say work remains but no item is pending (never expected);
# closing the job beats leaving it processing forever.
FINISH_COMPLETED = f"""
UPDATE batch_job_queue
SET status = 'completed', completed_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""


@dataclass(frozen=True, slots=True)
class Lease:
    organization_id: UUID
    created_by: UUID
    cancel_requested: bool
    error_count: int


@dataclass(frozen=True, slots=True)
class ItemResult:
    position: int
    status: str
    invoice_id: UUID | None = None
    error_code: str | None = None
    error_message: str | None = None


async def renew_lease(
    connection: asyncpg.Connection, job_id: UUID, owner: str, seconds: float
) -> Lease | None:
    row = await connection.fetchrow(RENEW_LEASE, job_id, owner, seconds)
    return None if row is None else Lease(**dict(row))


async def next_pending_items(
    connection: asyncpg.Connection, job_id: UUID, limit: int, after_position: int = 0
) -> list[tuple[int, UUID]]:
    rows = await connection.fetch(NEXT_PENDING_ITEMS, job_id, limit, after_position)
    return [(row["position"], row["order_id"]) for row in rows]


async def has_pending_items(connection: asyncpg.Connection, job_id: UUID) -> bool:
    return bool(await connection.fetchval(HAS_PENDING_ITEMS, job_id))


class ItemsChanged(RuntimeError):
    """Some items of a chunk were no longer pending: its transaction must not commit."""


async def record_items(connection: asyncpg.Connection, job_id: UUID, results: Sequence[ItemResult]) -> None:
    """Move each item from pending to its outcome, once: an item already moved (which the
    job's single lease should make impossible) fails the whole chunk instead of counting twice."""
    status = await connection.execute(
        RECORD_ITEMS,
        job_id,
        [r.position for r in results],
        [r.status for r in results],
        [r.invoice_id for r in results],
        [r.error_code for r in results],
        [r.error_message for r in results],
    )
    if status != f"UPDATE {len(results)}":
        raise ItemsChanged(f"job {job_id}: {status} of {len(results)} items were still pending")


async def record_progress(
    connection: asyncpg.Connection,
    job_id: UUID,
    *,
    processed: int,
    succeeded: int,
    failed: int,
    new_errors: list[dict[str, Any]],
) -> BatchJob:
    row = await connection.fetchrow(RECORD_PROGRESS, job_id, processed, succeeded, failed, new_errors)
    return BatchJob.from_row(row)


async def finish_cancelled(connection: asyncpg.Connection, job_id: UUID) -> BatchJob:
    return BatchJob.from_row(await connection.fetchrow(FINISH_CANCELLED, job_id))


async def finish_completed(connection: asyncpg.Connection, job_id: UUID) -> BatchJob:
    return BatchJob.from_row(await connection.fetchrow(FINISH_COMPLETED, job_id))
