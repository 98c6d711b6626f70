"""Locks held elsewhere: requests wait a bounded time, never while holding a connection another
request needs, and answer 409 or 503 with ``Retry-After`` rather than hang or fail with a 500.

"Elsewhere" is a plain asyncpg connection holding a row or advisory lock in an open
transaction, as an ERP, a batch job or another server process would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
import httpx
import pytest

from invoicing.domain.batch_requests import BatchRequest
from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.infra.write_gate import WriteGate
from invoicing.jobs import actions as batches
from invoicing.jobs import active_jobs
from invoicing.kernel.errors import DatabaseBusy
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client, error_of
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.waiting import eventually


@asynccontextmanager
async def held(database_url: str, statement: str, *args: object) -> AsyncIterator[asyncpg.Connection]:
    """A lock taken by ``statement`` in a transaction of another connection, until the block ends."""
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(statement, *args)
            yield holder
    finally:
        await holder.close()


def submit_lock_of(organization: Organization) -> tuple[str, int, int]:
    return (
        "SELECT pg_advisory_xact_lock($1, $2)",
        active_jobs.SUBMIT_LOCK_CLASS,
        active_jobs.submit_lock_key(organization.id),
    )


async def test_invoicing_an_order_locked_elsewhere_answers_409_order_locked_then_succeeds(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, DB_LOCK_TIMEOUT_SECONDS="0.3")
    order_id = (await create_orders(database, organization, 1))[0]
    path = f"/api/sales-orders/{order_id}/invoice"
    async with api_client(settings) as client:
        async with held(database_url, "SELECT 1 FROM sales_orders WHERE id = $1 FOR UPDATE", order_id):
            started = time.monotonic()
            locked = await client.post(path, headers=organization.member.headers)
            waited = time.monotonic() - started
        invoiced = await client.post(path, headers=organization.member.headers)
    assert error_of(locked) == (409, "order_locked")
    assert locked.json()["error"]["message"] == "The order is being changed elsewhere; try again in a moment."
    assert int(locked.headers["Retry-After"]) > 0
    assert waited < 5, f"waited {waited:.1f} s for the lock"
    assert invoiced.status_code == 201, invoiced.text


async def test_any_other_request_that_waits_too_long_for_a_lock_answers_503_database_busy(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, DB_LOCK_TIMEOUT_SECONDS="0.3")
    async with api_client(settings) as client:
        job = await client.post(
            "/api/batch-jobs", json={"order_ids": [str(UUID(int=1))]}, headers=organization.member.headers
        )
        job_id = job.json()["id"]
        async with held(database_url, "SELECT 1 FROM batch_job_queue WHERE id = $1 FOR UPDATE", UUID(job_id)):
            busy = await client.post(f"/api/batch-jobs/{job_id}/cancel", headers=organization.member.headers)
        cancelled = await client.post(f"/api/batch-jobs/{job_id}/cancel", headers=organization.member.headers)
    assert error_of(busy) == (503, "database_busy")
    assert int(busy.headers["Retry-After"]) > 0
    assert cancelled.status_code == 200


async def test_a_statement_past_the_statement_timeout_answers_503_database_timeout(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    # Without a lock timeout, the statement timeout is what ends the cancel's wait for the job.
    settings = make_settings(
        database_url, redis_url, DB_LOCK_TIMEOUT_SECONDS="0", DB_STATEMENT_TIMEOUT_SECONDS="0.3"
    )
    async with api_client(settings) as client:
        job = await client.post(
            "/api/batch-jobs", json={"order_ids": [str(UUID(int=1))]}, headers=organization.member.headers
        )
        job_id = job.json()["id"]
        async with held(database_url, "SELECT 1 FROM batch_job_queue WHERE id = $1 FOR UPDATE", UUID(job_id)):
            timed_out = await client.post(
                f"/api/batch-jobs/{job_id}/cancel", headers=organization.member.headers
            )
    assert error_of(timed_out) == (503, "database_timeout")
    assert int(timed_out.headers["Retry-After"]) > 0


async def test_submits_waiting_for_their_turn_hold_no_connection_and_reads_go_on(
    database_url: str, redis_url: str, database: Database, queue: JobQueue, organization: Organization
) -> None:
    # A pool of 4, and no lock timeout: a submit waiting on the organization's lock inside
    # PostgreSQL would wait there, holding its connection, for as long as the lock is held.
    settings = make_settings(
        database_url, redis_url, DB_POOL_SIZE="4", DB_LOCK_TIMEOUT_SECONDS="0", MAX_ACTIVE_JOBS_PER_ORG="100"
    )
    order_ids = await create_orders(database, organization, 20)
    headers = organization.member.headers
    async with api_client(settings) as client:
        async with held(database_url, *submit_lock_of(organization)) as holder:
            submits = submitting(client, organization, order_ids)
            await all_waiting(queue, settings, organization, len(submits))
            async with asyncio.timeout(20):
                reads = [
                    (await client.get("/api/batch-jobs", headers=headers)).status_code for _ in range(10)
                ]
            waiting_in_postgres = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            assert not any(submit.done() for submit in submits), "no submit can pass while the lock is held"
        accepted = [response.status_code for response in await asyncio.gather(*submits)]
    assert reads == [200] * 10, "reads are answered while every submit waits"
    assert waiting_in_postgres == 0, "no request waits for the lock inside PostgreSQL, holding a connection"
    assert accepted == [202] * 20, "once the lock is free, every submit gets its turn"


async def all_waiting(queue: JobQueue, settings: Settings, organization: Organization, count: int) -> None:
    """Until ``count`` submits of the organization's member are past validation, waiting for their turn.

    Each counts against the user's job quota once validated, before it is written.
    """
    quota = keys.job_creation_limit(settings.redis_prefix, organization.member.id)

    async def every_submit_is_waiting() -> bool:
        return int(await queue.redis.get(quota) or 0) == count

    await eventually(every_submit_is_waiting, what=f"{count} submits to wait for their turn")


def submitting(
    client: httpx.AsyncClient, organization: Organization, order_ids: list[UUID]
) -> list[asyncio.Task[httpx.Response]]:
    """One submit of one order per id, all sent at once."""
    return [
        asyncio.create_task(
            client.post(
                "/api/batch-jobs", json={"order_ids": [str(order_id)]}, headers=organization.member.headers
            )
        )
        for order_id in order_ids
    ]


async def test_parallel_submits_through_two_server_processes_never_exceed_the_active_jobs_cap(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    # Two apps, two pools, two write gates: two server processes sharing one database.
    settings = make_settings(
        database_url, redis_url, MAX_ACTIVE_JOBS_PER_ORG="3", JOB_CREATE_PER_MINUTE="100"
    )
    order_ids = [str(order_id) for order_id in await create_orders(database, organization, 10)]
    async with api_client(settings) as first, api_client(settings) as second:
        responses = await asyncio.gather(
            *(
                (first, second)[n % 2].post(
                    "/api/batch-jobs", json={"order_ids": [order_id]}, headers=organization.member.headers
                )
                for n, order_id in enumerate(order_ids)
            )
        )
    answers = sorted((r.status_code, r.json().get("error", {}).get("code", "")) for r in responses)
    assert answers == [(202, "")] * 3 + [(429, "too_many_active_jobs")] * 7


async def test_a_submit_whose_turn_does_not_come_in_time_is_refused_as_busy_and_writes_nothing(
    database_url: str, redis_url: str, database: Database, queue: JobQueue, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url)
    principal = Principal(organization.member.id, organization.id, "member", organization.member.email)
    request = BatchRequest(order_ids=(UUID(int=1),))
    gate = WriteGate(slots=1, wait_seconds=0.5)
    async with held(database_url, *submit_lock_of(organization)):
        with pytest.raises(DatabaseBusy):
            await batches.submit_batch(database, queue, principal, request, settings, gate=gate)
    job = await batches.submit_batch(database, queue, principal, request, settings, gate=gate)
    async with database.connection() as connection:
        jobs = await connection.fetchval(
            "SELECT count(*) FROM batch_job_queue WHERE organization_id = $1", organization.id
        )
    assert (jobs, job.total_items) == (1, 1)


async def test_submits_of_other_organizations_are_not_held_up_by_a_busy_one(
    database_url: str, redis_url: str, database: Database, queue: JobQueue, organization: Organization
) -> None:
    # A pool of 2: one write slot, which the busy organization's submits must not keep.
    settings = make_settings(database_url, redis_url, DB_POOL_SIZE="2", DB_LOCK_TIMEOUT_SECONDS="0")
    other = await create_organization(database)
    async with api_client(settings) as client:
        async with held(database_url, *submit_lock_of(organization)):
            waiting = submitting(client, organization, await create_orders(database, organization, 5))
            await all_waiting(queue, settings, organization, len(waiting))
            async with asyncio.timeout(20):
                elsewhere = await client.post(
                    "/api/batch-jobs", json={"order_ids": [str(UUID(int=7))]}, headers=other.member.headers
                )
            assert not any(task.done() for task in waiting)
        accepted = [response.status_code for response in await asyncio.gather(*waiting)]
    assert elsewhere.status_code == 202, elsewhere.text
    assert accepted == [202] * 5
