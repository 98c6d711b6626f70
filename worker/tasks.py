"""arq tasks. They take ids, re-read state from PostgreSQL and call the domain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from invoicing.domain.chunking import ChunkSizer
from invoicing.domain.retries import DATABASE_ERROR, INTERNAL_ERROR, RetryPolicy
from invoicing.infra.database import Database
from invoicing.infra.database_failures import database_reason, is_contention, is_unavailable
from invoicing.infra.queue import JobQueue
from invoicing.jobs import events, leases
from invoicing.jobs.chunks import ChunkOutcome
from invoicing.jobs.pipeline import JobRun, committed_chunks
from invoicing.jobs.progress import PartRange
from invoicing.kernel.settings import Settings
from invoicing.notifications.delivery import deliver_due

logger = logging.getLogger(__name__)

#: Pauses between probes of a database that went away: the first, and the longest.
FIRST_PROBE_PAUSE = 0.25
LONGEST_PROBE_PAUSE = 2.0
#: Pauses after running into another transaction (a lock timeout, a deadlock).
FIRST_CONTENTION_PAUSE = 0.5
LONGEST_CONTENTION_PAUSE = 4.0
#: Outages in a row, with no progress between them, after which the "outage" is taken for a
#: failure of the job (a connection error that is really a bug would otherwise loop forever).
MAX_OUTAGES_WITHOUT_PROGRESS = 10
#: Readings of the runnable jobs a free slot makes at most. A round finds nothing to claim
#: only when other slots took (or are taking) every candidate's free parts meanwhile, so slots
#: choosing at once each end with a part well before this bound; past it, the sweep offers
#: what is left again.
MAX_CHOICES = 8
#: How often, at most, a slot running a part looks for waiting work that outranks it: a small
#: job of another organization, or urgent work, then starts within about this and a chunk.
HANDOVER_CHECK_SECONDS = 0.25
#: What a run that gave its part over to waiting work returns.
HANDED_OVER = "handed over"


async def deliver_notifications(ctx: dict[str, Any], organization_id: str) -> int:
    """Send the organization's due notifications (emails, webhook calls); how many were tried.
    The outbox in PostgreSQL says what is due: a message only says where to look."""
    database, _, settings = _resources(ctx)
    return await deliver_due(database, settings, UUID(organization_id))


def _resources(ctx: dict[str, Any]) -> tuple[Database, JobQueue, Settings]:
    settings: Settings = ctx["settings"]
    return ctx["database"], JobQueue(ctx["redis"], settings), settings


async def process_batch_job(ctx: dict[str, Any], job_id: str) -> str:
    """A free slot's work: claim a part of the runnable job that should run next, invoice it
    chunk by chunk, then choose again, until nothing is runnable.

    A message is a free slot's cue, not an order: the slot takes a part of the best runnable job
    of any organization (``leases.next_runnable_jobs``: priority, then the organization served
    least recently, then the oldest job), whichever job the message names, and chooses again
    after each part, so that other work gets in between the parts of a long job. A claim that
    leaves free parts behind sends one more cue, so free slots (of this worker or another) join
    the job one after another. Safe to run twice (arq delivers at least once): a part is held by
    one lease at a time, and a message finding nothing runnable returns.
    """
    database, queue, settings = _resources(ctx)
    timer = _ChunkTimer(settings)
    parts = 0
    handed: leases.ClaimedPart | None = None
    claimed: leases.ClaimedPart | None
    while True:
        if handed is not None:
            # A part of waiting work this slot claimed while handing its last part over.
            claimed, handed = handed, None
        else:
            try:
                claimed = await claim_next(database, settings, _owner(ctx))
            except Exception as exc:
                if not (is_contention(exc) or is_unavailable(exc)):
                    raise
                # No database, or held by a transaction that is not ending: the sweep comes back.
                logger.warning("job %s: no part claimed now (%s); the sweep will offer it again", job_id, exc)
                return f"{parts} parts"
        if claimed is None:
            return f"{parts} parts" if parts else "not claimed"
        parts += 1
        handed = await _run_part(ctx, queue, settings, claimed, timer)


def _owner(ctx: dict[str, Any]) -> str:
    """A lease owner: the worker process's id and one claim's own suffix."""
    return f"{ctx['worker_id']}/{uuid4().hex[:8]}"


async def _run_part(
    ctx: dict[str, Any],
    queue: JobQueue,
    settings: Settings,
    claimed: leases.ClaimedPart,
    timer: _ChunkTimer,
) -> leases.ClaimedPart | None:
    """Run a claimed part to its end; the part of waiting work claimed to hand it over to, if
    the slot did."""
    job = claimed.job
    logger.info(
        "job %s: part %d-%d claimed by %s", job.id, claimed.part.first, claimed.part.last, claimed.owner
    )
    run = JobRun(
        ctx["database"],
        job.id,
        claimed.part,
        claimed.owner,
        job.organization_id,
        settings.lease_seconds,
        locked_order_wait=settings.locked_order_wait_seconds,
    )
    runner = _PartRunner(run, queue, settings, timer, ctx["worker_id"])
    try:
        await events.publish(queue, job)
        if claimed.more_parts:
            # Another free slot may join: one more cue, named after this claim.
            await queue.enqueue_cue(job.id, job.enqueue_generation, job.attempts)
        await runner.run()
        return runner.taking_over
    except asyncio.CancelledError:
        # Shutting down or Redis lost: hand the parts back now instead of leaving them until
        # their leases expire. Shielded, on its own task: this one is being cancelled.
        await asyncio.shield(asyncio.ensure_future(runner.release_all()))
        raise


async def claim_next(database: Database, settings: Settings, owner: str) -> leases.ClaimedPart | None:
    """A part of the best runnable job, claimed (None when nothing is runnable).

    The candidates come best first; a claim finds nothing when other slots are claiming the
    job's free parts at this moment (or took them), so the slot tries the next candidate, and
    reads them again once all were tried."""
    for _ in range(MAX_CHOICES):
        async with database.unscoped() as connection:
            candidates = await leases.next_runnable_jobs(
                connection, settings.priority_aging_seconds, settings.max_workers_per_job
            )
        if not candidates:
            return None
        for choice in candidates:
            claimed = await _claim(database, settings, choice.organization_id, choice.job_id, owner)
            if claimed is not None:
                return claimed
    return None


async def _claim(
    database: Database, settings: Settings, organization_id: UUID, job_id: UUID, owner: str
) -> leases.ClaimedPart | None:
    try:
        async with database.scoped(organization_id) as connection:
            return await leases.claim_part(
                connection, job_id, owner, settings.lease_seconds, settings.max_workers_per_job
            )
    except leases.ClaimUndone:
        return None  # rolled back: the job finished, was cancelled or has its workers
    except Exception as exc:
        if not is_contention(exc):
            raise
        # The job row is held (a cancel moving many items, say): try the next candidate.
        logger.info("job %s: not claimed now (%s)", job_id, exc)
        return None


class _PartRunner:
    """One claimed part until it ends, is taken away, or fails and is handed back."""

    def __init__(
        self, run: JobRun, queue: JobQueue, settings: Settings, timer: _ChunkTimer, worker_id: str
    ) -> None:
        self.job_run = run
        self.worker_id = worker_id
        self.queue = queue
        self.settings = settings
        self.timer = timer
        #: Items of the part committed since the claim, as of the database's last return.
        self.progress = 0
        #: When a chunk last committed (or the run started): contention is tolerated for a while.
        self.progressed_at = time.monotonic()
        # Long enough for the sweep to end what a frozen worker holds (its lease, then a sweep).
        self.contention_budget = 2 * settings.lease_seconds + settings.sweep_interval_seconds
        self.contention_pause = FIRST_CONTENTION_PAUSE
        #: A part of waiting work that outranks this one, claimed: no chunk of ours starts, our
        #: part is given back, and the slot runs that one next.
        self.taking_over: leases.ClaimedPart | None = None
        #: When waiting work was last looked for (jittered, so slots do not look at once).
        self.looked_at = time.monotonic() - random.random() * HANDOVER_CHECK_SECONDS

    def _keep_going(self) -> bool:
        return self.taking_over is None

    async def _look_for_waiting_work(self) -> None:
        """Between two chunks, at most every ``HANDOVER_CHECK_SECONDS``: does waiting work
        outrank this part (``leases.work_to_take_over``)? Then claim a part of it at once (the
        decision holds from then on: nobody else takes that work for it), let the chunk in
        flight commit and give our part back. A failed look or claim is no reason to stop."""
        if self.taking_over is not None or time.monotonic() - self.looked_at < HANDOVER_CHECK_SECONDS:
            return
        self.looked_at = time.monotonic()
        run, settings = self.job_run, self.settings
        try:
            async with run.database.scoped(run.organization_id) as connection:
                waiting = await leases.work_to_take_over(
                    connection, run.job_id, settings.priority_aging_seconds, settings.max_workers_per_job
                )
            if waiting is not None:
                owner = f"{self.worker_id}/{uuid4().hex[:8]}"
                self.taking_over = await _claim(
                    run.database, settings, waiting.organization_id, waiting.job_id, owner
                )
        except Exception as exc:
            logger.warning("job %s: could not look for waiting work (%s)", run.job_id, exc)

    async def run(self) -> str:
        """The run's attempts, under one heartbeat that lasts as long as the run; then, if the
        slot is handing over, our part given back (once the heartbeat has stopped: a renewal
        after the release would take the part for lost)."""
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(lost))
        try:
            result = await self._attempts(lost)
        finally:
            heartbeat.cancel()
            await asyncio.wait({heartbeat})
        if result == HANDED_OVER:
            await self.release()
            logger.info(
                "job %s: part %d handed over to waiting work", self.job_run.job_id, self.job_run.part.first
            )
        return result

    async def _attempts(self, lost: asyncio.Event) -> str:
        outages = 0
        while True:
            try:
                return await self._chunks_until_done(lost)
            except Exception as error:
                if is_contention(error) and time.monotonic() - self.progressed_at < self.contention_budget:
                    if not await self._pause_for_contention(error):
                        return "lease lost"
                    continue
                if not is_unavailable(error) or outages >= MAX_OUTAGES_WITHOUT_PROGRESS:
                    await self._record_failure(error)
                    return "failed run"
                logger.warning(
                    "job %s: the database went away (%s); waiting for it", self.job_run.job_id, error
                )
                try:
                    now = await self._take_back()
                except Exception as other:
                    await self._record_failure(other)
                    return "failed run"
                if now is None:
                    logger.warning("job %s: part taken over while the database was away", self.job_run.job_id)
                    return "lease lost"
                outages = 1 if now > self.progress else outages + 1
                self.progress = now
                logger.info("job %s: the database is back; carrying on", self.job_run.job_id)

    async def _pause_for_contention(self, error: Exception) -> bool:
        """Another transaction was in the way (a lock held by a worker that froze, which the
        sweep ends after its lease; a deadlock): not this job's failure. The chunks start again
        after a pause. The lease is renewed now, while the job row is free: the heartbeat's own
        renewals may all have met this run's commits waiting on that row. False if the job is
        no longer ours."""
        run = self.job_run
        logger.info("job %s: in another transaction's way (%s); trying again", run.job_id, error)
        await asyncio.sleep(self.contention_pause * (0.5 + random.random()))
        self.contention_pause = min(self.contention_pause * 2, LONGEST_CONTENTION_PAUSE)
        try:
            processed = await self._renew()
        except Exception as exc:
            logger.debug("job %s: lease not renewed after contention (%s)", run.job_id, exc)
            return True  # the next attempt meets the same trouble and handles it
        return processed is not None

    async def _chunks_until_done(self, lost: asyncio.Event) -> str:
        """One attempt at the chunks, until the job is done or the heartbeat finds it lost."""
        chunks = asyncio.create_task(self._chunks())
        lease_lost = asyncio.create_task(lost.wait())
        try:
            await asyncio.wait({chunks, lease_lost}, return_when=asyncio.FIRST_COMPLETED)
            if chunks.done():
                return chunks.result()
            logger.warning("job %s: lease lost to another worker (heartbeat); stopping", self.job_run.job_id)
            return "lease lost"
        finally:
            for task in (lease_lost, chunks):
                task.cancel()
            # The chunks' task gives its connections back before it ends (see committed_chunks).
            await asyncio.wait({lease_lost, chunks})

    async def _chunks(self) -> str:
        run = self.job_run
        timer = self.timer
        timer.restart()
        outcome = ChunkOutcome(job=None)
        keep_going = self._keep_going
        async with contextlib.aclosing(committed_chunks(run, timer.next_size, keep_going)) as chunks:
            async for outcome in chunks:
                if outcome.job is not None:
                    self.progressed_at = time.monotonic()
                    self.contention_pause = FIRST_CONTENTION_PAUSE
                    await events.publish(self.queue, outcome.job)
                timer.committed(outcome.counter_wait)
                if not outcome.done:
                    await self._look_for_waiting_work()
        if self.taking_over is not None and not outcome.done:
            return HANDED_OVER
        # Deletes the part if it is over or its job finished; one taken back stays its new owner's.
        async with run.database.scoped(run.organization_id) as connection:
            job = await leases.end_part(connection, run.job_id, run.part, run.owner)
        if job is not None:
            await events.publish(self.queue, job)
        if outcome.lease_lost or not outcome.done:
            logger.warning(
                "job %s: part %d taken back, or its job ended elsewhere; stopping", run.job_id, run.part.first
            )
            return "lease lost"
        if outcome.job is not None and outcome.job.is_finished:
            logger.info("job %s %s", run.job_id, outcome.job.status.value)
            return outcome.job.status.value
        if job is not None and job.is_finished:
            logger.info("job %s %s", run.job_id, job.status.value)
            return job.status.value
        return "part done"

    async def _heartbeat(self, lost: asyncio.Event) -> None:
        """Renew the lease on its own, every third of it: a slow chunk (or a pass waiting for
        locked orders) is not a dead worker. Stops the run as soon as the job is not ours."""
        run = self.job_run
        while True:
            await asyncio.sleep(run.lease_seconds / 3)
            try:
                processed = await self._renew()
            except asyncpg.LockNotAvailableError:
                continue  # a chunk of ours is committing: it renews the lease itself
            except Exception as exc:
                logger.debug("job %s: heartbeat missed (%s)", run.job_id, exc)
                continue  # the run meets the same trouble and handles it
            if processed is None:
                if not await self._finished():
                    lost.set()  # someone else's now: the run stops at once
                return

    async def _renew(self) -> int | None:
        """Renew our lease now; the items committed since the claim, or None if the part is no
        longer ours (or the job no longer runs)."""
        run = self.job_run
        async with run.database.scoped(run.organization_id) as connection:
            return await leases.renew_own_lease(
                connection, run.job_id, run.part, run.owner, run.lease_seconds
            )

    async def _finished(self) -> bool:
        """Whether the job is over (its last chunk cleared the lease just now), as opposed to
        taken over; unknown counts as taken over."""
        try:
            async with self.job_run.database.scoped(self.job_run.organization_id) as connection:
                return await leases.is_finished(connection, self.job_run.job_id)
        except Exception:
            return False

    async def _take_back(self) -> int | None:
        """Wait for the database, then renew our lease; the part's progress, or None if it is
        not ours."""
        pause = FIRST_PROBE_PAUSE
        while True:
            await asyncio.sleep(pause)
            try:
                return await self._renew()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                pause = min(pause * 2, LONGEST_PROBE_PAUSE)

    async def _record_failure(self, error: Exception) -> None:
        run = self.job_run
        if isinstance(error, asyncpg.PostgresError):
            code, message = DATABASE_ERROR, f"A chunk was stopped by {database_reason(error)}."
            logger.warning("job %s: a chunk failed: %s", run.job_id, error)
        else:
            code, message = INTERNAL_ERROR, "A chunk failed with an unexpected error (logged)."
            logger.exception("job %s: a chunk failed", run.job_id)
        try:
            async with run.database.scoped(run.organization_id) as connection:
                outcome = await leases.record_failed_run(
                    connection,
                    run.job_id,
                    run.part,
                    run.owner,
                    RetryPolicy.from_settings(self.settings),
                    code,
                    message,
                )
        except Exception as exc:
            logger.warning("job %s: failure not recorded (%s); the sweep takes the job back", run.job_id, exc)
            return
        if outcome is None:
            return
        await events.publish(self.queue, outcome.job)
        if outcome.ticket is None:
            logger.warning("job %s %s: %s", run.job_id, outcome.job.status.value, message)
            return
        ticket = outcome.ticket
        logger.info(
            "job %s: part %d handed back; it runs again in %.1f s", run.job_id, run.part.first, ticket.delay
        )
        await self.queue.enqueue(ticket.job_id, ticket.generation, delay=ticket.delay)

    async def release_all(self) -> None:
        """Stopping: our part, and the one claimed to hand over to, both given back."""
        await self.release()
        taking_over, self.taking_over = self.taking_over, None
        if taking_over is not None:
            job = taking_over.job
            await _release(
                self.job_run.database,
                self.queue,
                job.organization_id,
                job.id,
                taking_over.part,
                taking_over.owner,
            )

    async def release(self) -> None:
        run = self.job_run
        await _release(run.database, self.queue, run.organization_id, run.job_id, run.part, run.owner)


async def _release(
    database: Database, queue: JobQueue, organization_id: UUID, job_id: UUID, part: PartRange, owner: str
) -> None:
    """Give a part back (``leases.release_part``), announce it, and send the job a message."""
    try:
        async with database.scoped(organization_id) as connection:
            released = await leases.release_part(connection, job_id, part, owner)
        if released is None:
            return
        await events.publish(queue, released.job)
        if released.ticket is not None:
            logger.info("job %s: part %d released for another worker", job_id, part.first)
            await queue.enqueue(released.ticket.job_id, released.ticket.generation)
    except Exception as exc:  # the error that stopped the job is the one to report
        logger.warning("job %s not released (%s); the sweep resumes it when its lease expires", job_id, exc)


class _ChunkTimer:
    """Feeds the sizer: each chunk's size, and the time between consecutive commits (with
    two chunks overlapping, that is what one chunk costs) less the time it queued for the
    number counter."""

    def __init__(self, settings: Settings) -> None:
        self.sizer = ChunkSizer(
            size=settings.chunk_size,
            target_seconds=settings.chunk_target_seconds,
            maximum=max(settings.chunk_size, settings.max_chunk_size),
        )
        self.pending: list[int] = []  # sizes of the chunks started and not yet committed
        self.last_commit = time.perf_counter()

    def restart(self) -> None:
        """A new pipeline (another part, or another attempt): nothing of it is in flight yet.
        The size learnt so far is kept: the slot's next part is much like its last."""
        self.pending.clear()
        self.last_commit = time.perf_counter()

    def next_size(self) -> int:
        self.pending.append(self.sizer.size)
        return self.sizer.size

    def committed(self, queued: float = 0.0) -> None:
        """A chunk committed after ``queued`` seconds waiting for the number counter, which
        other slots of the organization held: not this chunk's cost. Counted in, the sizer
        would shrink every slot's chunks as slots were added, down to chunks of ten orders
        whose round trips cost more than the orders (a third of the throughput, measured)."""
        now = time.perf_counter()
        elapsed, self.last_commit = now - self.last_commit, now
        if self.pending:
            self.sizer.observe(self.pending.pop(0), max(0.0, elapsed - queued))
