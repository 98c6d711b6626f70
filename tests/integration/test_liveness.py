"""No single order, lock or process can stall or sink a batch.

Each test stages one of the ways a batch used to stall or fail, on real PostgreSQL, Redis and
`invoicing worker` processes, and then checks the invariants: every job finished, one invoice
per order, gapless numbers, counters equal to items, no valid order left uninvoiced.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from uuid import UUID, uuid4

import asyncpg
import pytest

from invoicing.domain.job_states import JobStatus
from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import leases
from invoicing.jobs.progress import PartRange
from invoicing.jobs.sweep import sweep
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import Line, Organization, create_orders, create_organization
from tests.support.jobs import (
    assert_invariants,
    current,
    fetch_one,
    item_codes,
    item_statuses,
    job_queue,
    job_ten_of_thirty_done,
    submit,
    wait_until_processing_started,
    wait_until_status,
)
from tests.support.postgres import PrivateDatabase
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess, Workers


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Small fixed chunks, short leases and quick sweeps: failures show up in seconds."""
    return make_settings(
        database_url,
        redis_url,
        CHUNK_SIZE="20",
        LEASE_SECONDS="3",
        SWEEP_INTERVAL_SECONDS="1",
        RETRY_BACKOFF_SECONDS="0.2",
        RETRY_BACKOFF_MAX_SECONDS="1",
    )


@asynccontextmanager
async def holding(database_url: str, query: str, *args: object) -> AsyncIterator[asyncpg.Connection]:
    """Another session (an ERP, a frozen process) holding row locks until the block ends."""
    connection = await asyncpg.connect(database_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(query, *args)
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


def owner_process(workers: Workers, lease_owner: str | None) -> WorkerProcess:
    """The worker process holding a lease (owners are ``{token}.{pid}@{host}/{run}``)."""
    assert lease_owner is not None, "the job has no owner"
    pid = int(lease_owner.split("@", 1)[0].split(".", 1)[1])
    (process,) = [p for p in workers.processes if p.pid == pid]
    return process


@pytest.mark.slow
async def test_a_poison_order_fails_alone_and_every_other_order_is_invoiced(
    settings: Settings, database: Database, database_url: str, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    valid = await create_orders(database, organization, 300)
    # Its net fits the invoice columns; with its tax, its total does not.
    overflow = Line("Overflow", Decimal("1"), Decimal("99999999999999"), Decimal("0"), Decimal("20"))
    (poison,) = await create_orders(database, organization, 1, lines=(overflow,))
    refused_customer = await marked_customer(database, organization, "REFUSED by the database")
    refused = await create_orders(database, organization, 3, customer_id=refused_customer)
    orders = [*valid[:100], poison, refused[0], *valid[100:200], *refused[1:], *valid[200:]]

    async with database.connection() as connection:
        # A rule of the database that the invoice rules do not know: it refuses those rows.
        await connection.execute(
            "ALTER TABLE invoices ADD CONSTRAINT test_refused CHECK (billing_name NOT LIKE 'REFUSED%')"
        )
    try:
        job = await submit(database, queue, settings, organization, orders)
        workers.start(settings)
        with workers.explaining_failures():
            done = await wait_until_status(database, job.id, JobStatus.completed, within=60)
    finally:
        async with database.connection() as connection:
            await connection.execute("ALTER TABLE invoices DROP CONSTRAINT test_refused")

    codes = await item_codes(database, job.id)
    assert codes[poison] == "amount_out_of_range"
    assert {codes[order_id] for order_id in refused} == {"storage_rejected"}
    assert (done.successful_items, done.failed_items, done.attempts) == (300, 4, 1)
    await assert_invariants(database, organization.id, invoiced=valid)


async def marked_customer(database: Database, organization: Organization, billing_name: str) -> UUID:
    customer_id = uuid4()
    async with database.connection() as connection:
        await connection.execute(
            """
            INSERT INTO customers (id, organization_id, name, billing_name, billing_address, billing_email,
                                   currency)
            VALUES ($1, $2, $3, $3, 'Somewhere 1', 'billing@refused.test', 'EUR')
            """,
            customer_id,
            organization.id,
            billing_name,
        )
    return customer_id


@pytest.mark.slow
async def test_an_order_locked_elsewhere_is_waited_for_without_losing_the_lease(
    settings: Settings, database: Database, database_url: str, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 200)
    held = orders[37]
    async with holding(database_url, "SELECT 1 FROM sales_orders WHERE id = $1 FOR UPDATE", held):
        job = await submit(database, queue, settings, organization, orders)
        workers.start(settings)
        with workers.explaining_failures():

            async def all_but_the_held_one() -> bool:
                return (await current(database, job.id)).processed_items == len(orders) - 1

            await eventually(all_but_the_held_one, what="every order but the held one to be invoiced")
            # Held for longer than a lease (3 s): the heartbeat keeps it, no sweep takes it away.
            renewals: set[object] = set()

            async def lease_renewed_three_times() -> bool:
                row = await fetch_one(
                    database, "SELECT lease_expires_at FROM batch_job_parts WHERE job_id = $1", job.id
                )
                renewals.add(row["lease_expires_at"])
                return len(renewals) > 3

            await eventually(
                lease_renewed_three_times, timeout=20, what="the lease to be renewed while waiting"
            )
    with workers.explaining_failures():
        done = await wait_until_status(database, job.id, JobStatus.completed)
    assert (done.successful_items, done.failed_items, done.attempts) == (200, 0, 1)
    row = await fetch_one(database, "SELECT last_error_code FROM batch_job_queue WHERE id = $1", job.id)
    assert row["last_error_code"] is None, "waiting for a lock is not a failure"
    await assert_invariants(database, organization.id, invoiced=orders)


@pytest.mark.slow
async def test_an_order_locked_for_too_long_fails_alone_with_order_locked(
    settings: Settings, database: Database, database_url: str, queue: JobQueue, workers: Workers
) -> None:
    patient = settings.with_overrides(locked_order_wait_seconds=1.0)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 200)
    held = orders[150]
    async with holding(database_url, "SELECT 1 FROM sales_orders WHERE id = $1 FOR UPDATE", held):
        job = await submit(database, queue, patient, organization, orders)
        workers.start(patient)
        with workers.explaining_failures():
            done = await wait_until_status(database, job.id, JobStatus.completed)

    codes = await item_codes(database, job.id)
    assert codes[held] == "order_locked"
    assert (done.successful_items, done.failed_items, done.attempts) == (199, 1, 1)
    await assert_invariants(database, organization.id, invoiced=[o for o in orders if o != held])


async def test_the_sweep_skips_a_job_held_elsewhere_and_resumes_the_others(
    settings: Settings, database: Database, database_url: str, queue: JobQueue
) -> None:
    frozen_organization, dead_organization = (
        await create_organization(database),
        await create_organization(database),
    )
    frozen = await submit(
        database, queue, settings, frozen_organization, await create_orders(database, frozen_organization, 5)
    )
    dead = await submit(
        database, queue, settings, dead_organization, await create_orders(database, dead_organization, 5)
    )
    async with database.connection() as connection:
        await connection.execute(
            "UPDATE batch_job_queue SET status = 'processing' WHERE id = ANY($1)", [frozen.id, dead.id]
        )
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'gone', lease_expires_at = now() - interval '1 second'"
            " WHERE job_id = ANY($1)",
            [frozen.id, dead.id],
        )
    # A worker frozen in its commit holds its part's row; the database would end its session later.
    async with holding(database_url, "SELECT 1 FROM batch_job_parts WHERE job_id = $1 FOR UPDATE", frozen.id):
        result = await sweep(database, queue, settings.with_overrides(max_job_attempts=5))

        assert result.resumed == 1
        row = await fetch_one(
            database,
            "SELECT part.lease_owner, job.last_error_code FROM batch_job_queue job"
            " JOIN batch_job_parts part ON part.job_id = job.id WHERE job.id = $1",
            dead.id,
        )
        assert dict(row) == {"lease_owner": None, "last_error_code": "worker_crashed"}
        assert (await current(database, frozen.id)).errors == []
    # Once the frozen session is gone, the next sweep takes that job back too.
    assert (await sweep(database, queue, settings.with_overrides(max_job_attempts=5))).resumed == 1


@pytest.mark.slow
async def test_a_frozen_worker_neither_stalls_the_job_nor_writes_after_the_takeover(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    freezing = settings.with_overrides(
        db_idle_in_transaction_timeout_seconds=2.0, locked_order_wait_seconds=30.0
    )
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 5000)
    job = await submit(database, queue, freezing, organization, orders)
    workers.start(freezing)
    with workers.explaining_failures():
        running = await wait_until_processing_started(database, job.id)
        frozen = owner_process(workers, await lease_owner(database, job.id))
        await freeze_mid_transaction(database, frozen)
        progress_at_freeze = (await current(database, job.id)).processed_items
        assert progress_at_freeze < len(orders), "the job finished before it could be frozen"
        workers.start(freezing)
        try:
            done = await wait_until_status(database, job.id, JobStatus.completed, within=60)
        finally:
            log_at_thaw = len(frozen.log())
            os.kill(frozen.pid, signal.SIGCONT)

        async def woke_with_nothing_open() -> bool:
            if len(frozen.log()) == log_at_thaw:
                return False  # not running again yet
            return not await open_transactions(database, frozen)

        await eventually(woke_with_nothing_open, timeout=20, what="the frozen worker to wake and let go")
    assert running.attempts == 1
    assert done.attempts == 2
    assert done.successful_items == len(orders)
    await assert_invariants(database, organization.id, invoiced=orders)


async def lease_owner(database: Database, job_id: UUID) -> str | None:
    """The owner of the job's one part."""
    row = await fetch_one(database, "SELECT lease_owner FROM batch_job_parts WHERE job_id = $1", job_id)
    return row["lease_owner"]  # type: ignore[no-any-return]


async def open_transactions(database: Database, worker: WorkerProcess) -> int:
    row = await fetch_one(
        database,
        "SELECT count(*) AS open FROM pg_stat_activity"
        " WHERE application_name LIKE $1 AND xact_start IS NOT NULL",
        f"invoicing worker %.{worker.pid}@%",
    )
    return int(row["open"])


async def freeze_mid_transaction(database: Database, worker: WorkerProcess) -> None:
    """SIGSTOP the worker at a moment when it has a transaction open (it nearly always has)."""

    async def stopped_inside_a_transaction() -> bool:
        os.kill(worker.pid, signal.SIGSTOP)
        if await open_transactions(database, worker):
            return True
        os.kill(worker.pid, signal.SIGCONT)
        return False

    await eventually(
        stopped_inside_a_transaction, timeout=10, interval=0.01, what="a transaction to freeze in"
    )


@pytest.mark.slow
async def test_a_worker_killed_between_the_hand_over_and_the_claim_does_not_strand_the_job(
    settings: Settings, database: Database, database_url: str, queue: JobQueue, workers: Workers
) -> None:
    waiting = settings.with_overrides(db_lock_timeout_seconds=30.0)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 50)
    job = await submit(database, queue, waiting, organization, orders)
    first_arq_id = keys.arq_job_id(job.id, job.enqueue_generation)
    with workers.explaining_failures():
        # The claim waits on the job row; arq has already handed the message over.
        async with holding(database_url, "SELECT 1 FROM batch_job_queue WHERE id = $1 FOR UPDATE", job.id):
            (first,) = workers.start(waiting)

            async def handed_over_and_claiming() -> bool:
                started = await queue.redis.exists(keys.arq_in_progress(first_arq_id))
                row = await fetch_one(
                    database,
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE application_name LIKE $1 AND wait_event_type = 'Lock'",
                    f"invoicing worker %.{first.pid}@%",
                )
                return bool(started and row["n"])

            await eventually(handed_over_and_claiming, what="the worker to be waiting to claim")
            first.kill()
        assert (await current(database, job.id)).status is JobStatus.pending
        assert await queue.redis.exists(keys.arq_in_progress(first_arq_id)), "arq still thinks it runs"
        workers.start(waiting)
        done = await wait_until_status(database, job.id, JobStatus.completed)
    assert done.successful_items == len(orders)
    assert done.enqueue_generation > job.enqueue_generation
    await assert_invariants(database, organization.id, invoiced=orders)


@pytest.mark.slow
async def test_three_kills_during_a_job_that_progresses_between_them_do_not_fail_it(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    fragile = settings.with_overrides(max_job_attempts=2)
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 4000)
    job = await submit(database, queue, fragile, organization, orders)
    with workers.explaining_failures():
        progress = 0
        for _ in range(3):
            (worker,) = workers.start(fragile)

            async def progressed(since: int = progress) -> int:
                return max(0, (await current(database, job.id)).processed_items - since - 100)

            await eventually(progressed, timeout=30, interval=0.01, what="the job to progress")
            worker.kill()
            progress = (await current(database, job.id)).processed_items
            assert progress < len(orders), "the job finished before the third kill"
        workers.start(fragile)
        done = await wait_until_status(database, job.id, JobStatus.completed, within=60)
    assert done.attempts == 4
    assert (done.successful_items, done.failed_items) == (len(orders), 0)
    await assert_invariants(database, organization.id, invoiced=orders)


@pytest.mark.slow
async def test_a_job_failing_at_the_same_place_backs_off_then_fails_with_the_real_reason(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    organization = await create_organization(database)
    orders = await create_orders(database, organization, 60)
    async with database.connection() as connection:
        # Every chunk that numbers an invoice is stopped by an error of the database's own.
        await connection.execute(
            """
            CREATE FUNCTION test_failure() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'staged failure'; END $$;
            CREATE TRIGGER test_failure BEFORE INSERT OR UPDATE ON invoice_number_counters
            FOR EACH ROW EXECUTE FUNCTION test_failure();
            """
        )
    try:
        three_attempts = settings.with_overrides(max_job_attempts=3)
        job = await submit(database, queue, three_attempts, organization, orders)
        workers.start(three_attempts)
        with workers.explaining_failures():
            failed = await wait_until_status(database, job.id, JobStatus.failed, within=30)
    finally:
        async with database.connection() as connection:
            await connection.execute(
                "DROP TRIGGER test_failure ON invoice_number_counters; DROP FUNCTION test_failure()"
            )
    assert failed.attempts == 3, "three runs, not a hot loop"
    (error,) = failed.errors
    assert error["code"] == "database_error"
    assert "SQLSTATE P0001" in error["message"]
    assert "3 times in a row" in error["message"]
    assert set((await item_codes(database, job.id)).values()) == {"job_failed"}
    await assert_invariants(database, organization.id)


@pytest.mark.slow
async def test_a_postgresql_restart_mid_job_is_waited_out_without_counting_an_attempt(
    private_postgres: PrivateDatabase, redis_url: str, workers: Workers
) -> None:
    # One attempt only, and no sweep or lease expiry within the test: the worker itself must
    # wait for the database and carry on, and the restart must not count as a failure.
    settings = make_settings(
        private_postgres.url,
        redis_url,
        CHUNK_SIZE="20",
        MAX_JOB_ATTEMPTS="1",
        LEASE_SECONDS="60",
        SWEEP_INTERVAL_SECONDS="60",
    )
    async with Database(private_postgres.url, pool_size=3) as database, job_queue(settings) as queue:
        organization = await create_organization(database)
        orders = await create_orders(database, organization, 4000)
        job = await submit(database, queue, settings, organization, orders)
        (worker,) = workers.start(settings)
        with workers.explaining_failures():
            await wait_until_processing_started(database, job.id)
            await asyncio.to_thread(private_postgres.server.restart)
            assert (await current(database, job.id)).status is JobStatus.processing, (
                "finished before the restart"
            )
            done = await wait_until_status(database, job.id, JobStatus.completed, within=60)
            assert "the database went away" in worker.log()
        row = await fetch_one(database, "SELECT last_error_code FROM batch_job_queue WHERE id = $1", job.id)
        assert (done.attempts, row["last_error_code"]) == (1, None)
        assert done.successful_items == len(orders)
        await assert_invariants(database, organization.id, invoiced=orders)


async def test_a_job_backing_off_after_a_failure_is_cancelled_at_once(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    # Ten items done, then a failed run: no worker holds it until its backoff is over.
    organization, job = await job_ten_of_thirty_done(
        database, queue, settings, lease_owner=None, lease_seconds_left=60
    )
    async with api_client(settings) as client:
        response = await client.post(f"/api/batch-jobs/{job.id}/cancel", headers=organization.member.headers)

    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["processed_items"], cancelled["cancelled_items"]) == (
        "cancelled",
        10,
        20,
    )
    assert await item_statuses(database, job.id) == {"succeeded": 10, "cancelled": 20}


@pytest.mark.slow
async def test_a_worker_frozen_in_a_copy_is_cut_off_and_neither_its_job_nor_its_neighbours_stall(
    settings: Settings, database: Database, queue: JobQueue, workers: Workers
) -> None:
    # PostgreSQL's timeouts do not end a backend waiting for the rest of a COPY: the sweep does,
    # once the frozen worker's lease has run out. Meanwhile it holds the job row, the number
    # counter of the organization and a chunk of orders, and a neighbour job of the same
    # organization, running on another worker, waits for that counter without failing.
    one_job_each = settings.with_overrides(chunk_size=400, worker_max_jobs=1)
    organization = await create_organization(database)
    wordy = tuple(Line(description=f"Line {n} " + "x" * 200) for n in range(40))
    orders = await create_orders(database, organization, 4000, lines=wordy)
    neighbour_orders = await create_orders(database, organization, 3000, lines=wordy)
    job = await submit(database, queue, one_job_each, organization, orders)
    (frozen,) = workers.start(one_job_each)
    with workers.explaining_failures():
        await wait_until_processing_started(database, job.id)
        neighbour = await submit(database, queue, one_job_each, organization, neighbour_orders)
        workers.start(one_job_each)
        await wait_until_processing_started(database, neighbour.id)
        try:
            await freeze_in_copy(database, frozen)
            assert (await current(database, neighbour.id)).status is JobStatus.processing, "too late to wait"
            neighbour_done = await wait_until_status(database, neighbour.id, JobStatus.completed, within=90)
            done = await wait_until_status(database, job.id, JobStatus.completed, within=60)
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
    assert done.successful_items == len(orders)
    row = await fetch_one(database, "SELECT last_error_code FROM batch_job_queue WHERE id = $1", neighbour.id)
    assert (neighbour_done.successful_items, neighbour_done.attempts, row["last_error_code"]) == (
        3000,
        1,
        None,
    )
    await assert_invariants(database, organization.id, invoiced=[*orders, *neighbour_orders])


async def freeze_in_copy(database: Database, worker: WorkerProcess) -> None:
    """SIGSTOP the worker while PostgreSQL waits for the rest of one of its COPYs."""

    async def copy_state() -> tuple[bool, bool]:
        row = await fetch_one(
            database,
            "SELECT count(*) FILTER (WHERE wait_event = 'ClientRead') AS waiting, count(*) AS copying"
            " FROM pg_stat_activity WHERE application_name LIKE $1 AND query LIKE 'COPY%'"
            " AND state = 'active'",
            f"invoicing worker %.{worker.pid}@%",
        )
        return bool(row["waiting"]), bool(row["copying"])

    async def stopped_in_a_copy() -> bool:
        os.kill(worker.pid, signal.SIGSTOP)
        # Stopped mid-COPY, the backend first reads what the socket already holds, then waits
        # for the rest: give it until the COPY's data runs out (a quiet machine sends a chunk's
        # COPY in milliseconds, so a single look right after the stop mostly came too early).
        deadline = asyncio.get_running_loop().time() + 0.2
        while True:
            waiting, copying = await copy_state()
            if waiting:
                return True
            if not copying or asyncio.get_running_loop().time() > deadline:
                os.kill(worker.pid, signal.SIGCONT)
                return False
            await asyncio.sleep(0.002)

    await eventually(stopped_in_a_copy, timeout=30, interval=0.005, what="a COPY to freeze in")


async def test_a_run_stopped_on_purpose_after_progress_starts_the_failure_count_again(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    _, job = await job_ten_of_thirty_done(
        database,
        queue,
        settings,
        lease_owner="stopping",
        lease_seconds_left=60,
        processed_since_claim=10,
        stalled_attempts=4,
    )
    async with database.unscoped() as connection:
        assert await leases.release_part(connection, job.id, PartRange(1, 30), "stopping") is not None
    row = await fetch_one(database, "SELECT stalled_attempts FROM batch_job_parts WHERE job_id = $1", job.id)
    assert row["stalled_attempts"] == 0


async def test_a_job_whose_worker_crashed_after_a_cancel_was_asked_ends_cancelled(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    _, job = await job_ten_of_thirty_done(
        database, queue, settings, lease_owner="dead", lease_seconds_left=60, stalled_attempts=4
    )
    async with database.connection() as connection:
        await connection.execute("UPDATE batch_job_queue SET cancel_requested = true WHERE id = $1", job.id)
        await connection.execute(
            "UPDATE batch_job_parts SET lease_expires_at = now() - interval '1 second' WHERE job_id = $1",
            job.id,
        )

    result = await sweep(database, queue, settings.with_overrides(max_job_attempts=5))

    assert (result.failed, result.resumed) == (0, 0)
    cancelled = await current(database, job.id)
    assert (cancelled.status, cancelled.processed_items, cancelled.cancelled_items) == (
        JobStatus.cancelled,
        10,
        20,
    )
    assert await item_statuses(database, job.id) == {"succeeded": 10, "cancelled": 20}
