"""Migrations: idempotent, safe when several processes start at once, and what the code expects."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from invoicing.domain.job_states import JobStatus
from invoicing.infra.database import Database
from invoicing.infra.migrations import load_migrations, migrate, migrations_dir
from invoicing.infra.roles import ensure_runtime_role
from invoicing.invoices.store import INVOICE_COLUMNS, LINE_COLUMNS
from invoicing.invoices.views import Invoice
from invoicing.jobs.views import BatchJob, BatchJobItem
from tests.conftest import make_settings, runtime_url, seal_scopes
from tests.support.factories import create_orders, create_organization
from tests.support.jobs import current
from tests.support.services import database_url_for
from tests.support.waiting import eventually
from tests.support.workers import Workers


@pytest_asyncio.fixture
async def empty_database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    name = f"invoicing_test_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url_for(postgres_admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _columns(database: Database, table: str) -> set[str]:
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
        )
    return {row["column_name"] for row in rows}


async def test_migrating_twice_applies_nothing_the_second_time(empty_database_url: str) -> None:
    async with Database(empty_database_url, pool_size=2) as database:
        first = await migrate(database)
        second = await migrate(database)
    assert first == [m.version for m in load_migrations()]
    assert second == []


async def test_processes_migrating_at_once_apply_each_migration_once(empty_database_url: str) -> None:
    databases = [Database(empty_database_url, pool_size=2) for _ in range(4)]
    for database in databases:
        await database.connect()
    try:
        results = await asyncio.gather(*(migrate(database) for database in databases))
    finally:
        for database in databases:
            await database.disconnect()
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in load_migrations()]


async def test_migrated_schema_has_every_column_the_code_reads_and_writes(database: Database) -> None:
    job_columns = await _columns(database, "batch_job_queue")
    assert set(BatchJob.__slots__) - set(BatchJob.DERIVED_FIELDS) <= job_columns
    seed_names = {"id", "organization_id", "job_type", "status", "total_items", "processed_items"}
    seed_names |= {"successful_items", "failed_items", "payload", "errors"}
    seed_names |= {"created_at", "started_at", "completed_at"}
    assert seed_names <= job_columns, "the seed's batch_job_queue columns keep their names"
    read_beside = {"order_number", "invoice_number"}  # joined from the order and the invoice
    assert set(BatchJobItem.__slots__) - read_beside <= await _columns(database, "batch_job_items")
    assert set(INVOICE_COLUMNS) <= await _columns(database, "invoices")
    assert set(Invoice.__slots__) - {"lines"} <= await _columns(database, "invoices")
    assert set(LINE_COLUMNS) <= await _columns(database, "invoice_lines")


async def test_the_database_refuses_a_second_invoice_for_an_order(database: Database) -> None:
    async with database.connection() as connection:
        definition = await connection.fetchval(
            """
            SELECT pg_get_indexdef(indexrelid) FROM pg_index
            WHERE indrelid = 'invoices'::regclass AND indisunique
              AND pg_get_indexdef(indexrelid) LIKE '%(sales_order_id)'
            """
        )
    assert definition is not None


@pytest.mark.slow
async def test_migration_0013_keeps_the_progress_of_a_run_in_flight(
    empty_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(migrations_dir().glob("*.sql")):
        if int(path.name[:4]) < 13:
            shutil.copy(path, before / path.name)
    pool = Workers(tmp_path)
    try:
        async with Database(url, pool_size=2) as database:
            await migrate(database, before)
            organization = await create_organization(database)
            orders = await create_orders(database, organization, 30)
            async with database.transaction() as connection:
                # A run of the old code in flight when the deploy stopped it: ten items done by
                # this run (claimed_progress 0) after four runs in a row without progress.
                job_id = await connection.fetchval(
                    """
                    INSERT INTO batch_job_queue (organization_id, job_type, total_items, created_by, status,
                        processed_items, successful_items, lease_owner, lease_expires_at, attempts,
                        stalled_attempts, claimed_progress, started_at)
                    VALUES ($1, 'bulk_invoice', 30, $2, 'processing', 0, 0, 'old.1@h/x',
                            now() - interval '1 second', 5, 4, 0, now())
                    RETURNING id
                    """,
                    organization.id,
                    organization.admin.id,
                )
                await connection.execute(
                    "INSERT INTO batch_job_items (job_id, position, order_id, organization_id)"
                    " SELECT $1, n, order_id, $3 FROM unnest($2::uuid[]) WITH ORDINALITY AS t(order_id, n)",
                    job_id,
                    orders,
                    organization.id,
                )
                # Its ten items done (invoices aside: the counters are what the sweep reads).
                await connection.execute(
                    "UPDATE batch_job_items SET status = 'failed', error_code = 'x', processed_at = now()"
                    " WHERE job_id = $1 AND position <= 10",
                    job_id,
                )
                await connection.execute(
                    "UPDATE batch_job_queue SET processed_items = 10, failed_items = 10 WHERE id = $1", job_id
                )
            await migrate(database)
            await ensure_runtime_role(database, runtime_url(url))
            await seal_scopes(database)
        settings = make_settings(
            url, redis_url, SWEEP_INTERVAL_SECONDS="0.5", RETRY_BACKOFF_SECONDS="0.05", MAX_JOB_ATTEMPTS="5"
        )
        pool.start(settings)
        async with Database(url, pool_size=2) as database:
            with pool.explaining_failures():

                async def finished() -> Any:
                    job = await current(database, job_id)
                    return job if job.is_finished else None

                done = await eventually(finished, timeout=30, interval=0.1, what="the migrated job to finish")
        # The old run progressed: its stop is its first failure in a row, not the fifth.
        assert done.status is JobStatus.completed, (done.status, done.errors)
    finally:
        pool.stop_all()
