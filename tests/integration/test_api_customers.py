"""GET /api/customers: the organization's customers by name, paged, and nobody else's."""

from __future__ import annotations

from uuid import uuid4

import httpx

from invoicing.infra.database import Database
from tests.support.app import error_of, walk
from tests.support.factories import Organization, create_organization


async def add_customers(database: Database, organization: Organization, names: list[str]) -> None:
    async with database.transaction() as connection:
        await connection.executemany(
            "INSERT INTO customers (id, organization_id, name, currency) VALUES ($1, $2, $3, 'USD')",
            [(uuid4(), organization.id, name) for name in names],
        )


async def test_customers_come_by_name_page_by_page_and_only_the_organizations_own(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other = await create_organization(database)
    # Same names twice, and a name far longer than a cursor may be.
    await add_customers(database, organization, ["Zeta", "Beta", "Beta", "x" * 2000])
    await add_customers(database, other, ["Alpha of another organization"])

    pages = await walk(client, "/api/customers", organization.member.headers, limit="2")
    assert [len(page) for page in pages] == [2, 2, 2]
    customers = [customer for page in pages for customer in page]

    async with database.connection() as connection:
        expected = await connection.fetch(
            "SELECT id FROM customers WHERE organization_id = $1 ORDER BY name, id", organization.id
        )
    assert [customer["id"] for customer in customers] == [str(row["id"]) for row in expected]
    names = [customer["name"] for customer in customers]
    assert len(customers) == 6
    assert len({customer["id"] for customer in customers}) == 6
    assert {customer["currency"] for customer in customers} == {"EUR", "USD"}
    assert set(customers[0]) == {"id", "name", "currency"}
    assert "Alpha of another organization" not in names


async def test_a_bad_cursor_or_parameter_is_refused(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    headers = organization.member.headers
    assert error_of(await client.get("/api/customers?cursor=nonsense", headers=headers)) == (
        400,
        "invalid_cursor",
    )
    assert error_of(await client.get("/api/customers?name=x", headers=headers))[0] == 400
    assert (await client.get("/api/customers")).status_code == 401
