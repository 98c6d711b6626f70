"""Migrations: idempotent, safe when several processes start at once, and what the code expects."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from invoicing.infra.database import Database
from invoicing.infra.migrations import load_migrations, migrate
from invoicing.invoices.store import INVOICE_COLUMNS, LINE_COLUMNS
from invoicing.invoices.views import Invoice
from invoicing.jobs.views import BatchJob, BatchJobItem
from tests.support.services import database_url_for


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
