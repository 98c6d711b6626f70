"""Who may process a job: claiming, renewing and releasing leases, and what the sweep reclaims."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from invoicing.records import BatchJob

# Only a pending job, or a processing one whose worker stopped renewing, can be claimed; the
# row lock makes two claims of the same job serialize, and the second finds nothing to update.
CLAIM_JOB = """
UPDATE batch_job_queue
SET status = 'processing',
    lease_owner = $2,
    lease_expires_at = now() + make_interval(secs => $3),
    started_at = coalesce(started_at, now()),
    attempts = attempts + 1,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1
  AND (status = 'pending' OR (status = 'processing' AND lease_expires_at < now()))
RETURNING *
"""

# A worker that stops on purpose gives the job back at once and does not count as a crash.
RELEASE_JOB = """
UPDATE batch_job_queue
SET lease_owner = NULL, lease_expires_at = now(), attempts = greatest(attempts - 1, 0),
    enqueue_generation = enqueue_generation + 1, updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
RETURNING id, enqueue_generation
"""

SWEEP_LOCK_KEY = 7_240_315_002

FAIL_EXHAUSTED_JOBS = """
WITH exhausted AS (
    SELECT id FROM batch_job_queue
    WHERE status = 'processing' AND lease_expires_at < now() AND attempts >= $1
    FOR UPDATE SKIP LOCKED
), abandoned_items AS (
    UPDATE batch_job_items AS item
    SET status = 'failed', error_code = 'job_failed', error_message = $2, processed_at = now()
    FROM exhausted
    WHERE item.job_id = exhausted.id AND item.status = 'pending'
    RETURNING item.job_id
), counts AS (
    SELECT job_id, count(*) AS n FROM abandoned_items GROUP BY job_id
)
UPDATE batch_job_queue AS job
SET status = 'failed',
    completed_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL,
    processed_items = job.processed_items + coalesce(counts.n, 0),
    failed_items = job.failed_items + coalesce(counts.n, 0),
    errors = job.errors
             || jsonb_build_array(jsonb_build_object('code', 'worker_crashed', 'message', $3::text)),
    progress_seq = job.progress_seq + 1,
    updated_at = now()
FROM exhausted LEFT JOIN counts ON counts.job_id = exhausted.id
WHERE job.id = exhausted.id
RETURNING job.*
"""

RESUME_EXPIRED_JOBS = """
UPDATE batch_job_queue
SET enqueue_generation = enqueue_generation + 1, updated_at = now()
WHERE status = 'processing' AND lease_expires_at < now()
RETURNING id, enqueue_generation
"""

STALE_PENDING_JOBS = """
SELECT id, enqueue_generation FROM batch_job_queue
WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
ORDER BY created_at
"""


@dataclass(frozen=True, slots=True)
class EnqueueTicket:
    """A job to (re-)enqueue under its current generation's arq id."""

    job_id: UUID
    generation: int


async def claim_job(
    connection: asyncpg.Connection, job_id: UUID, owner: str, lease_seconds: float
) -> BatchJob | None:
    row = await connection.fetchrow(CLAIM_JOB, job_id, owner, lease_seconds)
    return None if row is None else BatchJob.from_row(row)


async def release_job(connection: asyncpg.Connection, job_id: UUID, owner: str) -> EnqueueTicket | None:
    row = await connection.fetchrow(RELEASE_JOB, job_id, owner)
    return None if row is None else EnqueueTicket(row["id"], row["enqueue_generation"])


async def try_sweep_lock(connection: asyncpg.Connection) -> bool:
    """Held until the transaction ends: one sweep at a time across every worker and CLI."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK_KEY))


async def fail_exhausted_jobs(connection: asyncpg.Connection, max_attempts: int) -> list[BatchJob]:
    message = f"The job stopped after its worker crashed {max_attempts} times; the rest was not invoiced."
    item_message = "Not processed: the job failed after repeated worker crashes. Submit this order again."
    rows = await connection.fetch(FAIL_EXHAUSTED_JOBS, max_attempts, item_message, message)
    return [BatchJob.from_row(row) for row in rows]


async def resume_expired_jobs(connection: asyncpg.Connection) -> list[EnqueueTicket]:
    return [
        EnqueueTicket(r["id"], r["enqueue_generation"]) for r in await connection.fetch(RESUME_EXPIRED_JOBS)
    ]


async def stale_pending_jobs(
    connection: asyncpg.Connection, older_than_seconds: float
) -> list[EnqueueTicket]:
    rows = await connection.fetch(STALE_PENDING_JOBS, older_than_seconds)
    return [EnqueueTicket(r["id"], r["enqueue_generation"]) for r in rows]
