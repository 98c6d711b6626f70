"""Parts: a job's items cut into ranges, each claimed by a free worker slot under its own lease.

Several slots (of one worker or of several) share a big job; a slot chooses again after each
part, so other work gets in between; a worker that dies loses only its part to the sweep; a
cancel stops every part; exactly once and gapless numbers hold throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from uuid import UUID

import pytest

from invoicing.domain.job_states import JobStatus, Priority
from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import leases
from invoicing.jobs.progress import PartRange
from invoicing.jobs.views import BatchJob
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.support.app import api_client
from tests.support.factories import create_orders, create_organization
from tests.support.jobs import (
    assert_counters_add_up,
    assert_invariants,
    current,
    fetch_one,
    submit,
    wait_until_processing_started,
    wait_until_status,
)
from tests.support.waiting import eventually
from tests.support.workers import Workers
from worker import tasks


async def parts_of(database: Database, job_id: UUID) -> list[tuple[int, int, str | None]]:
    """The job's parts left: first and last position, and who holds each."""
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT first_position, last_position, lease_owner FROM batch_job_parts"
            " WHERE job_id = $1 ORDER BY first_position",
            job_id,
        )
    return [(row["first_position"], row["last_position"], row["lease_owner"]) for row in rows]


async def every_part_gone(database: Database, job_id: UUID) -> None:
    """Each slot deletes its part once the part or the job is over, just after its last commit."""

    async def gone() -> bool:
        return not await parts_of(database, job_id)

    await eventually(gone, timeout=30, what=f"every part of job {job_id} to be deleted")


def pid_of(owner: str) -> int:
    """The worker process named in a lease owner (``{token}.{pid}@{host}/{claim}``)."""
    return int(owner.split("@", 1)[0].split(".", 1)[1])


async def test_a_job_is_cut_into_parts_of_the_configured_size(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 250)

    job = await submit(database, queue, settings.with_overrides(job_part_size=100), organization, orders)

    assert await parts_of(database, job.id) == [(1, 100, None), (101, 200, None), (201, 250, None)]


async def test_free_slots_share_a_job_part_by_part_up_to_max_workers_per_job(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    organization = await create_organization(database)
    parted = settings.with_overrides(job_part_size=100)
    job = await submit(
        database, queue, parted, organization, await create_orders(database, organization, 300)
    )

    async with application_database(settings, pool_size=4) as app:
        capped = parted.with_overrides(max_workers_per_job=2)
        first = await tasks.claim_next(app, capped, "slot-1")
        second = await tasks.claim_next(app, capped, "slot-2")
        assert await tasks.claim_next(app, capped, "slot-3") is None, "two workers at most"
        third = await tasks.claim_next(app, parted, "slot-3")  # no limit
        assert await tasks.claim_next(app, parted, "slot-4") is None, "every part is held"

    claims = [first, second, third]
    assert [claim.part if claim else None for claim in claims] == [
        PartRange(1, 100),
        PartRange(101, 200),
        PartRange(201, 300),
    ]
    assert [claim.more_parts if claim else None for claim in claims] == [True, True, False]
    running = await current(database, job.id)
    assert (running.status, running.active_workers, running.attempts) == (JobStatus.processing, 3, 3)


@pytest.mark.slow
async def test_a_part_whose_worker_died_is_taken_back_while_the_others_go_on(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    parted = settings.with_overrides(
        job_part_size=200, sweep_interval_seconds=0.5, retry_backoff_seconds=0.05, worker_max_jobs=2
    )
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 1000)
    job = await submit(database, queue, parted, organization, orders)
    # A worker that died holding the second part, its lease already run out.
    async with database.connection() as connection:
        await connection.execute("UPDATE batch_job_queue SET status = 'processing' WHERE id = $1", job.id)
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'dead.1@nowhere/x',"
            " lease_expires_at = now() - interval '1 second' WHERE job_id = $1 AND first_position = 201",
            job.id,
        )

    workers.start(parted)
    with workers.explaining_failures():
        done = await wait_until_status(database, job.id, JobStatus.completed, within=60)

    assert done.successful_items == len(orders)
    row = await fetch_one(database, "SELECT last_error_code FROM batch_job_queue WHERE id = $1", job.id)
    assert row["last_error_code"] == "worker_crashed", "the dead worker's part came back through the sweep"
    await every_part_gone(database, job.id)
    await assert_invariants(database, organization.id, invoiced=orders)


@pytest.mark.slow
async def test_two_workers_share_one_job_and_a_sigkill_of_one_loses_only_its_part(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    sharing = settings.with_overrides(
        job_part_size=300,
        chunk_size=50,
        max_chunk_size=50,
        worker_max_jobs=1,
        lease_seconds=2,
        sweep_interval_seconds=0.5,
        retry_backoff_seconds=0.05,
    )
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 6000)
    job = await submit(database, queue, sharing, organization, orders)
    workers.start(sharing, count=2)
    with workers.explaining_failures():
        await wait_until_processing_started(database, job.id)

        async def both_workers_on_it() -> set[int] | None:
            owners = {pid_of(owner) for *_, owner in await parts_of(database, job.id) if owner}
            return owners if len(owners) == 2 else None

        owners = await eventually(
            both_workers_on_it, timeout=30, interval=0.01, what="two workers on the job"
        )
        assert (await current(database, job.id)).active_workers >= 1
        (victim,) = [process for process in workers.processes if process.pid == min(owners)]
        victim.kill()
        assert (await current(database, job.id)).status is JobStatus.processing, "finished before the kill"
        done = await wait_until_status(database, job.id, JobStatus.completed, within=90)

    assert (done.successful_items, done.failed_items) == (len(orders), 0)
    await every_part_gone(database, job.id)
    await assert_invariants(database, organization.id, invoiced=orders)


@pytest.mark.slow
async def test_a_cancel_stops_every_part_of_a_job_before_its_next_chunk(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    sharing = settings.with_overrides(job_part_size=200, chunk_size=20, max_chunk_size=20, worker_max_jobs=3)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 6000)
    job = await submit(database, queue, sharing, organization, orders)
    workers.start(sharing)
    with workers.explaining_failures():

        async def parts_running() -> bool:
            return (await current(database, job.id)).active_workers >= 2

        await eventually(parts_running, timeout=30, interval=0.01, what="several parts of the job running")
        async with api_client(sharing) as client:
            response = await client.post(
                f"/api/batch-jobs/{job.id}/cancel", headers=organization.member.headers
            )
        assert response.status_code == 200, response.text
        cancelled = await wait_until_status(database, job.id, JobStatus.cancelled, within=30)

        await every_part_gone(database, job.id)
    assert cancelled.cancelled_items > 0
    assert cancelled.processed_items + cancelled.cancelled_items == len(orders)
    assert_counters_add_up(cancelled)
    await assert_invariants(database, organization.id)


@pytest.mark.slow
async def test_another_organizations_small_job_gets_in_between_the_parts_of_a_big_one(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    # One slot: B's job can only run if the slot leaves A's job between two parts.
    one_slot = settings.with_overrides(worker_max_jobs=1, job_part_size=200)
    a, b = await create_organization(database), await create_organization(database)
    a_orders = await create_orders(database, a, 6000)
    b_orders = await create_orders(database, b, 10)
    big = await submit(database, queue, one_slot, a, a_orders)
    workers.start(one_slot)
    with workers.explaining_failures():
        await wait_until_processing_started(database, big.id)
        small = await submit(database, queue, one_slot, b, b_orders)
        small_done = await wait_until_status(database, small.id, JobStatus.completed, within=60)
        big_then = await current(database, big.id)
        big_done = await wait_until_status(database, big.id, JobStatus.completed, within=90)

    assert big_then.status is JobStatus.processing, "B's job waited for the whole of A's"
    assert small_done.completed_at is not None
    assert big_done.completed_at is not None
    assert small_done.completed_at < big_done.completed_at
    await assert_invariants(database, a.id, invoiced=a_orders)
    await assert_invariants(database, b.id, invoiced=b_orders)


async def test_parts_of_one_job_commit_side_by_side_with_gapless_numbers(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    # Three slots in one process run three parts of one job at once, as a worker does.
    parted = settings.with_overrides(job_part_size=100, chunk_size=10, max_chunk_size=10)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 300)
    job = await submit(database, queue, parted, organization, orders)
    worker_id = f"test.{os.getpid()}@here"

    async with application_database(parted, pool_size=8) as app:
        context = {"database": app, "redis": queue.redis, "settings": parted, "worker_id": worker_id}
        results = await asyncio.gather(*(tasks.process_batch_job(context, str(job.id)) for _ in range(3)))

    done = await current(database, job.id)
    assert done.status is JobStatus.completed, results
    assert done.attempts == 3, "three claims, one per part"
    assert await parts_of(database, job.id) == [], "each slot deleted its part before it returned"
    await assert_invariants(database, organization.id, invoiced=orders)


async def test_waiting_work_takes_a_slot_by_priority_or_as_an_organization_holding_nothing(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    parted = settings.with_overrides(job_part_size=10)
    a, b, c = [await create_organization(database) for _ in range(3)]
    a_job = await submit(database, queue, parted, a, await create_orders(database, a, 30))

    async with application_database(parted, pool_size=4) as app:

        async def to_take_over(job: BatchJob = a_job) -> UUID | None:
            async with app.scoped(job.organization_id) as connection:
                waiting = await leases.work_to_take_over(connection, job.id, parted.priority_aging_seconds)
            return None if waiting is None else waiting.job_id

        async def claim(job: BatchJob, owner: str) -> leases.ClaimedPart:
            async with app.scoped(job.organization_id) as connection:
                claimed = await leases.claim_part(connection, job.id, owner, 60)
            assert claimed is not None
            return claimed

        first = await claim(a_job, "slot-1")
        assert await to_take_over() is None, "nothing else waits"
        await claim(a_job, "slot-2")
        b_job = await submit(database, queue, parted, b, await create_orders(database, b, 5))
        assert await to_take_over() == b_job.id, "B holds nothing while A holds two parts"
        await claim(b_job, "slot-3")
        await submit(database, queue, parted, b, await create_orders(database, b, 5))
        assert await to_take_over() is None, "B holds a part now: its next job waits its turn"
        async with app.scoped(a.id) as connection:
            assert await leases.release_part(connection, a_job.id, first.part, "slot-1") is not None
        await submit(database, queue, parted, c, await create_orders(database, c, 5))
        assert await to_take_over() is None, "A holds one part only: it keeps it"
        urgent = await submit(
            database, queue, parted, a, await create_orders(database, a, 5), priority=Priority.urgent
        )
        assert await to_take_over() == urgent.id, "urgent work outranks a normal part, whoever holds what"
        async with app.scoped(c.id) as connection:  # another organization's job is not its to ask about
            assert await leases.work_to_take_over(connection, a_job.id, parted.priority_aging_seconds) is None

        # A low job that waited two agings is in the urgent class: the normal work it now goes
        # before does not take its slots (the slot, freed, would choose that low job again),
        # nor does urgent work, which the queue now puts level with it.
        low = await submit(
            database, queue, parted, c, await create_orders(database, c, 30), priority=Priority.low
        )
        async with database.connection() as connection:
            await connection.execute(
                "UPDATE batch_job_queue SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
                low.id,
                2 * parted.priority_aging_seconds + 1,
            )
        await claim(low, "slot-4")
        await claim(low, "slot-5")
        assert await to_take_over(low) is None


@pytest.mark.slow
async def test_a_slot_hands_its_part_over_to_another_organizations_small_job_between_chunks(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    # Two slots on A's two long parts: B's job gets one of them at a chunk's end, not a part's.
    two_slots = settings.with_overrides(
        worker_max_jobs=2, job_part_size=3000, chunk_size=20, max_chunk_size=20
    )
    a, b = await create_organization(database), await create_organization(database)
    a_orders = await create_orders(database, a, 6000)
    b_orders = await create_orders(database, b, 10)
    big = await submit(database, queue, two_slots, a, a_orders)
    workers.start(two_slots)
    with workers.explaining_failures():

        async def both_parts_running() -> bool:
            return (await current(database, big.id)).active_workers == 2

        await eventually(both_parts_running, timeout=30, interval=0.01, what="A's two parts running")
        small = await submit(database, queue, two_slots, b, b_orders)
        await wait_until_status(database, small.id, JobStatus.completed, within=30)
        assert len(await parts_of(database, big.id)) == 2, "B's job waited for a part of A's to end"
        big_done = await wait_until_status(database, big.id, JobStatus.completed, within=120)

    assert big_done.successful_items == len(a_orders)
    assert big_done.attempts >= 3, "a part of A's was handed over and claimed again"
    await assert_invariants(database, a.id, invoiced=a_orders)
    await assert_invariants(database, b.id, invoiced=b_orders)


@pytest.mark.slow
async def test_urgent_work_takes_a_slot_from_normal_work_between_chunks(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    one_slot = settings.with_overrides(
        worker_max_jobs=1, job_part_size=6000, chunk_size=20, max_chunk_size=20
    )
    organization = await create_organization(database)
    normal_orders = await create_orders(database, organization, 6000)
    urgent_orders = await create_orders(database, organization, 20)
    normal = await submit(database, queue, one_slot, organization, normal_orders)
    workers.start(one_slot)
    with workers.explaining_failures():
        await wait_until_processing_started(database, normal.id)
        urgent = await submit(
            database, queue, one_slot, organization, urgent_orders, priority=Priority.urgent
        )
        urgent_done = await wait_until_status(database, urgent.id, JobStatus.completed, within=30)
        normal_then = await current(database, normal.id)
        normal_done = await wait_until_status(database, normal.id, JobStatus.completed, within=120)

    assert normal_then.status is JobStatus.processing, "the urgent job waited for the normal one"
    assert urgent_done.completed_at is not None
    assert normal_done.completed_at is not None
    assert urgent_done.completed_at < normal_done.completed_at
    await assert_invariants(database, organization.id, invoiced=[*normal_orders, *urgent_orders])


@pytest.mark.slow
async def test_two_workers_on_one_job_announce_one_ordered_seq(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    sharing = settings.with_overrides(job_part_size=300, worker_max_jobs=2, chunk_size=50, max_chunk_size=50)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 3000)
    subscriber = queue.redis.pubsub()
    await subscriber.subscribe(keys.events_channel(sharing.redis_prefix, organization.id))
    try:
        job = await submit(database, queue, sharing, organization, orders)
        workers.start(sharing, count=2)
        events: list[dict[str, Any]] = []
        with workers.explaining_failures():

            async def finished_event() -> bool:
                message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None and json.loads(message["data"])["job_id"] == str(job.id):
                    events.append(json.loads(message["data"]))
                return any(event["type"] == "finished" for event in events)

            await eventually(finished_event, timeout=90, interval=0, what="the job's finished event")
    finally:
        await subscriber.aclose()

    # Whichever worker committed, each seq names one state of the job, states grow with it,
    # and the finished state has the last one.
    states: dict[int, tuple[int, int]] = {}
    for event in events:
        body = event["job"] if event["type"] == "finished" else event
        state = (body["processed_items"], body["cancelled_items"])
        assert states.setdefault(event["seq"], state) == state, f"seq {event['seq']} named two states"
    by_seq = [states[seq] for seq in sorted(states)]
    assert by_seq == sorted(by_seq), "the counters went back as seq grew"
    (finished,) = [event for event in events if event["type"] == "finished"]
    assert finished["seq"] == max(states)
    assert finished["job"]["processed_items"] == len(orders)
    assert max(event.get("active_workers", 0) for event in events) >= 2, "one worker did it all"
