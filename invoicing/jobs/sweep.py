"""The sweep: recover from PostgreSQL whatever Redis lost or a dead worker left behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from invoicing.domain.job_states import JobStatus
from invoicing.domain.retries import WORKER_CRASHED, RetryPolicy
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import events, leases
from invoicing.jobs.leases import EnqueueTicket
from invoicing.kernel.json_schema import COUNT, closed_object
from invoicing.kernel.settings import Settings

logger = logging.getLogger(__name__)

#: Beyond twice ``statement_timeout``, what a statement may run before the sweep ends its session.
RUNAWAY_GRACE_SECONDS = 5.0

CRASH_MESSAGE = "Its worker stopped renewing the lease (crashed, killed or frozen)."


@dataclass(frozen=True, slots=True)
class SweepResult:
    enqueued: int
    resumed: int
    failed: int
    skipped: bool = False

    def to_json(self) -> dict[str, int]:
        return {"enqueued": self.enqueued, "resumed": self.resumed, "failed": self.failed}


#: What ``SweepResult.to_json`` writes (an admin's "process pending", the CLI's answer).
SWEEP_RESULT_SCHEMA = closed_object({"enqueued": COUNT, "resumed": COUNT, "failed": COUNT})


async def sweep(
    database: Database, queue: JobQueue, settings: Settings, organization_id: UUID | None = None
) -> SweepResult:
    """Take back jobs whose worker stopped (failing those that keep stopping at the same
    place), and make sure every job that may run has a message in the queue.

    With ``organization_id`` (an admin's "process pending"), only that organization's jobs are
    touched and counted; ending lapsed workers' sessions, which spans organizations, is left
    to the workers' own sweeps.

    Safe to run from several places at once (every worker, the CLI, the admin API):
    an advisory lock lets one run and the others return at once with ``skipped``. It never
    waits on a job another transaction holds (a frozen worker's commit, say): it skips that
    one, handles every other job, and the next sweep comes back to it.
    """
    if organization_id is None:
        await _end_lapsed_sessions(database, settings)
        await _end_runaway_statements(database, settings)
    policy = RetryPolicy.from_settings(settings)
    found: list[tuple[UUID, list[leases.PartKey], list[UUID]]] = []
    runnable: list[EnqueueTicket] = []
    async with database.unscoped() as connection:
        if not await leases.try_sweep_lock(connection):
            return SweepResult(0, 0, 0, skipped=True)
        visited = [organization_id] if organization_id else await leases.active_organizations(connection)
        for organization in visited:
            await database.act_in(connection, organization)
            parts = await leases.crashed_parts(connection, organization)
            cancels = await leases.cancels_left_behind(connection, organization)
            found.append((organization, parts, cancels))
            runnable += await leases.runnable_jobs(
                connection, settings.sweep_pending_after_seconds, organization
            )
    # Each part and job is settled in a transaction of its own (see leases.CRASHED_PARTS),
    # after the lock's: each checks again that it is still to do, so a sweep running meanwhile
    # does nothing twice, and one that fails costs only itself.
    crashed: list[leases.FailureOutcome] = []
    for organization, parts, cancels in found:
        crashed += await _settle_crashed(database, organization, parts, policy)
        crashed += await _end_cancels_left_behind(database, organization, cancels)
        await _drop_leftover_parts(database, organization)
    failed = 0
    resumed = 0
    for outcome in crashed:
        await events.publish(queue, outcome.job)
        if outcome.job.status is JobStatus.cancelled:
            logger.info("job %s cancelled (its workers stopped after the cancel was asked)", outcome.job.id)
        elif outcome.ticket is None:
            failed += 1
            logger.warning("job %s failed: its workers kept stopping at the same place", outcome.job.id)
        else:
            resumed += await queue.enqueue(
                outcome.ticket.job_id, outcome.ticket.generation, delay=outcome.ticket.delay
            )
    enqueued = 0
    for ticket in runnable:
        enqueued += await _ensure_queued(database, queue, ticket)
    if failed or resumed or enqueued:
        logger.info("sweep: enqueued %d, resumed %d, failed %d", enqueued, resumed, failed)
    return SweepResult(enqueued=enqueued, resumed=resumed, failed=failed)


async def _settle_crashed(
    database: Database, organization_id: UUID, parts: list[leases.PartKey], policy: RetryPolicy
) -> list[leases.FailureOutcome]:
    """Each crashed part in a transaction of its own."""
    outcomes = []
    for part in parts:
        try:
            async with database.scoped(organization_id) as connection:
                outcome = await leases.settle_crashed_part(
                    connection, part, policy, WORKER_CRASHED, CRASH_MESSAGE
                )
        except asyncpg.PostgresError as exc:
            logger.warning(
                "sweep: part %d of job %s not taken back now (%s)", part.first_position, part.job_id, exc
            )
            continue
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


async def _end_cancels_left_behind(
    database: Database, organization_id: UUID, job_ids: list[UUID]
) -> list[leases.FailureOutcome]:
    """Jobs whose cancel was asked and that nobody holds a part of any more: cancelled now."""
    outcomes = []
    for job_id in job_ids:
        try:
            async with database.scoped(organization_id) as connection:
                cancelled = await leases.cancel_left_behind(connection, job_id)
        except asyncpg.PostgresError as exc:
            logger.warning("sweep: job %s not cancelled now (%s)", job_id, exc)
            continue
        if cancelled is not None:
            outcomes.append(leases.FailureOutcome(cancelled, None))
    return outcomes


async def _drop_leftover_parts(database: Database, organization_id: UUID) -> None:
    try:
        async with database.scoped(organization_id) as connection:
            await leases.drop_leftover_parts(connection, organization_id)
    except asyncpg.PostgresError as exc:
        logger.warning("sweep: leftover parts of organization %s not deleted now (%s)", organization_id, exc)


async def _end_lapsed_sessions(database: Database, settings: Settings) -> None:
    """End what frozen or cut-off workers still hold, so that their jobs can be taken back.

    Stuck means waiting on the client for half a lease: a live worker never leaves a
    transaction waiting that long (its statements wait at most the lock timeout), while a
    frozen one has, by the time its lease has run out, for nearly a whole lease.
    """
    try:
        async with database.unscoped() as connection:
            workers: set[str] = set()
            for organization_id in await leases.active_organizations(connection):
                await database.act_in(connection, organization_id)
                workers |= await leases.lapsed_workers(connection)
            ended = await leases.end_sessions_of(connection, workers, settings.lease_seconds / 2)
    except asyncpg.PostgresError as exc:
        # E.g. the workers connect as another database user, whose sessions this one may not end.
        logger.warning("sweep: could not end the sessions of lapsed workers: %s", exc)
        return
    if ended:
        logger.warning("sweep: ended %d open transactions of workers whose lease ran out", ended)


async def _end_runaway_statements(database: Database, settings: Settings) -> None:
    """End statements that outlived ``statement_timeout`` by far (twice it and 5 s more)."""
    if settings.db_statement_timeout_seconds <= 0:
        return
    try:
        async with database.unscoped() as connection:
            ended = await leases.end_runaway_statements(
                connection, 2 * settings.db_statement_timeout_seconds + RUNAWAY_GRACE_SECONDS
            )
    except asyncpg.PostgresError as exc:
        logger.warning("sweep: could not end runaway statements: %s", exc)
        return
    if ended:
        logger.warning("sweep: ended %d sessions whose statement ran far past statement_timeout", ended)


async def _ensure_queued(database: Database, queue: JobQueue, ticket: EnqueueTicket) -> bool:
    """Send the job a new message unless its current one is waiting in the queue."""
    waiting = await queue.is_waiting(ticket.job_id, ticket.generation)
    if waiting is None or waiting:
        return False  # Redis is down (the next sweep will see), or the message is there
    async with database.scoped(ticket.organization_id) as connection:
        fresh = await leases.new_generation(connection, ticket)
    if fresh is None:
        return False
    return await queue.enqueue(fresh.job_id, fresh.generation)
