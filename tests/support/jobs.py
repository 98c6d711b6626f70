"""Batch jobs in tests: submitting as a user would, reading back, waiting, and the invariants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any
from uuid import UUID

from invoicing.domain.batch_requests import BatchRequest
from invoicing.domain.job_states import JobStatus, Priority
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue, connect_redis
from invoicing.jobs import actions as batches
from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess


@asynccontextmanager
async def job_queue(settings: Settings) -> AsyncIterator[JobQueue]:
    _, redis_url = settings.require_services()
    queue = JobQueue(connect_redis(redis_url), settings)
    try:
        yield queue
    finally:
        await queue.close()


async def submit(
    database: Database,
    queue: JobQueue,
    settings: Settings,
    organization: Organization,
    orders: list[UUID],
    *,
    priority: Priority | None = None,
) -> BatchJob:
    admin = organization.admin
    principal = Principal(admin.id, organization.id, admin.role, admin.email)
    request = BatchRequest(tuple(orders), priority=priority)
    return await batches.submit_batch(database, queue, principal, request, settings)


async def current(database: Database, job_id: UUID) -> BatchJob:
    async with database.connection() as connection:
        row = await connection.fetchrow(f"SELECT {JOB} FROM batch_job_queue WHERE id = $1", job_id)
    return BatchJob.from_row(row)


async def wait_until_status(
    database: Database, job_id: UUID, status: JobStatus, within: float = 30
) -> BatchJob:
    async def reached() -> BatchJob | None:
        job = await current(database, job_id)
        return job if job.status is status else None

    return await eventually(reached, timeout=within, interval=0.1, what=f"job {job_id} to be {status.value}")


async def wait_until_processing_started(database: Database, job_id: UUID) -> BatchJob:
    async def started() -> BatchJob | None:
        job = await current(database, job_id)
        return job if job.status is JobStatus.processing and job.processed_items > 0 else None

    return await eventually(started, timeout=20, interval=0.01, what=f"job {job_id} to commit a first chunk")


async def fetch_one(database: Database, query: str, *args: Any) -> Any:
    async with database.connection() as connection:
        return await connection.fetchrow(query, *args)


async def item_statuses(database: Database, job_id: UUID) -> dict[str, int]:
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT status, count(*) AS n FROM batch_job_items WHERE job_id = $1 GROUP BY status", job_id
        )
    return {row["status"]: row["n"] for row in rows}


def assert_counters_add_up(job: BatchJob) -> None:
    assert job.processed_items == job.successful_items + job.failed_items, job
    assert job.processed_items + job.cancelled_items == job.total_items, job


def ran_side_by_side(jobs: list[BatchJob]) -> bool:
    """True if at least two of the jobs were processing at the same moment."""
    spans = sorted((job.started_at, job.completed_at) for job in jobs if job.started_at and job.completed_at)
    return any(later[0] < earlier[1] for earlier, later in pairwise(spans))


async def wait_until_running(process: WorkerProcess) -> None:
    async def started() -> bool:
        return "Starting worker" in process.log()

    await eventually(started, timeout=20, what=f"{process.log_path.name} to start")


async def invoice_counts(database: Database, organization: Organization) -> tuple[int, int]:
    """(invoices, distinct orders invoiced) of the organization."""
    row = await fetch_one(
        database,
        "SELECT count(*) AS invoices, count(DISTINCT sales_order_id) AS orders"
        " FROM invoices WHERE organization_id = $1",
        organization.id,
    )
    return row["invoices"], row["orders"]


async def assert_invariants(
    database: Database, organization_id: UUID, *, invoiced: Sequence[UUID] = ()
) -> None:
    """What must hold whatever happened: every job of the organization finished, one invoice per
    order, gapless numbers, each job's counters equal to its items (and its invoices), and each
    order of ``invoiced`` invoiced."""
    async with database.connection() as connection:
        unfinished = await connection.fetch(
            "SELECT id, status FROM batch_job_queue"
            " WHERE organization_id = $1 AND status IN ('pending', 'processing')",
            organization_id,
        )
        assert not unfinished, f"jobs not finished: {unfinished}"
        twice = await connection.fetch(
            "SELECT sales_order_id FROM invoices WHERE organization_id = $1 GROUP BY 1 HAVING count(*) > 1",
            organization_id,
        )
        assert not twice, f"orders invoiced twice: {twice}"
        for year in await connection.fetch(
            "SELECT year, count(*) AS n, min(sequence) AS low, max(sequence) AS high"
            " FROM invoices WHERE organization_id = $1 GROUP BY year",
            organization_id,
        ):
            assert (year["low"], year["high"]) == (1, year["n"]), f"numbers of {year['year']} have gaps"
        mismatched = await connection.fetch(
            """
            SELECT job.id, job.processed_items, job.successful_items, job.failed_items, job.cancelled_items,
                   job.total_items, items.*
            FROM batch_job_queue job
            CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE item.status = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE item.status = 'failed') AS failed,
                       count(*) FILTER (WHERE item.status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE item.status = 'pending') AS pending,
                       (SELECT count(*) FROM invoices WHERE batch_job_id = job.id) AS invoices
                FROM batch_job_items item WHERE item.job_id = job.id
            ) AS items
            WHERE job.organization_id = $1
              AND (job.successful_items <> items.succeeded OR job.failed_items <> items.failed
                   OR job.cancelled_items <> items.cancelled OR items.pending <> 0
                   OR job.successful_items <> items.invoices
                   OR job.processed_items <> job.successful_items + job.failed_items
                   OR job.processed_items + job.cancelled_items <> job.total_items)
            """,
            organization_id,
        )
        assert not mismatched, f"counters that do not match the items: {[dict(row) for row in mismatched]}"
        if invoiced:
            missing = await connection.fetchval(
                "SELECT count(*) FROM unnest($1::uuid[]) AS wanted(id)"
                " WHERE NOT EXISTS (SELECT 1 FROM invoices WHERE sales_order_id = wanted.id)",
                list(invoiced),
            )
            assert missing == 0, f"{missing} valid orders left uninvoiced"


async def item_codes(database: Database, job_id: UUID) -> dict[UUID, str | None]:
    """Order id → the code of its item's failure (None if it did not fail)."""
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT order_id, error_code FROM batch_job_items WHERE job_id = $1", job_id
        )
    return {row["order_id"]: row["error_code"] for row in rows}


async def job_ten_of_thirty_done(
    database: Database,
    queue: JobQueue,
    settings: Settings,
    *,
    lease_owner: str | None,
    lease_seconds_left: float,
    processed_since_claim: int = 0,
    stalled_attempts: int = 0,
) -> tuple[Organization, BatchJob]:
    """A processing job of 30 orders (one part) of a new organization, ten of them invoiced, as
    a run left it: its part held by ``lease_owner`` (None: handed back) until
    ``lease_seconds_left`` from now (negative: lapsed); ``processed_since_claim`` of the ten
    done by the last claim, after ``stalled_attempts`` failed runs in a row."""
    organization = await create_organization(database)
    job = await submit(
        database, queue, settings, organization, await create_orders(database, organization, 30)
    )
    async with database.transaction() as connection:
        await connection.execute(
            "UPDATE batch_job_items SET status = 'succeeded' WHERE job_id = $1 AND position <= 10", job.id
        )
        await connection.execute(
            """
            UPDATE batch_job_queue
            SET status = 'processing', attempts = 7, processed_items = 10, successful_items = 10
            WHERE id = $1
            """,
            job.id,
        )
        await connection.execute(
            """
            UPDATE batch_job_parts
            SET processed_since_claim = $2, stalled_attempts = $3, lease_owner = $4,
                lease_expires_at = now() + make_interval(secs => $5)
            WHERE job_id = $1
            """,
            job.id,
            processed_since_claim,
            stalled_attempts,
            lease_owner,
            lease_seconds_left,
        )
    return organization, job
