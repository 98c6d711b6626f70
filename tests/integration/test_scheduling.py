"""Which job runs next: higher priority first; within a priority, the organization served least
recently; within an organization, the oldest job. Low work still advances: a waiting job climbs
one class per PRIORITY_AGING_SECONDS. A free worker slot takes that job, whichever job its
queue message names."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from invoicing.domain.job_states import JobStatus, Priority
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import leases
from invoicing.jobs.views import BatchJob
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.jobs import current, submit, wait_until_status
from tests.support.workers import Workers
from worker import tasks

OWNER = "scheduling-test"


async def service_order(settings: Settings, rounds: int, *, then_none: bool = True) -> list[UUID]:
    """The jobs free workers would take, one after the other: each chosen, then claimed (as the
    runtime role, in its organization's scope), so that it is no longer runnable; with
    ``then_none``, nothing is runnable after them."""
    taken = []
    async with application_database(settings, pool_size=2) as database:
        for _ in range(rounds):
            async with database.unscoped() as connection:
                candidates = await leases.next_runnable_jobs(connection, settings.priority_aging_seconds)
            assert candidates, f"nothing runnable after {taken}"
            choice = candidates[0]
            async with database.scoped(choice.organization_id) as connection:
                claimed = await leases.claim_part(connection, choice.job_id, OWNER, 60)
            assert claimed is not None
            taken.append(claimed.job.id)
        if then_none:
            async with database.unscoped() as connection:
                assert await leases.next_runnable_jobs(connection, settings.priority_aging_seconds) == []
    return taken


async def job_of(
    database: Database,
    queue: JobQueue,
    settings: Settings,
    organization: Organization,
    priority: Priority = Priority.normal,
    orders: int = 2,
) -> BatchJob:
    order_ids = await create_orders(database, organization, orders)
    return await submit(database, queue, settings, organization, order_ids, priority=priority)


async def test_urgent_first_then_organizations_in_turn_then_the_oldest_job_and_low_last(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    a, b = await create_organization(database), await create_organization(database)
    a1, a2, a3 = [await job_of(database, queue, settings, a) for _ in range(3)]
    b1 = await job_of(database, queue, settings, b)
    a_urgent = await job_of(database, queue, settings, a, Priority.urgent)
    b_low = await job_of(database, queue, settings, b, Priority.low)

    taken = await service_order(settings, 6)

    # The urgent job; then B, served less recently than A; then A's jobs oldest first, as B has
    # no normal job left; the low job last.
    assert taken == [a_urgent.id, b1.id, a1.id, a2.id, a3.id, b_low.id]


async def test_organizations_take_turns_within_a_priority(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    a, b = await create_organization(database), await create_organization(database)
    a_jobs = [await job_of(database, queue, settings, a) for _ in range(3)]
    b_jobs = [await job_of(database, queue, settings, b) for _ in range(3)]

    taken = await service_order(settings, 6)

    assert taken == [a_jobs[0].id, b_jobs[0].id, a_jobs[1].id, b_jobs[1].id, a_jobs[2].id, b_jobs[2].id]


async def backdate(database: Database, job: BatchJob, seconds: float) -> None:
    async with database.connection() as owner:
        await owner.execute(
            "UPDATE batch_job_queue SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
            job.id,
            seconds,
        )


async def test_low_work_that_waited_two_agings_is_in_the_urgent_class(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    a = await create_organization(database)
    waited = await job_of(database, queue, settings, a, Priority.low)
    await backdate(database, waited, 2 * settings.priority_aging_seconds + 1)
    fresh_low = await job_of(database, queue, settings, a, Priority.low)
    urgent = await job_of(database, queue, settings, a, Priority.urgent)
    normal = await job_of(database, queue, settings, a)

    # In its organization's turn, older than the urgent job: first. The fresh low job, last.
    assert await service_order(settings, 4) == [waited.id, urgent.id, normal.id, fresh_low.id]


async def test_a_normal_backlog_however_old_waits_behind_urgent_work_and_other_organizations(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    a, b = await create_organization(database), await create_organization(database)
    backlog = [await job_of(database, queue, settings, a) for _ in range(2)]
    for job in backlog:
        await backdate(database, job, 10 * settings.priority_aging_seconds)
    first = await service_order(settings, 1, then_none=False)  # A is served: its turn is the latest
    b_normal = await job_of(database, queue, settings, b)
    second = await service_order(settings, 1, then_none=False)
    b_urgent = await job_of(database, queue, settings, b, Priority.urgent)

    assert first == [backlog[0].id]
    assert second == [b_normal.id]  # B served less recently than A: the old backlog waits its turn
    assert await service_order(settings, 2) == [b_urgent.id, backlog[1].id]  # urgent first, whatever waited


async def test_free_slots_choosing_at_once_each_claim_a_job_and_leave_none_behind(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    # Every slot free at once, as after a burst of submits: a lost claim means another slot took
    # that job, so each chooses again; no message is spent without a job while jobs are runnable.
    organizations = [await create_organization(database) for _ in range(4)]
    jobs = [await job_of(database, queue, settings, organizations[n % 4], orders=1) for n in range(24)]
    async with application_database(settings, pool_size=12) as app:
        claimed = await asyncio.gather(
            *(tasks.claim_next(app, settings, f"slot-{n}") for n in range(len(jobs)))
        )
    assert sorted(str(part.job.id) for part in claimed if part is not None) == sorted(
        str(job.id) for job in jobs
    )


@pytest.mark.slow
async def test_a_free_slot_takes_another_organizations_job_before_the_rest_of_a_backlog(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    # One slot; A's three jobs and then B's are queued before the worker starts, in that order.
    one_slot = settings.with_overrides(worker_max_jobs=1)
    a, b = await create_organization(database), await create_organization(database)
    a_jobs = [await job_of(database, queue, one_slot, a, orders=60) for _ in range(3)]
    b_job = await job_of(database, queue, one_slot, b, orders=5)

    workers.start(one_slot)
    with workers.explaining_failures():
        for job in (*a_jobs, b_job):
            await wait_until_status(database, job.id, JobStatus.completed, within=60)

    started = {job.id: (await current(database, job.id)).started_at for job in (*a_jobs, b_job)}
    # A's first job, then B's (its organization not served yet), then the rest of A's.
    assert sorted(started, key=lambda job_id: started[job_id]) == [
        a_jobs[0].id,
        b_job.id,
        a_jobs[1].id,
        a_jobs[2].id,
    ]
