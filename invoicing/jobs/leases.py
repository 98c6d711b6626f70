"""Who may process a job: claiming, renewing and handing back leases, and what the sweep reclaims.

A lease is ``lease_owner`` + ``lease_expires_at`` on a processing job. Its states:

* held: an owner, renewed by the worker's heartbeat;
* handed back: no owner, ``lease_expires_at`` is when the job may run again (now for a clean
  stop, later after a failure: the backoff);
* expired with an owner: the worker crashed or froze. Only the sweep takes such a job back
  (counting the failure), so a job that kills its workers cannot be claimed forever uncounted.

No statement here waits on a row another transaction holds for long: the sweep skips locked
rows, and the others touch one job row under the session's ``lock_timeout``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.job_states import JobStatus
from invoicing.domain.retries import JOB_FAILED, RetryPolicy, final_message
from invoicing.jobs import progress
from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob

# The best runnable jobs across organizations (migrations/0012_job_priorities.sql): by priority
# class (low work aged), then the organization served least recently, then the oldest job.
NEXT_RUNNABLE_JOBS = "SELECT job_id, organization_id FROM next_runnable_jobs($1, $2)"

# A claim is the organization's turn: its next job waits behind other organizations' jobs of
# the same class.
RECORD_TURN = """
INSERT INTO organization_turns (organization_id, last_claimed_at) VALUES ($1, now())
ON CONFLICT (organization_id) DO UPDATE SET last_claimed_at = excluded.last_claimed_at
"""

# The row lock makes two claims of the same job serialize; the second finds nothing to update.
CLAIM_JOB = f"""
UPDATE batch_job_queue
SET status = 'processing',
    lease_owner = $2,
    lease_expires_at = now() + make_interval(secs => $3),
    started_at = coalesce(started_at, now()),
    attempts = attempts + 1,
    claimed_progress = processed_items + cancelled_items,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1
  AND (status = 'pending'
       OR (status = 'processing' AND lease_owner IS NULL AND lease_expires_at <= now()))
RETURNING {JOB}
"""

# The heartbeat, and a worker taking its job up again after the database came back: only the
# owner, and only while the sweep has not taken the job away.
RENEW_OWN_LEASE = f"""
UPDATE batch_job_queue
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
RETURNING {JOB}
"""

# A worker that stops on purpose (shutdown, lost Redis) gives the job back at once, uncounted.
# If the run got past where earlier runs failed, that count starts again.
RELEASE_JOB = """
UPDATE batch_job_queue
SET lease_owner = NULL, lease_expires_at = now(), enqueue_generation = enqueue_generation + 1,
    stalled_attempts = CASE WHEN processed_items + cancelled_items > claimed_progress
                            THEN 0 ELSE stalled_attempts END,
    updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
RETURNING id, organization_id, enqueue_generation
"""

# The failing run's job, locked: was there progress since it was claimed?
OWN_FAILING_JOB = """
SELECT id, stalled_attempts, cancel_requested,
       processed_items + cancelled_items > claimed_progress AS progressed
FROM batch_job_queue
WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
FOR UPDATE
"""

# Jobs whose worker stopped renewing: crashed, killed or frozen. Rows another transaction
# holds (a frozen worker's commit) are skipped, for the next sweep.
CRASHED_JOBS = """
SELECT id, stalled_attempts, cancel_requested,
       processed_items + cancelled_items > claimed_progress AS progressed
FROM batch_job_queue
WHERE status = 'processing' AND lease_owner IS NOT NULL AND lease_expires_at < now()
  AND organization_id = $1
ORDER BY lease_expires_at
FOR UPDATE SKIP LOCKED
"""

HAND_BACK_AFTER_FAILURE = f"""
UPDATE batch_job_queue
SET lease_owner = NULL,
    lease_expires_at = now() + make_interval(secs => $2),
    stalled_attempts = $3,
    last_error_code = $4,
    last_error_message = $5,
    enqueue_generation = enqueue_generation + 1,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1
RETURNING {JOB}
"""

GIVE_UP_JOB = f"""
WITH abandoned AS (
    UPDATE batch_job_items
    SET status = 'failed', error_code = $2, error_message = $3, processed_at = now()
    WHERE job_id = $1 AND status = 'pending'
    RETURNING 1
), abandoned_count AS (
    SELECT count(*)::int AS n FROM abandoned
)
UPDATE batch_job_queue
SET status = 'failed',
    completed_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL,
    processed_items = processed_items + abandoned_count.n,
    failed_items = failed_items + abandoned_count.n,
    stalled_attempts = $4,
    last_error_code = $5,
    last_error_message = $6,
    errors = errors || jsonb_build_array(jsonb_build_object('code', $5::text, 'message', $7::text)),
    progress_seq = progress_seq + 1,
    updated_at = now()
FROM abandoned_count
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# Jobs that should be waiting in the queue: pending for a while, or handed back and due. The
# sweep checks each one's arq message and sends a new one where it is missing or stuck.
RUNNABLE_JOBS = """
SELECT id, organization_id, enqueue_generation FROM batch_job_queue
WHERE ((status = 'pending' AND created_at < now() - make_interval(secs => $1))
       OR (status = 'processing' AND lease_owner IS NULL AND lease_expires_at <= now()))
  AND organization_id = $2
ORDER BY created_at
"""

# A fresh arq id for a job nobody holds: arq refuses an id it still knows, even one whose
# worker died before claiming it (its in-progress key lives for a day).
NEW_GENERATION = """
UPDATE batch_job_queue AS job
SET enqueue_generation = job.enqueue_generation + 1
FROM (
    SELECT id FROM batch_job_queue
    WHERE id = $1 AND enqueue_generation = $2
      AND (status = 'pending' OR (status = 'processing' AND lease_owner IS NULL))
    FOR UPDATE SKIP LOCKED
) AS due
WHERE job.id = due.id
RETURNING job.id, job.organization_id, job.enqueue_generation
"""

# The worker processes whose lease on some job ran out while they still held it: crashed,
# frozen (SIGSTOP, a VM pause) or cut off.
LAPSED_WORKERS = """
SELECT DISTINCT split_part(lease_owner, '/', 1) AS worker_id FROM batch_job_queue
WHERE status = 'processing' AND lease_owner IS NOT NULL AND lease_expires_at < now()
"""

# Their sessions stuck inside a transaction: waiting for the client (the rest of a COPY, the
# next statement) for longer than $2 seconds. PostgreSQL's own limits do not end all of those:
# a backend waiting for the rest of a COPY from a frozen client is past statement_timeout's
# reach and not idle, so it would keep its locks (the job row, the organization's number
# counter, orders) for as long as the process stays frozen. Ending the session rolls back its
# transaction; the process, should it wake, finds its lease gone and writes nothing. A session
# running a statement (a slow commit of a live worker) is left alone.
END_LAPSED_SESSIONS = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 1000)) AS ended
FROM pg_stat_activity
WHERE application_name = ANY($1::text[])
  AND xact_start IS NOT NULL
  AND ((state = 'active' AND wait_event = 'ClientRead') OR state LIKE 'idle in transaction%')
  AND state_change < now() - make_interval(secs => $2)
  AND pid <> pg_backend_pid()
"""

ACTIVE_ORGANIZATIONS = "SELECT organizations_with_active_jobs()"

# Statements of the application's login running long past statement_timeout: SQL that got
# onto a connection can lower its own timeout and swallow the cancel a client's timeout sends,
# and so hold its locks (an organization's submit lock, say) after asyncpg gave the connection
# up. Ending the session is the one thing it cannot catch. Not while the login is the tables'
# owner: migrations may rightly run long.
END_RUNAWAY_STATEMENTS = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 1000)) AS ended
FROM pg_stat_activity
WHERE usename = session_user AND datname = current_database() AND pid <> pg_backend_pid()
  AND state = 'active' AND query_start < now() - make_interval(secs => $1)
  AND session_user <> (SELECT tableowner FROM pg_tables WHERE schemaname = 'public'
                                                          AND tablename = 'invoices')
"""

SWEEP_LOCK_KEY = 7_240_315_002

#: PostgreSQL cuts application_name to 63 bytes.
_SESSION_NAME_BYTES = 63

ITEM_MESSAGE = "Not processed: the job stopped after repeated failures. Retry the job to invoice this order."


@dataclass(frozen=True, slots=True)
class EnqueueTicket:
    """A job to (re-)enqueue under its current generation's arq id, after ``delay`` seconds."""

    job_id: UUID
    organization_id: UUID
    generation: int
    delay: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> EnqueueTicket:
        return cls(row["id"], row["organization_id"], row["enqueue_generation"])


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """The job after a failed run: handed back (to enqueue) or failed for good."""

    job: BatchJob
    ticket: EnqueueTicket | None


@dataclass(frozen=True, slots=True)
class RunnableJob:
    job_id: UUID
    organization_id: UUID


async def next_runnable_job(connection: asyncpg.Connection, aging_seconds: float) -> RunnableJob | None:
    """The job a free worker should take now (None if none is runnable). Nothing is locked:
    claim it to take it, and choose again if the claim finds it taken."""
    row = await connection.fetchrow(NEXT_RUNNABLE_JOBS, aging_seconds, 1)
    return None if row is None else RunnableJob(row["job_id"], row["organization_id"])


async def claim_job(
    connection: asyncpg.Connection, job_id: UUID, owner: str, lease_seconds: float
) -> BatchJob | None:
    """The job, now ours, if it was runnable; the organization's turn is recorded with it."""
    row = await connection.fetchrow(CLAIM_JOB, job_id, owner, lease_seconds)
    if row is None:
        return None
    job = BatchJob.from_row(row)
    await connection.execute(RECORD_TURN, job.organization_id)
    return job


async def renew_own_lease(
    connection: asyncpg.Connection, job_id: UUID, owner: str, lease_seconds: float
) -> BatchJob | None:
    """The job, its lease renewed; None if it is no longer ours."""
    row = await connection.fetchrow(RENEW_OWN_LEASE, job_id, owner, lease_seconds)
    return None if row is None else BatchJob.from_row(row)


async def is_finished(connection: asyncpg.Connection, job_id: UUID) -> bool:
    status = await connection.fetchval("SELECT status FROM batch_job_queue WHERE id = $1", job_id)
    return status is not None and JobStatus(status).is_finished


async def release_job(connection: asyncpg.Connection, job_id: UUID, owner: str) -> EnqueueTicket | None:
    row = await connection.fetchrow(RELEASE_JOB, job_id, owner)
    return None if row is None else EnqueueTicket.from_row(row)


async def record_failed_run(
    connection: asyncpg.Connection, job_id: UUID, owner: str, policy: RetryPolicy, code: str, message: str
) -> FailureOutcome | None:
    """Hand the job back with a backoff, or fail it if it keeps failing at the same place.
    None if the job is no longer ours (the sweep took it, or it finished)."""
    row = await connection.fetchrow(OWN_FAILING_JOB, job_id, owner)
    return None if row is None else await _settle(connection, row, policy, code, message)


async def record_crashed_runs(
    connection: asyncpg.Connection,
    policy: RetryPolicy,
    code: str,
    message: str,
    organization_id: UUID,
) -> list[FailureOutcome]:
    """The sweep's part: every job of the organization whose worker stopped renewing its lease."""
    rows = await connection.fetch(CRASHED_JOBS, organization_id)
    return [await _settle(connection, row, policy, code, message) for row in rows]


async def _settle(
    connection: asyncpg.Connection, row: Any, policy: RetryPolicy, code: str, message: str
) -> FailureOutcome:
    if row["cancel_requested"]:
        # The user asked to stop it: that is what happens, not a retry nor a failure.
        return FailureOutcome(await progress.finish_cancelled(connection, row["id"]), None)
    # Jitter spreads retries out; it is not a secret.
    decision = policy.after_failure(
        row["stalled_attempts"], progressed=row["progressed"], jitter=random.random()
    )
    if decision.give_up:
        summary = final_message(code, message, decision.stalled_attempts)
        failed = await connection.fetchrow(
            GIVE_UP_JOB,
            row["id"],
            JOB_FAILED,
            ITEM_MESSAGE,
            decision.stalled_attempts,
            code,
            message,
            summary,
        )
        return FailureOutcome(BatchJob.from_row(failed), None)
    handed_back = BatchJob.from_row(
        await connection.fetchrow(
            HAND_BACK_AFTER_FAILURE,
            row["id"],
            decision.delay_seconds,
            decision.stalled_attempts,
            code,
            message,
        )
    )
    ticket = EnqueueTicket(
        handed_back.id, handed_back.organization_id, handed_back.enqueue_generation, decision.delay_seconds
    )
    return FailureOutcome(handed_back, ticket)


def worker_session_name(worker_id: str) -> str:
    """How a worker process's sessions name themselves (``application_name``). A worker id
    (``{random token}.{pid}@{host}``) tells processes apart by its first bytes, so cutting a
    long host name at 63 bytes keeps the names apart."""
    return f"invoicing worker {worker_id}".encode()[:_SESSION_NAME_BYTES].decode(errors="ignore")


async def active_organizations(connection: asyncpg.Connection) -> list[UUID]:
    """The organizations with a job not finished: what the sweep visits, one after another
    (``Database.act_in``), as the application role reads no organization's jobs without
    naming it."""
    return [row[0] for row in await connection.fetch(ACTIVE_ORGANIZATIONS)]


async def lapsed_workers(connection: asyncpg.Connection) -> set[str]:
    """The workers (of the organization in scope) whose lease on a job ran out while they held it."""
    return {row["worker_id"] for row in await connection.fetch(LAPSED_WORKERS)}


async def end_sessions_of(connection: asyncpg.Connection, workers: set[str], stuck_seconds: float) -> int:
    """End the transactions of ``workers`` stuck for ``stuck_seconds``; how many were ended."""
    if not workers:
        return 0
    names = [worker_session_name(worker_id) for worker_id in sorted(workers)]
    # Sessions belong to the role that logged in, which invoicing_app (what this transaction
    # acts as) has no rights over: PostgreSQL would hide their state and refuse to end them.
    # Back to the login role for this: the runtime role is no stronger than invoicing_app.
    await connection.execute("SET LOCAL ROLE NONE")
    return int(await connection.fetchval(END_LAPSED_SESSIONS, names, stuck_seconds))


async def end_runaway_statements(connection: asyncpg.Connection, longest_seconds: float) -> int:
    """End the sessions of the application's login whose statement has run longer than
    ``longest_seconds``; how many were ended."""
    await connection.execute("SET LOCAL ROLE NONE")  # sessions belong to the login role
    return int(await connection.fetchval(END_RUNAWAY_STATEMENTS, longest_seconds))


async def try_sweep_lock(connection: asyncpg.Connection) -> bool:
    """Held until the transaction ends: one sweep at a time across every worker and CLI."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK_KEY))


async def runnable_jobs(
    connection: asyncpg.Connection, pending_after_seconds: float, organization_id: UUID
) -> list[EnqueueTicket]:
    """Jobs of the organization that may run and should have a queue message."""
    rows = await connection.fetch(RUNNABLE_JOBS, pending_after_seconds, organization_id)
    return [EnqueueTicket.from_row(row) for row in rows]


async def new_generation(connection: asyncpg.Connection, ticket: EnqueueTicket) -> EnqueueTicket | None:
    """The job under a fresh arq id; None if it moved on meanwhile (claimed, finished, locked)."""
    row = await connection.fetchrow(NEW_GENERATION, ticket.job_id, ticket.generation)
    return None if row is None else EnqueueTicket.from_row(row)
