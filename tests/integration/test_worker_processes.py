"""Real `invoicing worker` processes: concurrency, crashes, duplicates, cancels and Redis outages.

Every test here starts worker processes (except the last, which stages a crashed job in the
database). When an assertion fails, its message ends with the workers' logs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from uuid import UUID

import pytest
import redis.asyncio

from invoicing.domain.job_states import JobStatus
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs.sweep import SweepResult, sweep
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import create_orders, create_organization
from tests.support.jobs import (
    assert_counters_add_up,
    current,
    fetch_one,
    invoice_counts,
    item_statuses,
    job_queue,
    job_ten_of_thirty_done,
    ran_side_by_side,
    submit,
    wait_until_processing_started,
    wait_until_running,
    wait_until_status,
)
from tests.support.services import RedisServer
from tests.support.waiting import eventually
from tests.support.workers import Workers


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Small chunks, so that even a short job spans many chunk transactions."""
    return make_settings(database_url, redis_url, CHUNK_SIZE="20")


@pytest.mark.slow
async def test_four_concurrent_workers_on_one_organization_leave_gapless_numbers(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    order_lists = [await create_orders(database, organization, 300) for _ in range(4)]
    # One job per process at a time, so the four jobs run in four processes side by side.
    processes = workers.start(settings.with_overrides(worker_max_jobs=1), count=4)
    with workers.explaining_failures():
        for process in processes:
            await wait_until_running(process)
        jobs = [await submit(database, queue, settings, organization, orders) for orders in order_lists]
        finished = [await wait_until_status(database, job.id, JobStatus.completed, within=60) for job in jobs]
        assert sum("claimed by" in process.log() for process in processes) >= 2, "one process did all"
        assert ran_side_by_side(finished), "the jobs ran one after another"

        async with database.connection() as connection:
            invoices = await connection.fetch(
                "SELECT year, sequence, number, sales_order_id, batch_job_id"
                " FROM invoices WHERE organization_id = $1",
                organization.id,
            )
            counters = dict(
                await connection.fetch(
                    "SELECT year, last_number FROM invoice_number_counters WHERE organization_id = $1",
                    organization.id,
                )
            )
        sequences: dict[int, list[int]] = defaultdict(list)
        for invoice in invoices:
            sequences[invoice["year"]].append(invoice["sequence"])
        for year, numbers in sequences.items():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"gaps or duplicates in {year}"
            assert counters[year] == len(numbers), f"numbers of {year} allocated but never used"
        assert len({invoice["number"] for invoice in invoices}) == len(invoices) == 1200
        assert {invoice["sales_order_id"] for invoice in invoices} == set().union(*order_lists)
        for job in finished:
            assert (job.total_items, job.successful_items, job.failed_items) == (300, 300, 0)
            assert_counters_add_up(job)
            assert sum(1 for invoice in invoices if invoice["batch_job_id"] == job.id) == 300


@pytest.mark.slow
async def test_a_worker_killed_mid_job_is_resumed_by_the_sweep_with_no_order_twice_and_none_lost(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    short_lease = settings.with_overrides(lease_seconds=2.0)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 2000)
    job = await submit(database, queue, settings, organization, orders)
    (first,) = workers.start(short_lease)
    with workers.explaining_failures():
        await wait_until_processing_started(database, job.id)
        first.kill()
        at_kill = await current(database, job.id)
        assert at_kill.status is JobStatus.processing
        assert 0 < at_kill.processed_items < at_kill.total_items, "the kill came after the job had finished"

        async def resumed() -> SweepResult | None:
            result = await sweep(database, queue, short_lease)
            return result if result.resumed >= 1 else None

        # The sweep runs before the second worker starts: that worker's own startup sweep would
        # otherwise race this one for the expired lease.
        await eventually(
            resumed, timeout=10, interval=0.2, what="the sweep to resume the job after its lease"
        )
        workers.start(short_lease)
        done = await wait_until_status(database, job.id, JobStatus.completed)

        assert await invoice_counts(database, organization) == (len(orders), len(orders))
        assert (done.successful_items, done.failed_items) == (len(orders), 0)
        assert_counters_add_up(done)
        assert await item_statuses(database, job.id) == {"succeeded": len(orders)}
        assert done.attempts == 2


@pytest.mark.slow
async def test_the_same_job_enqueued_twice_is_processed_once(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 400)
    job = await submit(database, queue, settings, organization, orders)
    assert await queue.enqueue(job.id, job.enqueue_generation) is False, "arq dedupes the same arq job id"
    assert await queue.enqueue(job.id, job.enqueue_generation + 1) is True, "a second arq job, same batch job"
    workers.start(settings, count=2)
    with workers.explaining_failures():
        done = await wait_until_status(database, job.id, JobStatus.completed)

        async def refused() -> bool:
            return "not claimed" in workers.logs()

        await eventually(refused, timeout=10, what="the second delivery to be refused")
        assert done.attempts == 1
        assert await invoice_counts(database, organization) == (len(orders), len(orders))
        assert (done.processed_items, done.successful_items, done.failed_items) == (400, 400, 0)


@pytest.mark.slow
async def test_a_worker_survives_a_redis_restart(
    settings: Settings, database: Database, workers: Workers, private_redis: RedisServer
) -> None:
    on_private_redis = settings.with_overrides(redis_url=private_redis.url)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 100)
    (worker,) = workers.start(on_private_redis)
    with workers.explaining_failures():
        client = redis.asyncio.Redis.from_url(private_redis.url)
        try:
            health_check = f"{on_private_redis.queue_name}:health-check"
            await eventually(lambda: client.exists(health_check), timeout=20, what="the worker to be running")
        finally:
            await client.aclose()
        private_redis.stop()

        async def noticed() -> bool:
            return "lost Redis" in worker.log()

        await eventually(noticed, timeout=10, what="the worker to notice Redis is gone")
        private_redis.start()

        async with job_queue(on_private_redis) as queue:
            job = await submit(database, queue, on_private_redis, organization, orders)
        done = await wait_until_status(database, job.id, JobStatus.completed)

        assert done.successful_items == len(orders)
        assert worker.process.poll() is None, "the worker process exited"


@pytest.mark.slow
async def test_a_job_submitted_while_redis_is_down_waits_in_postgresql_and_runs_when_redis_returns(
    settings: Settings, database: Database, workers: Workers, private_redis: RedisServer
) -> None:
    on_private_redis = settings.with_overrides(redis_url=private_redis.url)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 100)
    private_redis.stop()
    async with api_client(on_private_redis) as client:
        started = time.monotonic()
        response = await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(o) for o in orders]},
            headers=organization.member.headers,
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert elapsed < 5, f"the request waited {elapsed:.1f} s for Redis"
    job_id = UUID(response.json()["id"])
    assert (await current(database, job_id)).status is JobStatus.pending

    private_redis.start()
    workers.start(on_private_redis)  # its startup sweep enqueues the pending job
    with workers.explaining_failures():
        done = await wait_until_status(database, job_id, JobStatus.completed)
        assert (done.processed_items, done.successful_items) == (len(orders), len(orders))


@pytest.mark.slow
async def test_a_processing_job_is_cancelled_by_its_worker_before_the_next_chunk(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 3000)
    job = await submit(database, queue, settings, organization, orders)
    async with api_client(settings) as client:
        workers.start(settings)
        with workers.explaining_failures():
            await wait_until_processing_started(database, job.id)
            response = await client.post(
                f"/api/batch-jobs/{job.id}/cancel", headers=organization.member.headers
            )
            assert response.status_code == 200, response.text
            assert response.json()["cancel_requested"] is True

            cancelled = await wait_until_status(database, job.id, JobStatus.cancelled)
            invoices, _ = await invoice_counts(database, organization)
            assert 0 < cancelled.processed_items < cancelled.total_items
            assert cancelled.cancelled_items == cancelled.total_items - cancelled.processed_items
            assert invoices == cancelled.successful_items == cancelled.processed_items
            assert await item_statuses(database, job.id) == {
                "succeeded": cancelled.processed_items,
                "cancelled": cancelled.cancelled_items,
            }


async def test_a_job_whose_workers_keep_crashing_at_the_same_place_is_failed_by_the_sweep(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    _, job = await job_ten_of_thirty_done(
        database,
        queue,
        settings,
        lease_owner="dead",
        lease_seconds_left=-1,
        processed_since_claim=0,
        stalled_attempts=2,
    )

    result = await sweep(database, queue, settings.with_overrides(max_job_attempts=3))

    assert (result.failed, result.resumed) == (1, 0)
    failed = await current(database, job.id)
    assert failed.status is JobStatus.failed
    assert [error["code"] for error in failed.errors] == ["worker_crashed"]
    assert "3 times in a row at the same place" in failed.errors[0]["message"]
    assert failed.completed_at is not None
    assert (failed.processed_items, failed.successful_items, failed.failed_items) == (30, 10, 20)
    assert_counters_add_up(failed)
    assert await item_statuses(database, job.id) == {"succeeded": 10, "failed": 20}
    codes = await fetch_one(
        database,
        "SELECT array_agg(DISTINCT error_code) AS codes"
        " FROM batch_job_items WHERE job_id = $1 AND status = 'failed'",
        job.id,
    )
    assert codes["codes"] == ["job_failed"]


async def test_a_crash_after_progress_is_resumed_however_many_claims_came_before(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    _, job = await job_ten_of_thirty_done(
        database,
        queue,
        settings,
        lease_owner="dead",
        lease_seconds_left=-1,
        processed_since_claim=5,
        stalled_attempts=2,
    )

    result = await sweep(database, queue, settings.with_overrides(max_job_attempts=3))

    assert (result.failed, result.resumed) == (0, 1)
    row = await fetch_one(
        database,
        "SELECT job.status, part.lease_owner, part.stalled_attempts, job.last_error_code,"
        " part.lease_expires_at > now() AS backing_off"
        " FROM batch_job_queue job JOIN batch_job_parts part ON part.job_id = job.id WHERE job.id = $1",
        job.id,
    )
    assert dict(row) == {
        "status": "processing",
        "lease_owner": None,
        "stalled_attempts": 1,
        "last_error_code": "worker_crashed",
        "backing_off": True,
    }
