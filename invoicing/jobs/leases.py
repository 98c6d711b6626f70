"""Who may process which part of a job: claiming, renewing and handing back part leases, and
what the sweep reclaims.

A job's items are cut into parts (``batch_job_parts``, ranges of positions, made at submit).
A free worker slot claims one part of the best runnable job; several slots can hold parts of
one job at once. A lease is ``lease_owner`` + ``lease_expires_at`` on a part. Its states:

* free: no owner; runnable from ``lease_expires_at`` (NULL: never claimed, at once; later after
  a failure: the backoff);
* held: an owner, renewed by the worker's heartbeat and by each of its chunks;
* expired with an owner: the worker crashed or froze. Only the sweep takes such a part back
  (counting the failure), so a part that kills its workers cannot be claimed forever uncounted.

A part is deleted once every item in it has its outcome, or once its job has finished.

No statement here waits on a row another transaction holds for long: the sweep skips locked
rows, the claim skips locked parts, and the others touch one part row and one job row under
the session's ``lock_timeout``. Every transaction takes a part row before the job row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.job_states import JobStatus
from invoicing.domain.retries import JOB_FAILED, RetryPolicy, final_message
from invoicing.jobs import progress, store
from invoicing.jobs.progress import PartRange
from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob

# The best runnable jobs across organizations (migrations/0013_job_parts.sql): by priority
# class (low work aged), then the organization served least recently, then the oldest job;
# only jobs with a free part and fewer held parts than $3 (0: no limit).
NEXT_RUNNABLE_JOBS = "SELECT job_id, organization_id FROM next_runnable_jobs($1, $2, $3)"

# The waiting job a slot should hand its part over to, if any (migrations/0013_job_parts.sql).
WORK_TO_TAKE_OVER = "SELECT job_id, organization_id FROM work_to_take_over($1, $2, $3)"

# A claim is the organization's turn: its next part waits behind other organizations' jobs of
# the same class.
RECORD_TURN = """
INSERT INTO organization_turns (organization_id, last_claimed_at) VALUES ($1, now())
ON CONFLICT (organization_id) DO UPDATE SET last_claimed_at = excluded.last_claimed_at
"""

# The job's first free part, ours now. A part another slot is claiming at this moment is
# skipped, not waited for.
CLAIM_PART = """
UPDATE batch_job_parts AS part
SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3), processed_since_claim = 0
FROM (
    SELECT job_id, first_position FROM batch_job_parts
    WHERE job_id = $1 AND lease_owner IS NULL
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
    ORDER BY first_position
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS free
WHERE part.job_id = free.job_id AND part.first_position = free.first_position
RETURNING part.first_position, part.last_position
"""

# The claim as the job sees it, in the same transaction, after the part's: the job row lock
# makes it wait for a cancel (it then finds the job finished, and the whole claim is undone).
# $2 caps the parts held at once (ours included); 0 is no limit. ``more_parts``: whether a
# free part is left for another slot.
CLAIM_JOB = f"""
UPDATE batch_job_queue
SET status = 'processing',
    started_at = coalesce(started_at, now()),
    attempts = attempts + 1,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1 AND status IN ('pending', 'processing') AND NOT cancel_requested
  AND ($2 <= 0 OR (SELECT count(*) FROM batch_job_parts AS held
                   WHERE held.job_id = $1 AND held.lease_owner IS NOT NULL
                     AND held.lease_expires_at > now()) <= $2)
RETURNING {JOB},
    EXISTS (SELECT 1 FROM batch_job_parts AS free
            WHERE free.job_id = $1 AND free.lease_owner IS NULL
              AND (free.lease_expires_at IS NULL OR free.lease_expires_at <= now())) AS more_parts
"""

# The heartbeat, and a worker taking its part up again after the database came back: only the
# owner, only while the sweep has not taken the part away and the job still runs.
RENEW_OWN_LEASE = """
UPDATE batch_job_parts AS part
SET lease_expires_at = now() + make_interval(secs => $4)
FROM batch_job_queue AS job
WHERE part.job_id = $1 AND part.first_position = $2 AND part.lease_owner = $3
  AND job.id = part.job_id AND job.status = 'processing'
RETURNING part.processed_since_claim
"""

# A worker that stops on purpose (shutdown, lost Redis) gives the part back at once, uncounted.
# If the run made progress, the count of failed runs starts again.
RELEASE_PART = """
UPDATE batch_job_parts
SET lease_owner = NULL, lease_expires_at = now(),
    stalled_attempts = CASE WHEN processed_since_claim > 0 THEN 0 ELSE stalled_attempts END
WHERE job_id = $1 AND first_position = $2 AND lease_owner = $3
RETURNING job_id
"""

# A part is back in the queue: a fresh message for it, and a new seq for its watchers (one
# worker fewer).
REQUEUE_JOB = f"""
UPDATE batch_job_queue
SET enqueue_generation = enqueue_generation + 1, progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# A job whose cancel was asked while a part was held waits for a holder's next chunk to end
# it. When the last holder goes without one (its part ended, was released or taken back),
# whoever lets go ends it: no slot takes a part of a job whose cancel was asked.
CANCEL_LEFT_BEHIND = """
SELECT cancel_requested
   AND NOT EXISTS (SELECT 1 FROM batch_job_parts WHERE job_id = $1 AND lease_owner IS NOT NULL)
FROM batch_job_queue WHERE id = $1 AND status = 'processing'
"""

# The sweep's backstop for the same: processing jobs of the organization whose cancel was
# asked and that no part holds (two holders letting go at once each saw the other).
CANCELS_LEFT_BEHIND = """
SELECT id FROM batch_job_queue AS job
WHERE organization_id = $1 AND status = 'processing' AND cancel_requested
  AND NOT EXISTS (SELECT 1 FROM batch_job_parts AS part
                  WHERE part.job_id = job.id AND part.lease_owner IS NOT NULL)
"""

# Our part is over: every item of it has its outcome, or the job finished. Never a part with
# a pending item of a job that runs: those items would have no part to run in.
DROP_OWN_PART = """
DELETE FROM batch_job_parts AS part
WHERE part.job_id = $1 AND part.first_position = $2 AND part.lease_owner = $3
  AND (NOT EXISTS (SELECT 1 FROM batch_job_items AS item
                   WHERE item.job_id = $1 AND item.status = 'pending'
                     AND item.position BETWEEN part.first_position AND part.last_position)
       OR EXISTS (SELECT 1 FROM batch_job_queue AS job
                  WHERE job.id = $1 AND job.status IN ('completed', 'failed', 'cancelled')))
"""

# One worker fewer on a job that goes on: its watchers see it.
JOB_CHANGED = f"""
UPDATE batch_job_queue SET progress_seq = progress_seq + 1, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# Whether a job still processing has nothing left: no part, no pending item. Reached only if
# the counters missed an item (never expected); closing the job beats leaving it open forever.
NOTHING_LEFT = """
SELECT NOT EXISTS (SELECT 1 FROM batch_job_parts WHERE job_id = $1)
   AND NOT EXISTS (SELECT 1 FROM batch_job_items WHERE job_id = $1 AND status = 'pending')
"""

# The failing run's part, locked, with what the job says: was there progress since the claim?
OWN_FAILING_PART = """
SELECT part.job_id, part.first_position, part.stalled_attempts,
       part.processed_since_claim > 0 AS progressed, job.cancel_requested, job.status AS job_status
FROM batch_job_parts AS part
JOIN batch_job_queue AS job ON job.id = part.job_id
WHERE part.job_id = $1 AND part.first_position = $2 AND part.lease_owner = $3
FOR UPDATE OF part
"""

# Parts whose worker stopped renewing: crashed, killed or frozen. Each is then settled in a
# transaction of its own (``CRASHED_PART``): one holding a job row it handed a part back to
# must not go on to fail the job's items, which a live part's chunk may hold while it waits for
# that row.
CRASHED_PARTS = """
SELECT job_id, first_position FROM batch_job_parts
WHERE organization_id = $1 AND lease_owner IS NOT NULL AND lease_expires_at < now()
ORDER BY lease_expires_at
"""

# One of them, locked, if it is still crashed; a row another transaction holds (a frozen
# worker's commit) is skipped, for the next sweep.
CRASHED_PART = """
SELECT part.job_id, part.first_position, part.stalled_attempts,
       part.processed_since_claim > 0 AS progressed, job.cancel_requested, job.status AS job_status
FROM batch_job_parts AS part
JOIN batch_job_queue AS job ON job.id = part.job_id
WHERE part.job_id = $1 AND part.first_position = $2
  AND part.lease_owner IS NOT NULL AND part.lease_expires_at < now()
FOR UPDATE OF part SKIP LOCKED
"""

HAND_BACK_PART = """
UPDATE batch_job_parts
SET lease_owner = NULL, lease_expires_at = now() + make_interval(secs => $3), stalled_attempts = $4
WHERE job_id = $1 AND first_position = $2
"""

NOTE_FAILED_RUN = f"""
UPDATE batch_job_queue
SET last_error_code = $2,
    last_error_message = $3,
    enqueue_generation = enqueue_generation + 1,
    progress_seq = progress_seq + 1,
    updated_at = now()
WHERE id = $1
RETURNING {JOB}
"""

DROP_PART = "DELETE FROM batch_job_parts WHERE job_id = $1 AND first_position = $2"

# Parts left behind by jobs that finished while a worker held them and then stopped (their
# owner deletes them itself when it can). Skips rows another transaction holds.
LEFTOVER_PARTS = """
DELETE FROM batch_job_parts AS part
WHERE (part.job_id, part.first_position) IN (
    SELECT leftover.job_id, leftover.first_position
    FROM batch_job_parts AS leftover
    JOIN batch_job_queue AS job ON job.id = leftover.job_id
    WHERE leftover.organization_id = $1
      AND job.status IN ('completed', 'failed', 'cancelled')
      AND (leftover.lease_owner IS NULL OR leftover.lease_expires_at < now())
    FOR UPDATE OF leftover SKIP LOCKED
)
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
    processed_items = processed_items + abandoned_count.n,
    failed_items = failed_items + abandoned_count.n,
    last_error_code = $4,
    last_error_message = $5,
    errors = errors || jsonb_build_array(jsonb_build_object('code', $4::text, 'message', $6::text)),
    progress_seq = progress_seq + 1,
    updated_at = now()
FROM abandoned_count
WHERE id = $1 AND status = 'processing'
RETURNING {JOB}
"""

# Jobs that should be waiting in the queue: pending for a while, or processing with a part
# handed back and due. The sweep checks each one's arq message and sends a new one where it is
# missing or stuck.
RUNNABLE_JOBS = """
SELECT id, organization_id, enqueue_generation FROM batch_job_queue AS job
WHERE job.organization_id = $2 AND NOT job.cancel_requested
  AND ((job.status = 'pending' AND job.created_at < now() - make_interval(secs => $1))
       OR (job.status = 'processing' AND EXISTS (
               SELECT 1 FROM batch_job_parts AS part
               WHERE part.job_id = job.id AND part.lease_owner IS NULL
                 AND (part.lease_expires_at IS NULL OR part.lease_expires_at <= now()))))
ORDER BY job.created_at
"""

# A fresh arq id for a job with a free part: arq refuses an id it still knows, even one whose
# worker died before claiming it (its in-progress key lives for a day).
NEW_GENERATION = """
UPDATE batch_job_queue AS job
SET enqueue_generation = job.enqueue_generation + 1
FROM (
    SELECT id FROM batch_job_queue AS waiting
    WHERE id = $1 AND enqueue_generation = $2 AND status IN ('pending', 'processing')
      AND EXISTS (SELECT 1 FROM batch_job_parts AS part
                  WHERE part.job_id = waiting.id AND part.lease_owner IS NULL)
    FOR UPDATE SKIP LOCKED
) AS due
WHERE job.id = due.id
RETURNING job.id, job.organization_id, job.enqueue_generation
"""

# The worker processes whose lease on some part ran out while they still held it: crashed,
# frozen (SIGSTOP, a VM pause) or cut off.
LAPSED_WORKERS = """
SELECT DISTINCT split_part(lease_owner, '/', 1) AS worker_id FROM batch_job_parts
WHERE lease_owner IS NOT NULL AND lease_expires_at < now()
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


@dataclass(frozen=True, slots=True)
class ClaimedPart:
    """A part now ours: the job as the claim left it, the part's range, whether another free
    part is left for another slot, and the owner the lease is under."""

    job: BatchJob
    part: PartRange
    more_parts: bool
    owner: str


class ClaimUndone(Exception):
    """The part was claimed but the job refused the claim (finished, cancel asked, or enough
    workers on it): raised to roll the claim's transaction back."""


#: Candidates a free slot reads at once (the function returns 16 at most).
CANDIDATES = 16


async def next_runnable_jobs(
    connection: asyncpg.Connection, aging_seconds: float, max_workers: int = 0, wanted: int = CANDIDATES
) -> list[RunnableJob]:
    """The jobs a free worker slot should take a part of now, best first. Nothing is locked:
    claim a part to take one; if another slot is claiming its last free part, try the next."""
    rows = await connection.fetch(NEXT_RUNNABLE_JOBS, aging_seconds, wanted, max_workers)
    return [RunnableJob(row["job_id"], row["organization_id"]) for row in rows]


async def work_to_take_over(
    connection: asyncpg.Connection, job_id: UUID, aging_seconds: float, max_workers: int = 0
) -> RunnableJob | None:
    """Waiting work that outranks the job's part now (a higher priority, or another
    organization that holds no part while the job's holds two or more), if any. Call in the
    job's organization scope. The slot claims a part of it, then hands its own part over."""
    row = await connection.fetchrow(WORK_TO_TAKE_OVER, job_id, aging_seconds, max_workers)
    return None if row is None else RunnableJob(row["job_id"], row["organization_id"])


async def claim_part(
    connection: asyncpg.Connection, job_id: UUID, owner: str, lease_seconds: float, max_workers: int = 0
) -> ClaimedPart | None:
    """A free part of the job, now ours, if the job may run one more; the organization's turn
    is recorded with it. Raises ``ClaimUndone`` when the part was taken but the job refused:
    the caller's transaction must roll back (None is returned only when nothing was written)."""
    part = await connection.fetchrow(CLAIM_PART, job_id, owner, lease_seconds)
    if part is None:
        return None
    await connection.execute(store.LOCK_JOB, job_id)  # see there: the count must see other claims
    row = await connection.fetchrow(CLAIM_JOB, job_id, max_workers)
    if row is None:
        raise ClaimUndone
    job = BatchJob.from_row(row)
    await connection.execute(RECORD_TURN, job.organization_id)
    return ClaimedPart(
        job, PartRange(part["first_position"], part["last_position"]), row["more_parts"], owner
    )


async def renew_own_lease(
    connection: asyncpg.Connection, job_id: UUID, part: PartRange, owner: str, lease_seconds: float
) -> int | None:
    """Renew our part's lease now: the items its chunks committed since the claim, or None if
    the part is no longer ours or the job no longer runs."""
    return await connection.fetchval(RENEW_OWN_LEASE, job_id, part.first, owner, lease_seconds)  # type: ignore[no-any-return]


async def is_finished(connection: asyncpg.Connection, job_id: UUID) -> bool:
    status = await connection.fetchval("SELECT status FROM batch_job_queue WHERE id = $1", job_id)
    return status is not None and JobStatus(status).is_finished


@dataclass(frozen=True, slots=True)
class Released:
    """A part given back: the job as its watchers should now see it, and the ticket to
    enqueue it under (None when the job is over: it was cancelled, say)."""

    job: BatchJob
    ticket: EnqueueTicket | None


async def release_part(
    connection: asyncpg.Connection, job_id: UUID, part: PartRange, owner: str
) -> Released | None:
    """Give our part back, uncounted (or end it, if nothing of it is left to do); None if it
    was not ours."""
    if await connection.execute(DROP_OWN_PART, job_id, part.first, owner) == "DELETE 1":
        return await _after_part_ended(connection, job_id)
    if await connection.fetchval(RELEASE_PART, job_id, part.first, owner) is None:
        return None
    cancelled = await cancel_left_behind(connection, job_id)
    if cancelled is not None:
        return Released(cancelled, None)
    row = await connection.fetchrow(REQUEUE_JOB, job_id)
    if row is None:
        return None
    job = BatchJob.from_row(row)
    return Released(job, EnqueueTicket(job.id, job.organization_id, job.enqueue_generation))


async def end_part(
    connection: asyncpg.Connection, job_id: UUID, part: PartRange, owner: str
) -> BatchJob | None:
    """Our part is over (every item of it has its outcome, or the job finished): delete it. The
    job as its watchers should now see it, if it still runs or this closed it; None otherwise
    (and when the part was not ours, or not over, to delete)."""
    if await connection.execute(DROP_OWN_PART, job_id, part.first, owner) != "DELETE 1":
        return None
    ended = await _after_part_ended(connection, job_id)
    return None if ended is None else ended.job


async def _after_part_ended(connection: asyncpg.Connection, job_id: UUID) -> Released | None:
    """A part was deleted: the job ends if that leaves a cancel without a holder or nothing to
    do; else its watchers see one worker fewer. Nothing to enqueue either way."""
    job = await cancel_left_behind(connection, job_id)
    if job is None and await connection.fetchval(NOTHING_LEFT, job_id):
        job = await progress.finish_completed(connection, job_id)
    if job is None:
        row = await connection.fetchrow(JOB_CHANGED, job_id)
        job = None if row is None else BatchJob.from_row(row)
    return None if job is None else Released(job, None)


async def cancel_left_behind(connection: asyncpg.Connection, job_id: UUID) -> BatchJob | None:
    """The job cancelled now if its cancel was asked and no part of it is held any more (see
    ``CANCEL_LEFT_BEHIND``); None if it goes on (or had finished)."""
    if not await connection.fetchval(CANCEL_LEFT_BEHIND, job_id):
        return None
    return await progress.finish_cancelled(connection, job_id)


async def cancels_left_behind(connection: asyncpg.Connection, organization_id: UUID) -> list[UUID]:
    """The organization's jobs whose cancel was asked and that nobody holds a part of."""
    return [row["id"] for row in await connection.fetch(CANCELS_LEFT_BEHIND, organization_id)]


async def record_failed_run(
    connection: asyncpg.Connection,
    job_id: UUID,
    part: PartRange,
    owner: str,
    policy: RetryPolicy,
    code: str,
    message: str,
) -> FailureOutcome | None:
    """Hand the part back with a backoff, or fail the job if the part keeps failing at the same
    place. None if the part is no longer ours (the sweep took it, or the job finished)."""
    row = await connection.fetchrow(OWN_FAILING_PART, job_id, part.first, owner)
    return None if row is None else await _settle(connection, row, policy, code, message)


@dataclass(frozen=True, slots=True)
class PartKey:
    job_id: UUID
    first_position: int


async def crashed_parts(connection: asyncpg.Connection, organization_id: UUID) -> list[PartKey]:
    """The organization's parts whose worker stopped renewing its lease (nothing locked)."""
    rows = await connection.fetch(CRASHED_PARTS, organization_id)
    return [PartKey(row["job_id"], row["first_position"]) for row in rows]


async def settle_crashed_part(
    connection: asyncpg.Connection, part: PartKey, policy: RetryPolicy, code: str, message: str
) -> FailureOutcome | None:
    """The sweep's part, for one crashed part, in a transaction of its own: hand it back with a
    backoff, fail the job if it keeps failing at the same place, end the job if its cancel was
    asked. None if there was nothing to do (taken meanwhile, locked, or the job over)."""
    row = await connection.fetchrow(CRASHED_PART, part.job_id, part.first_position)
    return None if row is None else await _settle(connection, row, policy, code, message)


async def drop_leftover_parts(connection: asyncpg.Connection, organization_id: UUID) -> None:
    """Delete the parts finished jobs of the organization left behind."""
    await connection.execute(LEFTOVER_PARTS, organization_id)


async def _settle(
    connection: asyncpg.Connection, row: Any, policy: RetryPolicy, code: str, message: str
) -> FailureOutcome | None:
    job_id, first_position = row["job_id"], row["first_position"]
    if JobStatus(row["job_status"]).is_finished:
        # Another part finished the job meanwhile: nothing of this one is left to run.
        await connection.execute(DROP_PART, job_id, first_position)
        return None
    if row["cancel_requested"]:
        # The user asked to stop it: that is what happens, not a retry nor a failure.
        await connection.execute(DROP_PART, job_id, first_position)
        cancelled = await progress.finish_cancelled(connection, job_id)
        return None if cancelled is None else FailureOutcome(cancelled, None)
    # Jitter spreads retries out; it is not a secret.
    decision = policy.after_failure(
        row["stalled_attempts"], progressed=row["progressed"], jitter=random.random()
    )
    if decision.give_up:
        summary = final_message(code, message, decision.stalled_attempts)
        await connection.execute(DROP_PART, job_id, first_position)
        failed = await connection.fetchrow(
            GIVE_UP_JOB, job_id, JOB_FAILED, ITEM_MESSAGE, code, message, summary
        )
        await store.drop_free_parts(connection, job_id)
        return None if failed is None else FailureOutcome(BatchJob.from_row(failed), None)
    await connection.execute(
        HAND_BACK_PART, job_id, first_position, decision.delay_seconds, decision.stalled_attempts
    )
    handed_back = BatchJob.from_row(await connection.fetchrow(NOTE_FAILED_RUN, job_id, code, message))
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
    """The workers (of the organization in scope) whose lease on a part ran out while they held it."""
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
    """Jobs of the organization with a part that may run, which should have a queue message."""
    rows = await connection.fetch(RUNNABLE_JOBS, pending_after_seconds, organization_id)
    return [EnqueueTicket.from_row(row) for row in rows]


async def new_generation(connection: asyncpg.Connection, ticket: EnqueueTicket) -> EnqueueTicket | None:
    """The job under a fresh arq id; None if it moved on meanwhile (claimed, finished, locked)."""
    row = await connection.fetchrow(NEW_GENERATION, ticket.job_id, ticket.generation)
    return None if row is None else EnqueueTicket.from_row(row)
