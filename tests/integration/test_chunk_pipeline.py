"""Overlapping chunks (invoicing.jobs.pipeline): commits in item order, nothing twice, nothing leaked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
import pytest_asyncio

from invoicing.infra.database import Database
from invoicing.jobs import leases
from invoicing.jobs import store as jobs
from invoicing.jobs.chunks import ChunkOutcome
from invoicing.jobs.pipeline import JobRun, committed_chunks
from invoicing.jobs.progress import PartRange
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.support.factories import Organization, create_mixed_orders, create_orders, create_organization

OWNER = "test-worker"


#: One part covers every job of these tests.
PART_SIZE = 1000
WHOLE_JOB = PartRange(1, PART_SIZE)


async def claimed_job(database: Database, organization: Organization, order_ids: list[UUID]) -> UUID:
    async with database.scoped(organization.id) as connection:
        job = await jobs.create_job(
            connection,
            organization_id=organization.id,
            created_by=organization.member.id,
            order_ids=order_ids,
            payload={},
            part_size=PART_SIZE,
        )
    async with database.scoped(organization.id) as connection:
        claimed = await leases.claim_part(connection, job.id, OWNER, 60)
    assert claimed is not None
    assert claimed.part == PartRange(1, len(order_ids))
    return job.id


async def job_of_forty_orders(database: Database, app_database: Database) -> tuple[Organization, JobRun]:
    """An organization and the run a worker would make of its claimed job of 40 valid orders."""
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 40)
    job_id = await claimed_job(app_database, organization, order_ids)
    return organization, JobRun(app_database, job_id, PartRange(1, 40), OWNER, organization.id, 60)


async def run_to_the_end(
    database: Database, job_id: UUID, organization: Organization, size: int
) -> list[ChunkOutcome]:
    run = JobRun(database, job_id, WHOLE_JOB, OWNER, organization.id, 60)
    async with contextlib.aclosing(committed_chunks(run, lambda: size)) as chunks:
        return [outcome async for outcome in chunks]


async def written(database: Database, job_id: UUID) -> tuple[int, int]:
    """How many of the job's items left pending, and how many invoices the job created."""
    async with database.connection() as connection:
        processed = await connection.fetchval(
            "SELECT count(*) FROM batch_job_items WHERE job_id = $1 AND status <> 'pending'", job_id
        )
        invoiced = await connection.fetchval("SELECT count(*) FROM invoices WHERE batch_job_id = $1", job_id)
    return processed, invoiced


@pytest_asyncio.fixture
async def app_database(settings: Settings) -> AsyncIterator[Database]:
    """The database as the worker sees it: as the application role, under row-level security."""
    async with application_database(settings, pool_size=4, min_size=4) as database:
        yield database


async def test_chunks_commit_in_item_order_and_numbers_follow_the_items(
    database: Database, app_database: Database
) -> None:
    organization = await create_organization(database)
    orders = await create_mixed_orders(database, organization, valid=25)
    job_id = await claimed_job(app_database, organization, orders.all_ids)

    outcomes = await run_to_the_end(app_database, job_id, organization, size=4)

    total = len(orders.all_ids)
    assert [o.last_position for o in outcomes] == [*range(4, total, 4), total]
    sequence_numbers = [o.job.progress_seq for o in outcomes if o.job]
    assert sequence_numbers == sorted(sequence_numbers)
    final = outcomes[-1].job
    assert final is not None
    assert final.status.value == "completed"
    assert (final.processed_items, final.successful_items) == (total, 25)
    async with database.connection() as connection:
        numbered = await connection.fetch(
            """
            SELECT item.position, invoice.sequence FROM batch_job_items item
            JOIN invoices invoice ON invoice.id = item.invoice_id
            WHERE item.job_id = $1 ORDER BY item.position
            """,
            job_id,
        )
    assert [row["sequence"] for row in numbered] == list(range(1, 26)), "gapless, in item order"


async def test_a_cancel_between_chunks_stops_the_job_with_nothing_of_the_prepared_chunk(
    database: Database, app_database: Database
) -> None:
    organization, run = await job_of_forty_orders(database, app_database)
    job_id = run.job_id

    async with contextlib.aclosing(committed_chunks(run, lambda: 5)) as chunks:
        seen = [await anext(chunks)]
        async with app_database.scoped(organization.id) as connection:
            await jobs.request_cancel(connection, organization.id, job_id, organization.member.id)
        seen += [outcome async for outcome in chunks]

    final = seen[-1].job
    assert final is not None
    assert final.status.value == "cancelled"
    assert final.processed_items + final.cancelled_items == 40
    _, invoiced = await written(database, job_id)
    assert invoiced == final.successful_items == final.processed_items


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 13, 21])
async def test_stopping_the_worker_at_any_moment_gives_every_connection_back(
    database: Database, settings: Settings, steps: int
) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 60)
    worker_database = application_database(settings, pool_size=4, min_size=4)
    await worker_database.connect()
    job_id = await claimed_job(worker_database, organization, order_ids)
    running = asyncio.create_task(run_to_the_end(worker_database, job_id, organization, size=5))
    for _ in range(steps):  # let it get to a different point each time, then stop it
        await asyncio.sleep(0.002)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

    await asyncio.wait_for(worker_database.disconnect(), timeout=10)

    processed, invoiced = await written(database, job_id)
    assert processed == invoiced, "every committed chunk is whole"


async def test_a_lost_lease_stops_the_run_before_the_next_commit(
    database: Database, app_database: Database
) -> None:
    _, run = await job_of_forty_orders(database, app_database)
    job_id = run.job_id

    async with contextlib.aclosing(committed_chunks(run, lambda: 5)) as chunks:
        first = await anext(chunks)
        async with database.connection() as connection:  # another worker took the job over
            await connection.execute(
                "UPDATE batch_job_parts SET lease_owner = 'other' WHERE job_id = $1", job_id
            )
        rest = [outcome async for outcome in chunks]

    assert first.job is not None
    assert [outcome.job for outcome in rest][-1] is None
    processed, invoiced = await written(database, job_id)
    committed = [o for o in [first, *rest] if o.job is not None]
    assert processed == invoiced == 5 * len(committed), "nothing written after the lease was lost"
