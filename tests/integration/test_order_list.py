"""The clerk's order list: one total everywhere, no order in two running jobs, month-end filters,
reads bounded in time, and plans that do not depend on the statistics."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client, error_of
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.workers import drain_queue

UNINVOICED = {"status": "confirmed", "invoiced": "false"}
# Minor units 0, 2 and 3.
CURRENCIES = ("EUR", "USD", "JPY", "KWD", "GBP", "BHD", "CHF")


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    """Every page of the list."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": "500", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/sales-orders", params=query, headers=headers)
        assert response.status_code == 200, response.text
        found += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


async def counted(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await client.get(
        "/api/sales-orders", params={**params, "include_total": "true", "limit": "1"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {"total": body["total"], "in_active_jobs": body["in_active_jobs"]}


async def create_random_orders(
    database: Database, organization: Organization, rng: random.Random, count: int
) -> dict[UUID, str]:
    """Orders in many currencies with awkward lines (4-decimal prices and quantities, discounts,
    several tax rates); returns order id → currency."""
    currencies: dict[UUID, str] = {}
    async with database.transaction() as connection:
        customers = {
            currency: await connection.fetchval(
                """
                INSERT INTO customers
                    (organization_id, name, billing_name, billing_address, billing_email, currency)
                VALUES ($1, $2::text, 'Billing', '1 Street', 'billing@example.com', $2) RETURNING id
                """,
                organization.id,
                currency,
            )
            for currency in CURRENCIES
        }
        for n in range(count):
            currency = rng.choice(CURRENCIES)
            order_id = uuid4()
            await connection.execute(
                """
                INSERT INTO sales_orders (id, organization_id, number, customer_id, status, currency)
                VALUES ($1, $2, $3, $4, 'confirmed', $5)
                """,
                order_id,
                organization.id,
                f"R-{n:05d}",
                customers[currency],
                currency,
            )
            for position in range(1, rng.randint(1, 6) + 1):
                await connection.execute(
                    """
                    INSERT INTO sales_order_lines (sales_order_id, organization_id, position, description,
                        quantity, unit_price, discount_percent, tax_rate_percent)
                    VALUES ($1, $2, $3, 'Item', $4, $5, $6, $7)
                    """,
                    order_id,
                    organization.id,
                    position,
                    Decimal(rng.randint(1, 99_999)).scaleb(-rng.choice((0, 2, 4))),
                    Decimal(rng.randint(0, 9_999_999)).scaleb(-4),
                    rng.choice((Decimal(0), Decimal("2.5"), Decimal("12.3456"), Decimal(15))),
                    rng.choice((Decimal(0), Decimal(7), Decimal(19), Decimal("20.5"), Decimal("8.875"))),
                )
            currencies[order_id] = currency
    return currencies


async def test_the_listed_total_is_the_invoice_total_for_random_orders_in_every_currency(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    rng = random.Random(20261129)
    currencies = await create_random_orders(database, organization, rng, 300)
    headers = organization.member.headers
    before = {UUID(order["id"]): order["total"] for order in await listed(client, headers, **UNINVOICED)}
    assert set(before) == set(currencies)

    response = await client.post("/api/batch-jobs", json={"filter": {}}, headers=organization.admin.headers)
    assert response.status_code == 202, response.text
    await drain_queue(settings)

    async with database.unscoped() as connection:
        rows = await connection.fetch(
            "SELECT sales_order_id, total, currency FROM invoices WHERE organization_id = $1", organization.id
        )
    invoiced = {row["sales_order_id"]: row for row in rows}
    assert set(invoiced) == set(currencies)
    differing = {
        order_id: (before[order_id], str(row["total"]), row["currency"])
        for order_id, row in invoiced.items()
        if Decimal(before[order_id]) != row["total"]
    }
    assert differing == {}
    # Invoiced, the list shows the invoice's own total.
    after = {UUID(order["id"]): order["total"] for order in await listed(client, headers, invoiced="true")}
    assert after == before


async def test_an_order_whose_lines_cannot_be_invoiced_has_no_total(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1, lines=())
    (order,) = await listed(client, organization.member.headers, **UNINVOICED)
    assert (order["id"], order["total"]) == (str(order_id), None)


async def test_orders_in_a_running_job_are_marked_counted_and_left_out_of_all_matching(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 10)
    headers = organization.member.headers
    first = await client.post(
        "/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids[:4]]}, headers=headers
    )
    assert first.status_code == 202
    job_id = first.json()["id"]

    shown = {order["id"]: order["active_job_id"] for order in await listed(client, headers, **UNINVOICED)}
    assert shown == {str(i): (job_id if i in order_ids[:4] else None) for i in order_ids}
    assert await counted(client, headers, **UNINVOICED) == {"total": 10, "in_active_jobs": 4}
    totals = (await client.get("/api/sales-orders/totals", params=UNINVOICED, headers=headers)).json()
    assert totals == {
        "currencies": [{"currency": "EUR", "orders": 6, "total": str(Decimal("139.25") * 6)}],
        "orders": 6,
        "without_total": 0,
    }

    everything = await client.post("/api/batch-jobs", json={"filter": {}}, headers=headers)
    assert everything.status_code == 202
    assert everything.json()["total_items"] == 6
    assert await counted(client, headers, **UNINVOICED) == {"total": 10, "in_active_jobs": 10}
    nothing_left = await client.post("/api/batch-jobs", json={"filter": {}}, headers=headers)
    assert error_of(nothing_left) == (400, "empty_batch")


async def test_a_batch_naming_orders_of_a_running_job_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = [str(i) for i in await create_orders(database, organization, 6)]
    headers = organization.member.headers
    running = await client.post("/api/batch-jobs", json={"order_ids": order_ids[:3]}, headers=headers)

    refused = await client.post("/api/batch-jobs", json={"order_ids": order_ids[1:]}, headers=headers)

    assert error_of(refused) == (409, "orders_in_active_job")
    error = refused.json()["error"]
    assert (error["count"], error["jobs"]) == (2, [{"id": running.json()["id"], "orders": 2}])
    jobs = (await client.get("/api/batch-jobs", headers=headers)).json()["items"]
    assert [job["id"] for job in jobs] == [running.json()["id"]]


async def test_parallel_submits_never_share_an_order(
    settings: Settings, database: Database, organization: Organization
) -> None:
    order_ids = [str(i) for i in await create_orders(database, organization, 40)]
    bodies = [
        {"filter": {}},
        {"filter": {}},
        {"order_ids": order_ids[:20]},
        {"order_ids": order_ids[20:]},
    ] * 2
    async with api_client(settings) as client:
        answers = await asyncio.gather(
            *(
                client.post("/api/batch-jobs", json=body, headers=organization.admin.headers)
                for body in bodies
            )
        )
    assert {answer.status_code for answer in answers} <= {202, 400, 409}
    async with database.unscoped() as connection:
        taken = await connection.fetch(
            "SELECT order_id, count(*) AS jobs FROM batch_job_items"
            " WHERE organization_id = $1 GROUP BY order_id",
            organization.id,
        )
    assert len(taken) == 40
    assert {row["jobs"] for row in taken} == {1}


async def test_month_end_filters_select_by_period_customer_and_currency_in_list_and_batch(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other_customer = await add_customer(database, organization, "USD")
    november = await create_orders(database, organization, 3)
    december = await create_orders(database, organization, 2)
    dollars = await create_orders(database, organization, 2, currency="USD", customer_id=other_customer)
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE sales_orders SET order_date = $2 WHERE id = ANY($1::uuid[])", november, date(2026, 11, 30)
        )
        await connection.execute(
            "UPDATE sales_orders SET order_date = $2 WHERE id = ANY($1::uuid[])", december, date(2026, 12, 1)
        )
        await connection.execute(
            "UPDATE sales_orders SET order_date = $2 WHERE id = ANY($1::uuid[])", dollars, date(2026, 10, 15)
        )
    headers = organization.member.headers

    async def ids(**params: str) -> set[UUID]:
        return {UUID(order["id"]) for order in await listed(client, headers, **UNINVOICED, **params)}

    assert await ids(order_date_from="2026-11-01", order_date_to="2026-11-30") == set(november)
    assert await ids(order_date_from="2026-12-01") == set(december)
    assert await ids(order_date_to="2026-10-31") == set(dollars)
    assert await ids(currency="usd") == set(dollars)
    assert await ids(customer_id=str(other_customer)) == set(dollars)
    assert await counted(client, headers, **UNINVOICED, currency="EUR") == {"total": 5, "in_active_jobs": 0}

    month_end = {"order_date_from": "2026-11-01", "order_date_to": "2026-11-30", "currency": "EUR"}
    response = await client.post("/api/batch-jobs", json={"filter": month_end}, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["total_items"] == 3


async def test_bad_filter_values_are_refused_with_their_own_codes(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    headers = organization.member.headers
    for params in (
        {"order_date_from": "2026-02-30"},
        {"order_date_to": "30.11.2026"},
        {"order_date_from": "2026-12-01", "order_date_to": "2026-11-01"},
        {"customer_id": "nope"},
        {"currency": "EURO"},
        {"invoiced": "maybe"},
    ):
        for path in ("/api/sales-orders", "/api/sales-orders/totals"):
            response = await client.get(path, params=params, headers=headers)
            assert error_of(response) == (400, "invalid_parameter"), (path, params)
    for bad in ({"currency": 12}, {"order_date_to": "tomorrow"}, {"customer_id": str(uuid4())[:-1]}):
        response = await client.post("/api/batch-jobs", json={"filter": bad}, headers=headers)
        assert error_of(response) == (400, "invalid_filter"), bad


async def test_a_read_that_runs_too_long_is_stopped_in_the_database(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    settings = make_settings(
        database_url, redis_url, DB_READ_TIMEOUT_SECONDS="0.5", DB_LOCK_TIMEOUT_SECONDS="0"
    )
    async with database.transaction() as blocker:
        # Stands in for any slow plan: the list's read waits behind the lock until its timeout.
        await blocker.execute("LOCK TABLE sales_orders IN ACCESS EXCLUSIVE MODE")
        async with api_client(settings) as client:
            response = await client.get(
                "/api/sales-orders", params=UNINVOICED, headers=organization.member.headers
            )
        assert error_of(response) == (503, "database_timeout")
        async with database.connection() as connection:
            waiting = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM sales_orders o WHERE%'"
                " AND pid <> pg_backend_pid()"
                " AND state = 'active'"
            )
        assert waiting == 0


async def add_customer(database: Database, organization: Organization, currency: str) -> UUID:
    async with database.unscoped() as connection:
        customer_id: UUID = await connection.fetchval(
            """
            INSERT INTO customers
                (organization_id, name, billing_name, billing_address, billing_email, currency)
            VALUES ($1, 'Other Ltd', 'Other Ltd', '2 Road', 'ap@other.example', $2) RETURNING id
            """,
            organization.id,
            currency,
        )
    return customer_id


# --- Plans ---------------------------------------------------------------------------------------


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


async def test_the_month_end_list_and_its_count_read_indexes_as_the_application_role_after_bulk_writes(
    settings: Settings, database: Database
) -> None:
    organizations = [await create_organization(database) for _ in range(6)]
    for organization in organizations:
        await create_orders(database, organization, 400)
    target = organizations[0]
    # Half invoiced, in one bulk write, and no ANALYZE since: the statistics are stale.
    async with database.unscoped() as connection:
        await connection.execute(
            """
            INSERT INTO invoices (id, organization_id, number, year, sequence, sales_order_id, customer_id,
                billing_name, billing_address, billing_email, issue_date, due_date, currency,
                subtotal, tax_total, total, created_by)
            SELECT gen_random_uuid(), o.organization_id, 'INV-' || o.number, 2026,
                   row_number() OVER (ORDER BY o.number), o.id, o.customer_id,
                   'B', 'A', 'e@x', current_date, current_date, o.currency, 1, 0, 1, $1
            FROM (SELECT * FROM sales_orders WHERE organization_id = $2 ORDER BY number LIMIT 200) AS o
            """,
            target.admin.id,
            target.id,
        )
    async with database.scoped(target.id) as connection:
        for statement in (
            "SELECT o.id FROM sales_orders o WHERE o.organization_id = $1 AND o.status = 'confirmed'"
            " AND o.invoice_id IS NULL ORDER BY o.number, o.id LIMIT 51",
            "SELECT count(*) FROM sales_orders o WHERE o.organization_id = $1 AND o.status = 'confirmed'"
            " AND o.invoice_id IS NULL",
        ):
            explained = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", target.id)
            nodes = plan_nodes(json.loads(explained)[0]["Plan"])
            scans = {(node["Node Type"], node.get("Index Name")) for node in nodes if "Relation Name" in node}
            assert all(kind in ("Index Scan", "Index Only Scan") for kind, _ in scans), scans
            assert {index for _, index in scans} == {"sales_orders_to_invoice_idx"}, scans


async def test_an_invoice_marks_its_order_whoever_writes_it(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1)
    response = await client.post(f"/api/sales-orders/{order_id}/invoice", headers=organization.member.headers)
    assert response.status_code == 201
    async with database.unscoped() as connection:
        marked = await connection.fetchval("SELECT invoice_id FROM sales_orders WHERE id = $1", order_id)
    assert str(marked) == response.json()["id"]
    assert await listed(client, organization.member.headers, **UNINVOICED) == []


async def test_an_order_a_running_job_holds_is_not_invoiced_on_its_own(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 2)
    headers = organization.member.headers
    job = await client.post("/api/batch-jobs", json={"order_ids": [str(order_ids[0])]}, headers=headers)

    held = await client.post(f"/api/sales-orders/{order_ids[0]}/invoice", headers=headers)
    free = await client.post(f"/api/sales-orders/{order_ids[1]}/invoice", headers=headers)

    assert error_of(held) == (409, "orders_in_active_job")
    assert held.json()["error"]["jobs"] == [{"id": job.json()["id"], "orders": 1}]
    assert free.status_code == 201
    async with database.unscoped() as connection:
        invoiced = await connection.fetch(
            "SELECT sales_order_id FROM invoices WHERE organization_id = $1", organization.id
        )
    assert [row["sales_order_id"] for row in invoiced] == [order_ids[1]]
