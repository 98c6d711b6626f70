"""Which job runs next: higher priority first; within a priority, the organization served least
recently; within an organization, the oldest job. Low work still advances: a waiting job climbs
one class per PRIORITY_AGING_SECONDS. A free worker slot takes that job, whichever job its
queue message names."""

from __future__ import annotations

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

OWNER = "scheduling-test"


async def service_order(settings: Settings, rounds: int) -> list[UUID]:
    """The jobs free workers would take, one after the other: each chosen, then claimed (as the
    runtime role, in its organization's scope), so that it is no longer runnable."""
    taken = []
    async with application_database(settings, pool_size=2) as database:
        for _ in range(rounds):
            async with database.unscoped() as connection:
                choice = await leases.next_runnable_job(connection, settings.priority_aging_seconds)
            assert choice is not None, f"nothing runnable after {taken}"
            async with database.scoped(choice.organization_id) as connection:
                claimed = await leases.claim_job(connection, choice.job_id, OWNER, 60)
            assert claimed is not None
            taken.append(claimed.id)
        async with database.unscoped() as connection:
            assert await leases.next_runnable_job(connection, settings.priority_aging_seconds) is None
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


async def test_low_work_that_waited_two_agings_goes_before_fresh_urgent_work(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    a, b = await create_organization(database), await create_organization(database)
    waited = await job_of(database, queue, settings, a, Priority.low)
    async with database.connection() as owner:
        await owner.execute(
            "UPDATE batch_job_queue SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
            waited.id,
            2 * settings.priority_aging_seconds + 1,
        )
    urgent = await job_of(database, queue, settings, b, Priority.urgent)
    normal = await job_of(database, queue, settings, b)

    assert await service_order(settings, 3) == [waited.id, urgent.id, normal.id]


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
