"""Parts under races: a cancel while parts come and go, claims at once under a cap, the lock
order between cancels, claims, the sweep and live chunks, slots meeting on one part, and one
organization writing parts of another's job.

Interleavings that real timing makes rare are made deterministic by holding one transaction
open at a chosen statement (``Paused``): the statements and their order are the product's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from invoicing.domain.job_states import JobStatus, Priority
from invoicing.domain.retries import WORKER_CRASHED, RetryPolicy
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import leases, store
from invoicing.jobs.chunks import commit_chunk, prepare_chunk
from invoicing.jobs.pipeline import JobRun, committed_chunks
from invoicing.jobs.progress import PartRange
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.support.factories import create_orders, create_organization
from tests.support.jobs import current, submit, wait_until_status
from tests.support.waiting import eventually
from tests.support.workers import Workers
from worker import tasks


class Paused:
    """A connection that stops before running ``query`` until ``go`` is set (``reached`` is
    set when it gets there): a transaction held open between two of its statements."""

    def __init__(self, connection: asyncpg.Connection, query: str) -> None:
        self._connection = connection
        self._query = query
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def _gate(self, query: str) -> None:
        if query == self._query:
            self.reached.set()
            await self.go.wait()

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate(query)
        return await self._connection.execute(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate(query)
        return await self._connection.fetchrow(query, *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate(query)
        return await self._connection.fetch(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate(query)
        return await self._connection.fetchval(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@contextlib.asynccontextmanager
async def open_scope(app: Database, organization_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    async with app.scoped(organization_id) as connection:
        yield connection


async def run_part_to_its_end(
    app: Database, job_id: UUID, part: PartRange, owner: str, organization_id: UUID, lease_seconds: float
) -> None:
    run = JobRun(app, job_id, part, owner, organization_id, lease_seconds)
    async with contextlib.aclosing(committed_chunks(run, lambda: 50)) as chunks:
        async for outcome in chunks:
            last = outcome
    assert last.part_done


async def one_chunk(app: Database, job_id: UUID, part: PartRange, owner: str, organization_id: UUID) -> None:
    """One chunk of the part, as the pipeline runs it: prepare, then commit, one transaction."""
    async with app.scoped(organization_id) as connection:
        chunk = await prepare_chunk(connection, job_id, part, organization_id, 5, part.first - 1)
        await commit_chunk(connection, chunk, job_id, part, owner, lease_seconds=30)


async def until_blocked(database: Database, task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` has ended or one of the database's sessions waits for a lock (the
    task's, as nothing else runs): it got as far as it can on its own."""

    async def blocked() -> bool:
        if task.done():
            return True
        async with database.connection() as connection:
            return bool(
                await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )

    await eventually(blocked, timeout=10, interval=0.01, what="the task to end or wait for a lock")


# --- 1. A cancel flagged on a job that then has no part held: stuck processing forever ------


@pytest.mark.slow
async def test_a_cancel_asked_as_a_part_ends_still_ends_the_job(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    parted = settings.with_overrides(job_part_size=10, sweep_interval_seconds=0.5)
    organization = await create_organization(database)
    job = await submit(database, queue, parted, organization, await create_orders(database, organization, 20))

    async with application_database(parted, pool_size=4) as app:
        claimed = await tasks.claim_next(app, parted, "w.1@h/a")
        assert claimed is not None
        assert claimed.part == PartRange(1, 10)
        # The slot's last chunk of part 1 has committed (the pass reached its end) ...
        await run_part_to_its_end(app, job.id, claimed.part, "w.1@h/a", organization.id, parted.lease_seconds)
        # ... the user cancels now: part 1 is still held, so the cancel is only flagged ...
        async with app.scoped(organization.id) as connection:
            flagged = await store.request_cancel(connection, organization.id, job.id, organization.member.id)
        assert flagged.status is JobStatus.processing
        assert flagged.cancel_requested
        # ... and the slot ends its part (worker/tasks.py _chunks), then chooses again.
        async with app.scoped(organization.id) as connection:
            await leases.end_part(connection, job.id, claimed.part, "w.1@h/a")

    # Real workers and their sweeps from here on: part 2 is free, but the job is never chosen
    # (next_runnable_jobs skips cancel_requested) nor finished by the sweep.
    workers.start(parted)
    with workers.explaining_failures():
        done = await wait_until_status(database, job.id, JobStatus.cancelled, within=15)
    assert done.processed_items + done.cancelled_items == done.total_items


async def test_a_part_released_at_shutdown_after_a_cancel_was_asked_ends_the_job(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    parted = settings.with_overrides(job_part_size=10)
    organization = await create_organization(database)
    job = await submit(database, queue, parted, organization, await create_orders(database, organization, 20))

    async with application_database(parted, pool_size=4) as app:
        claimed = await tasks.claim_next(app, parted, "w.1@h/a")
        assert claimed is not None
        async with app.scoped(organization.id) as connection:
            flagged = await store.request_cancel(connection, organization.id, job.id, organization.member.id)
        assert flagged.status is JobStatus.processing
        # SIGTERM before the slot's next chunk: _PartRunner.release(). The last holder lets go.
        async with app.scoped(organization.id) as connection:
            released = await leases.release_part(connection, job.id, claimed.part, "w.1@h/a")

    assert released is not None
    assert released.ticket is None, "nothing left to run"
    assert released.job.status is JobStatus.cancelled
    assert released.job.cancelled_items == 20
    async with database.connection() as connection:
        assert not await connection.fetchval("SELECT count(*) FROM batch_job_parts WHERE job_id = $1", job.id)


# --- 2. MAX_WORKERS_PER_JOB is not a cap: claims at once each count without the other -------


async def test_max_workers_per_job_holds_for_claims_made_at_once(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    capped = settings.with_overrides(job_part_size=10, max_workers_per_job=1)
    organization = await create_organization(database)
    job = await submit(database, queue, capped, organization, await create_orders(database, organization, 30))

    async with application_database(capped, pool_size=4) as app, contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_scope(app, organization.id))
        assert await leases.claim_part(first, job.id, "slot-a", 30, 1) is not None

        async def second_claim() -> leases.ClaimedPart | None:
            try:
                async with app.scoped(organization.id) as connection:
                    return await leases.claim_part(connection, job.id, "slot-b", 30, 1)
            except leases.ClaimUndone:
                return None

        second = asyncio.create_task(second_claim())
        await until_blocked(database, second)  # it took part 2 and waits for the job row
        await stack.aclose()  # the first claim commits
        assert await second is None, "a second part of a job capped at one worker was claimed"
    assert (await current(database, job.id)).active_workers <= 1


async def test_max_workers_per_job_holds_for_slots_choosing_at_once(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    capped = settings.with_overrides(job_part_size=10, max_workers_per_job=1)
    organization = await create_organization(database)
    job = await submit(database, queue, capped, organization, await create_orders(database, organization, 80))

    held = []
    async with application_database(capped, pool_size=10) as app:
        for attempt in range(10):
            claims = await asyncio.gather(
                *(tasks.claim_next(app, capped, f"slot-{attempt}-{n}") for n in range(6))
            )
            held = [claim for claim in claims if claim is not None]
            if len(held) > 1:
                break
            # Hand them back for another try.
            async with database.connection() as connection:
                await connection.execute(
                    "UPDATE batch_job_parts SET lease_owner = NULL, lease_expires_at = NULL"
                    " WHERE job_id = $1",
                    job.id,
                )
    assert len(held) <= 1, f"{len(held)} parts held at once by slots choosing together, cap 1"


# --- 3. Lock order: a cancel that finds no part held while a claim commits under it ---------


async def test_a_cancel_racing_a_claim_does_not_deadlock_with_the_claimed_parts_chunk(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    parted = settings.with_overrides(job_part_size=10)
    organization = await create_organization(database)
    job = await submit(database, queue, parted, organization, await create_orders(database, organization, 20))

    async with application_database(parted, pool_size=6) as app:
        claim_scope = open_scope(app, organization.id)
        claim = await claim_scope.__aenter__()
        claimed = await leases.claim_part(claim, job.id, "w.1@h/a", 30)
        assert claimed is not None

        async def cancel() -> store.BatchJob:
            async with app.scoped(organization.id) as connection:
                return await store.request_cancel(connection, organization.id, job.id, organization.member.id)

        cancelling = asyncio.create_task(cancel())
        await until_blocked(database, cancelling)  # the request waits for the job row the claim holds
        await claim_scope.__aexit__(None, None, None)  # the claim commits: a part is held now
        flagged = await asyncio.wait_for(cancelling, 5)
        # It saw the part held: only flagged, for the part's next chunk to end the job.
        assert (flagged.status, flagged.cancel_requested) == (JobStatus.processing, True)
        await one_chunk(app, job.id, claimed.part, "w.1@h/a", organization.id)

    cancelled = await current(database, job.id)
    assert cancelled.status is JobStatus.cancelled
    assert (cancelled.processed_items, cancelled.cancelled_items) == (0, 20)


# --- 4. Lock order: the sweep holds a job row (hand back) and then fails the job ------------


async def test_the_sweep_does_not_deadlock_with_a_live_part_when_it_hands_back_then_gives_up(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    parted = settings.with_overrides(job_part_size=10, max_job_attempts=2)
    organization = await create_organization(database)
    job = await submit(database, queue, parted, organization, await create_orders(database, organization, 30))
    async with database.transaction() as connection:
        await connection.execute("UPDATE batch_job_queue SET status = 'processing' WHERE id = $1", job.id)
        # Part 1: its worker died after progress (handed back); part 2: died again without any
        # (the job gives up); part 3: a live worker.
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'dead.1@h/a',"
            " lease_expires_at = now() - interval '2 s', processed_since_claim = 3"
            " WHERE job_id = $1 AND first_position = 1",
            job.id,
        )
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'dead.1@h/b',"
            " lease_expires_at = now() - interval '1 s', stalled_attempts = 1"
            " WHERE job_id = $1 AND first_position = 11",
            job.id,
        )
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'live.2@h/c',"
            " lease_expires_at = now() + interval '30 s' WHERE job_id = $1 AND first_position = 21",
            job.id,
        )

    async with application_database(parted, pool_size=6) as app:
        policy = RetryPolicy.from_settings(parted)
        # The sweep hands part 1 back (the job row is touched, in a transaction of its own) ...
        async with app.scoped(organization.id) as connection:
            handed_back = await leases.settle_crashed_part(
                connection, leases.PartKey(job.id, 1), policy, WORKER_CRASHED, "crashed"
            )
        assert handed_back is not None
        assert handed_back.ticket is not None
        gate: list[Paused] = []

        async def give_up_on_part_two() -> None:
            async with app.scoped(organization.id) as connection:
                paused = Paused(connection, leases.GIVE_UP_JOB)
                gate.append(paused)
                await leases.settle_crashed_part(
                    paused,  # type: ignore[arg-type]
                    leases.PartKey(job.id, 11),
                    policy,
                    WORKER_CRASHED,
                    "crashed",
                )

        sweeping = asyncio.create_task(give_up_on_part_two())

        async def sweep_paused() -> bool:
            return bool(gate) and gate[0].reached.is_set()

        await eventually(
            sweep_paused, timeout=5, interval=0.01, what="the sweep to reach GIVE_UP_JOB"
        )  # part 2 is the sweep's, about to fail the job
        chunk = asyncio.create_task(one_chunk(app, job.id, PartRange(21, 30), "live.2@h/c", organization.id))
        await until_blocked(database, chunk)  # the live chunk committed (or waits for a lock)
        gate[0].go.set()  # the sweep fails the job: every pending item of it
        results = await asyncio.gather(sweeping, chunk, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"lock cycle between the sweep and a live part: {errors!r}"
    failed = await current(database, job.id)
    assert failed.status is JobStatus.failed
    assert failed.processed_items + failed.cancelled_items == failed.total_items


# --- 5. A free slot gives up while work is runnable -----------------------------------------


async def test_a_free_slot_takes_other_runnable_work_when_the_best_jobs_last_part_is_being_claimed(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    parted = settings.with_overrides(job_part_size=10)
    a, b = await create_organization(database), await create_organization(database)
    best = await submit(
        database, queue, parted, a, await create_orders(database, a, 10), priority=Priority.urgent
    )
    other = await submit(database, queue, parted, b, await create_orders(database, b, 10))

    async with application_database(parted, pool_size=4) as app:
        # Another slot is claiming the urgent job's only part (between its two statements).
        async with app.scoped(a.id) as claiming:
            assert await claiming.fetchrow(leases.CLAIM_PART, best.id, "slot-a", 30) is not None
            claimed = await asyncio.wait_for(tasks.claim_next(app, parted, "slot-b"), 10)
        assert claimed is not None, "the slot returned with another organization's job runnable"
        assert claimed.job.id == other.id


# --- 6. Row-level security: a part row is not tied to its job's organization ----------------


async def test_one_organization_cannot_write_parts_of_another_organizations_job(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    capped = settings.with_overrides(job_part_size=10, max_workers_per_job=1)
    a, b = await create_organization(database), await create_organization(database)
    theirs = await submit(database, queue, capped, b, await create_orders(database, b, 10))

    async with application_database(capped, pool_size=2) as app:
        # SQL run on a connection in A's scope (the threat model of migrations/0011), knowing
        # one of B's job ids: the policy checks the part's organization, the foreign key only
        # that the job exists.
        with contextlib.suppress(asyncpg.PostgresError):
            async with app.scoped(a.id) as connection:
                await connection.execute(
                    "INSERT INTO batch_job_parts (job_id, first_position, last_position, organization_id,"
                    " lease_owner, lease_expires_at) VALUES ($1, 1000, 1000, $2, 'x', 'infinity')",
                    theirs.id,
                    a.id,
                )
        # B's job now counts one worker for next_runnable_jobs (which sees every organization)
        # and no slot ever takes it; B's scope cannot even see the row to clear it.
        claimed = await tasks.claim_next(app, capped, "slot-1")
    assert claimed is not None, "B's job blocked by a row of A's"
    assert claimed.job.id == theirs.id
