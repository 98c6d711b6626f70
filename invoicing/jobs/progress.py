"""The worker's writes to a job it holds the lease on: one call each per chunk transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.jobs import store
from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob

# Renewing the part's lease also proves we still own it and that the job still runs, reads the
# cancel flag, and counts the chunk's items as this claim's progress (rolled back with the
# chunk if it does not commit), in one trip. The job row is read, not locked: parts commit side
# by side and take the job row only for their counters, at the end.
RENEW_LEASE = """
UPDATE batch_job_parts AS part
SET lease_expires_at = now() + make_interval(secs => $4),
    processed_since_claim = part.processed_since_claim + $5
FROM batch_job_queue AS job
WHERE part.job_id = $1 AND part.first_position = $2 AND part.lease_owner = $3
  AND job.id = part.job_id AND job.status = 'processing'
RETURNING job.organization_id, job.created_by, job.cancel_requested,
          jsonb_array_length(job.errors) AS error_count
"""

# Items are processed in position order, so the next chunk starts after the last one: the
# index range scan then skips the processed items, which stay in the partial index until
# vacuum (scanning from the start each time made a 100,000-item job quadratic). A part reads
# only its own range.
NEXT_PENDING_ITEMS = """
SELECT position, order_id FROM batch_job_items
WHERE job_id = $1 AND status = 'pending' AND position > $3 AND position <= $4
ORDER BY position LIMIT $2
"""

# Whether any item of a range is left once a pass over it reached its end: orders that were
# locked elsewhere when their chunk came stay pending for the next pass.
HAS_PENDING_ITEMS = """
SELECT EXISTS (
    SELECT 1 FROM batch_job_items
    WHERE job_id = $1 AND status = 'pending' AND position BETWEEN $2 AND $3
)
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

# Counters and, when this chunk was the last one of the job (whichever part it belongs to), the
# final state: one statement, one commit.
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
SET status = 'cancelled', completed_at = now(),
    cancelled_items = cancelled_items + (SELECT count(*) FROM cancelled),
    progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# Reached only if the counters say work remains but no item is pending (never expected);
# closing the job beats leaving it processing forever.
FINISH_COMPLETED = f"""
UPDATE batch_job_queue
SET status = 'completed', completed_at = now(),
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


@dataclass(frozen=True, slots=True)
class PartRange:
    """The positions of a job's items that one part covers, first and last included."""

    first: int
    last: int


async def renew_lease(
    connection: asyncpg.Connection,
    job_id: UUID,
    part: PartRange,
    owner: str,
    seconds: float,
    *,
    processing: int = 0,
) -> Lease | None:
    """The lease renewed, ``processing`` items counted as the claim's progress; None if the part
    is no longer ours or the job no longer runs."""
    row = await connection.fetchrow(RENEW_LEASE, job_id, part.first, owner, seconds, processing)
    return None if row is None else Lease(**dict(row))


async def next_pending_items(
    connection: asyncpg.Connection, job_id: UUID, limit: int, after_position: int, last_position: int
) -> list[tuple[int, UUID]]:
    rows = await connection.fetch(NEXT_PENDING_ITEMS, job_id, limit, after_position, last_position)
    return [(row["position"], row["order_id"]) for row in rows]


async def has_pending_items(connection: asyncpg.Connection, job_id: UUID, first: int, last: int) -> bool:
    return bool(await connection.fetchval(HAS_PENDING_ITEMS, job_id, first, last))


class ItemsChanged(RuntimeError):
    """Some items of a chunk were no longer pending: its transaction must not commit."""


async def record_items(connection: asyncpg.Connection, job_id: UUID, results: Sequence[ItemResult]) -> None:
    """Move each item from pending to its outcome, once: an item already moved (parts never
    share an item; a cancel of the whole job committed meanwhile can) fails the whole chunk
    instead of counting twice."""
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


async def finish_cancelled(connection: asyncpg.Connection, job_id: UUID) -> BatchJob | None:
    """The job, cancelled now, its free parts deleted; None if it had already finished
    (another part got there first)."""
    row = await connection.fetchrow(FINISH_CANCELLED, job_id)
    if row is None:
        return None
    await store.drop_free_parts(connection, job_id)
    return BatchJob.from_row(row)


async def finish_completed(connection: asyncpg.Connection, job_id: UUID) -> BatchJob | None:
    row = await connection.fetchrow(FINISH_COMPLETED, job_id)
    return None if row is None else BatchJob.from_row(row)
