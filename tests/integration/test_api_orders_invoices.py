"""Sales orders and invoices over the HTTP API: listing, invoicing one order, reading invoices."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID, uuid4

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.app import api_client, error_of
from tests.support.factories import Line, Organization, create_orders, create_organization
from tests.support.workers import drain_queue

ORDER_FIELDS = {"id", "number", "status", "customer_id", "customer_name", "currency", "total", "invoice_id"}
INVOICE_FIELDS = {
    "id", "number", "sales_order_id", "customer_id", "issue_date", "due_date", "currency",
    "subtotal", "tax_total", "total", "created_by", "batch_job_id",
}  # fmt: skip
UNINVOICED = {"status": "confirmed", "invoiced": "false"}


async def invoice_order(client: httpx.AsyncClient, headers: dict[str, str], order_id: UUID) -> dict[str, Any]:
    response = await client.post(f"/api/sales-orders/{order_id}/invoice", headers=headers)
    assert response.status_code == 201, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- GET /api/sales-orders ----------------------------------------------------------------------


async def test_uninvoiced_list_holds_only_this_organizations_confirmed_uninvoiced_orders(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    confirmed = await create_orders(database, organization, 3)
    await create_orders(database, organization, 1, status="draft")
    await create_orders(database, await create_organization(database), 2)

    response = await client.get("/api/sales-orders", params=UNINVOICED, headers=organization.member.headers)
    assert ids(response) == [str(i) for i in confirmed]
    order = response.json()["items"][0]
    assert set(order) >= ORDER_FIELDS
    assert order["status"] == "confirmed"
    assert order["customer_id"] == str(organization.customer_id)
    assert order["customer_name"] == "Acme GmbH"
    assert order["currency"] == "EUR"
    assert order["total"] == "139.25"  # 120.00 + 17.99 at 7 %, as the invoice will say
    assert order["invoice_id"] is None


async def test_invoiced_order_moves_from_the_uninvoiced_to_the_invoiced_list(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    headers = organization.member.headers
    invoiced, other = await create_orders(database, organization, 2)
    invoice = await invoice_order(client, headers, invoiced)

    uninvoiced = await client.get("/api/sales-orders", params=UNINVOICED, headers=headers)
    done = await client.get("/api/sales-orders", params={"invoiced": "true"}, headers=headers)
    assert ids(uninvoiced) == [str(other)]
    assert ids(done) == [str(invoiced)]
    assert done.json()["items"][0]["invoice_id"] == invoice["id"]


async def test_paging_through_orders_covers_all_in_number_order(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 7)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**UNINVOICED, "limit": "3"} | ({} if cursor is None else {"cursor": cursor})
        page = (
            await client.get("/api/sales-orders", params=params, headers=organization.member.headers)
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [order["id"] for order in seen] == [str(i) for i in order_ids]
    assert [order["number"] for order in seen] == sorted(order["number"] for order in seen)


async def test_unknown_order_filter_value_is_400(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    for params in ({"status": "shipped"}, {"invoiced": "yes"}):
        response = await client.get("/api/sales-orders", params=params, headers=organization.member.headers)
        assert error_of(response) == (400, "invalid_parameter"), params


# --- POST /api/sales-orders/{id}/invoice -----------------------------------------------------------


async def test_invoicing_one_order_answers_201_with_the_invoice(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1)
    invoice = await invoice_order(client, organization.member.headers, order_id)
    assert set(invoice) >= INVOICE_FIELDS
    assert re.fullmatch(r"INV-\d{4}-000001", invoice["number"])
    assert invoice["number"][4:8] == invoice["issue_date"][:4]
    assert invoice["sales_order_id"] == str(order_id)
    assert invoice["created_by"] == str(organization.member.id)
    assert invoice["batch_job_id"] is None
    assert invoice["total"] == "139.25"
    assert [line["description"] for line in invoice["lines"]] == ["Consulting hours", "Travel"]


async def test_an_invoice_keeps_every_character_of_the_order_and_customer(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    # The invoice rows go to PostgreSQL as text-format COPY, where tab, newline, carriage
    # return and backslash have meanings of their own.
    awkward = "Tab\there, new\nline, CR\r, back\\slash, \\N, \\t, ünïcødé €"
    address = "1 Main St\nBack\\Office\tFloor 2\r\nSpringfield"
    lines = (Line(description=awkward), Line(description="\\"))
    (order_id,) = await create_orders(database, organization, 1, lines=lines)
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE customers SET billing_name = $2, billing_address = $3 WHERE id = $1",
            organization.customer_id,
            "Name\twith tab \\N",
            address,
        )
    invoice = await invoice_order(client, organization.member.headers, order_id)
    stored = (await client.get(f"/api/invoices/{invoice['id']}", headers=organization.member.headers)).json()
    assert [line["description"] for line in stored["lines"]] == [awkward, "\\"]
    assert stored["billing_address"] == address
    assert stored["billing_name"] == "Name\twith tab \\N"


async def test_invoicing_an_order_twice_is_409(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1)
    await invoice_order(client, organization.member.headers, order_id)
    again = await client.post(f"/api/sales-orders/{order_id}/invoice", headers=organization.member.headers)
    assert error_of(again) == (409, "already_invoiced")


async def test_another_organizations_order_looks_like_no_order(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (their_order,) = await create_orders(database, await create_organization(database), 1)
    headers = organization.admin.headers
    foreign = await client.post(f"/api/sales-orders/{their_order}/invoice", headers=headers)
    missing = await client.post(f"/api/sales-orders/{uuid4()}/invoice", headers=headers)
    malformed = await client.post("/api/sales-orders/not-a-uuid/invoice", headers=headers)
    assert error_of(foreign) == (404, "order_not_found")
    assert foreign.json() == missing.json() == malformed.json()
    assert malformed.status_code == missing.status_code == 404
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM invoices") == 0


async def test_invoicing_a_draft_order_is_422(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (draft,) = await create_orders(database, organization, 1, status="draft")
    response = await client.post(f"/api/sales-orders/{draft}/invoice", headers=organization.member.headers)
    assert error_of(response) == (422, "order_not_confirmed")


async def test_invoicing_an_order_without_lines_is_422(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (empty,) = await create_orders(database, organization, 1, lines=())
    response = await client.post(f"/api/sales-orders/{empty}/invoice", headers=organization.member.headers)
    assert error_of(response) == (422, "no_lines")


# --- GET /api/invoices ---------------------------------------------------------------------------


async def test_invoices_are_listed_with_their_fields(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    first, second = await create_orders(database, organization, 2)
    created = [await invoice_order(client, organization.member.headers, order) for order in (first, second)]
    listing = await client.get("/api/invoices", headers=organization.member.headers)
    assert ids(listing) == [created[1]["id"], created[0]["id"]]  # newest first
    assert listing.json()["next_cursor"] is None
    assert all(set(invoice) >= INVOICE_FIELDS for invoice in listing.json()["items"])


async def test_invoices_are_filtered_by_job(
    client: httpx.AsyncClient, database: Database, organization: Organization, settings: Settings
) -> None:
    headers = organization.member.headers
    single, batched = await create_orders(database, organization, 2)
    await invoice_order(client, headers, single)
    job = (await client.post("/api/batch-jobs", json={"order_ids": [str(batched)]}, headers=headers)).json()
    await drain_queue(settings)

    listing = await client.get("/api/invoices", params={"job_id": job["id"]}, headers=headers)
    assert [(i["sales_order_id"], i["batch_job_id"]) for i in listing.json()["items"]] == [
        (str(batched), job["id"])
    ]


async def test_malformed_job_filter_is_400(client: httpx.AsyncClient, organization: Organization) -> None:
    response = await client.get("/api/invoices", params={"job_id": "42"}, headers=organization.member.headers)
    assert error_of(response) == (400, "invalid_parameter")


async def test_one_invoice_is_served_with_its_lines(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1)
    created = await invoice_order(client, organization.member.headers, order_id)
    response = await client.get(f"/api/invoices/{created['id']}", headers=organization.member.headers)
    assert response.status_code == 200
    assert response.json() == created
    assert [line["net_amount"] for line in response.json()["lines"]] == ["100.00", "17.99"]


async def test_another_organizations_invoice_looks_like_no_invoice(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    victim = await create_organization(database)
    (their_order,) = await create_orders(database, victim, 1)
    their_invoice = await invoice_order(client, victim.member.headers, their_order)
    headers = organization.admin.headers
    foreign = await client.get(f"/api/invoices/{their_invoice['id']}", headers=headers)
    missing = await client.get(f"/api/invoices/{uuid4()}", headers=headers)
    malformed = await client.get("/api/invoices/not-a-uuid", headers=headers)
    assert error_of(foreign) == (404, "invoice_not_found")
    assert foreign.json() == missing.json() == malformed.json()
    assert malformed.status_code == missing.status_code == 404
    assert ids(await client.get("/api/invoices", headers=headers)) == []


async def test_order_list_counts_every_match_when_asked(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    await create_orders(database, organization, 7)
    async with api_client(settings) as client:
        response = await client.get(
            "/api/sales-orders",
            params={"status": "confirmed", "invoiced": "false", "limit": 2, "include_total": "true"},
            headers=organization.admin.headers,
        )
    assert response.json()["total"] == 7
    assert len(response.json()["items"]) == 2


async def test_a_batch_by_filter_takes_every_matching_order_of_the_organization(
    settings: Settings, database: Database
) -> None:
    organization, other = await create_organization(database), await create_organization(database)
    await create_orders(database, organization, 12)
    await create_orders(database, organization, 3, status="draft")
    await create_orders(database, other, 5)
    async with api_client(settings) as client:
        response = await client.post(
            "/api/batch-jobs",
            json={"filter": {"status": "confirmed", "invoiced": False}},
            headers=organization.admin.headers,
        )
        empty = await client.post(
            "/api/batch-jobs", json={"filter": {"status": "cancelled"}}, headers=organization.admin.headers
        )
    assert response.status_code == 202
    assert response.json()["total_items"] == 12
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "empty_batch"
