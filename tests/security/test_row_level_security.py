"""Row-level security: a query that forgot its organization filter still sees only its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

from invoicing.infra.database import APP_ROLE, Database
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.support.app import api_client
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.workers import drain_queue

UNFILTERED = {
    "organizations": "SELECT count(*) FROM organizations",
    "users": "SELECT count(*) FROM users",
    "customers": "SELECT count(*) FROM customers",
    "sales_orders": "SELECT count(*) FROM sales_orders",
    "sales_order_lines": "SELECT count(*) FROM sales_order_lines",
    "batch_job_queue": "SELECT count(*) FROM batch_job_queue",
    "batch_job_items": "SELECT count(*) FROM batch_job_items",
    "invoices": "SELECT count(*) FROM invoices",
    "invoice_lines": "SELECT count(*) FROM invoice_lines",
    "api_tokens": "SELECT count(*) FROM api_tokens",
}


@pytest_asyncio.fixture
async def app_database(settings: Settings) -> AsyncIterator[Database]:
    """The database as the server and the worker see it: acting as the application role."""
    async with application_database(settings, pool_size=2) as connected:
        yield connected


async def invoiced_organization(settings: Settings, database: Database, orders: int) -> Organization:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, orders)
    async with api_client(settings) as client:
        response = await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(i) for i in order_ids]},
            headers=organization.admin.headers,
        )
        assert response.status_code == 202
    await drain_queue(settings)
    return organization


async def test_an_unfiltered_query_sees_only_the_scoped_organization(
    settings: Settings, database: Database, app_database: Database
) -> None:
    mine = await invoiced_organization(settings, database, 3)
    await invoiced_organization(settings, database, 5)
    async with app_database.scoped(mine.id) as connection:
        seen = {table: await connection.fetchval(query) for table, query in UNFILTERED.items()}
    assert seen == {
        "organizations": 1,
        "users": 2,
        "customers": 2,
        "sales_orders": 3,
        "sales_order_lines": 6,
        "batch_job_queue": 1,
        "batch_job_items": 3,
        "invoices": 3,
        "invoice_lines": 6,
        "api_tokens": 2,
    }


async def test_without_an_organization_nothing_is_visible(
    settings: Settings, database: Database, app_database: Database
) -> None:
    await invoiced_organization(settings, database, 2)
    async with app_database.connection() as connection:
        seen = {table: await connection.fetchval(query) for table, query in UNFILTERED.items()}
    assert set(seen.values()) == {0}


async def test_a_row_cannot_be_written_into_another_organization(
    database: Database, app_database: Database
) -> None:
    mine, theirs = await create_organization(database), await create_organization(database)
    async with app_database.scoped(mine.id) as connection:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(
                "INSERT INTO customers (id, organization_id, name, currency) VALUES ($1, $2, 'x', 'EUR')",
                uuid4(),
                theirs.id,
            )


async def test_every_table_with_an_organization_has_row_level_security(database: Database) -> None:
    async with database.connection() as connection:
        unprotected = await connection.fetch(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            WHERE c.relkind = 'r' AND NOT c.relrowsecurity
              AND c.relname <> 'schema_migrations'
            """
        )
    assert [row["relname"] for row in unprotected] == []


async def test_the_application_role_owns_no_table(database: Database) -> None:
    async with database.connection() as connection:
        owned = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1", APP_ROLE
        )
        bypasses = await connection.fetchval(
            "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = $1", APP_ROLE
        )
    assert owned == 0
    assert bypasses is False
