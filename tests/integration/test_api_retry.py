"""Retrying a finished job: a new job over the orders that got no invoice, audited on both."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.integration.test_api_jobs import submit
from tests.support.app import error_of
from tests.support.factories import (
    Organization,
    User,
    create_mixed_orders,
    create_orders,
    create_organization,
)
from tests.support.workers import drain_queue


async def finished_job(
    client: httpx.AsyncClient, settings: Settings, organization: Organization, order_ids: list[Any]
) -> dict[str, Any]:
    job = await submit(client, organization.member.headers, order_ids)
    await drain_queue(settings)
    response = await client.get(f"/api/batch-jobs/{job['id']}", headers=organization.member.headers)
    finished: dict[str, Any] = response.json()
    return finished


async def ask_retry(client: httpx.AsyncClient, user: User, job_id: str) -> httpx.Response:
    return await client.post(f"/api/batch-jobs/{job_id}/retry", headers=user.headers)


async def item_order_ids(
    client: httpx.AsyncClient, organization: Organization, job_id: str, **params: str
) -> list[str]:
    response = await client.get(
        f"/api/batch-jobs/{job_id}/items",
        params={"limit": "500", **params},
        headers=organization.member.headers,
    )
    return [item["order_id"] for item in response.json()["items"]]


async def test_a_retry_is_a_new_job_over_the_failed_orders_only(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=3)
    job = await finished_job(client, settings, organization, orders.all_ids)
    failed = await item_order_ids(client, organization, job["id"], status="failed")
    # An id that names no order of the organization is nothing a retry could invoice.
    missing = next(str(order_id) for order_id, code in orders.invalid.items() if code == "order_not_found")
    failed.remove(missing)

    response = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)

    assert response.status_code == 202, response.text
    retry = response.json()
    assert response.headers["Location"] == f"/api/batch-jobs/{retry['id']}"
    assert (retry["status"], retry["retry_of"], retry["total_items"]) == ("pending", job["id"], len(failed))
    assert await item_order_ids(client, organization, retry["id"]) == failed


async def test_a_retried_order_that_was_fixed_gets_its_invoice_and_the_rest_fail_again(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=2)
    job = await finished_job(client, settings, organization, orders.all_ids)
    draft = next(order_id for order_id, code in orders.invalid.items() if code == "order_not_confirmed")
    async with database.unscoped() as connection:
        await connection.execute("UPDATE sales_orders SET status = 'confirmed' WHERE id = $1", draft)

    retry = (
        await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)
    ).json()
    await drain_queue(settings)

    done = (await client.get(f"/api/batch-jobs/{retry['id']}", headers=organization.member.headers)).json()
    # The rest fail again, but for the id that names no order: a retry leaves it out.
    assert (done["status"], done["successful_items"], done["failed_items"]) == (
        "completed",
        1,
        len(orders.invalid) - 2,
    )
    assert await item_order_ids(client, organization, retry["id"], status="succeeded") == [str(draft)]


async def test_a_cancelled_job_retries_the_orders_it_never_reached(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 4)
    job = await submit(client, organization.member.headers, order_ids)
    await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)

    response = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)

    assert response.status_code == 202
    assert response.json()["total_items"] == 4


async def test_a_job_is_retried_once_even_when_asked_twice_at_the_same_time(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=1)
    job = await finished_job(client, settings, organization, orders.all_ids)
    answers = await asyncio.gather(*(ask_retry(client, organization.member, job["id"]) for _ in range(4)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 409, 409, 409]
    assert {error_of(a) for a in answers if a.status_code == 409} == {(409, "already_retried")}


async def test_an_active_job_cannot_be_retried(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, await create_orders(database, organization, 1))

    response = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)

    assert error_of(response) == (409, "job_not_finished")


async def test_a_job_whose_orders_all_got_invoices_has_nothing_to_retry(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    job = await finished_job(client, settings, organization, await create_orders(database, organization, 2))

    response = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)

    assert error_of(response) == (409, "nothing_to_retry")


async def test_another_organizations_job_cannot_be_retried_and_answers_like_a_missing_one(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=1)
    job = await finished_job(client, settings, organization, orders.all_ids)
    intruder = await create_organization(database)

    foreign = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=intruder.admin.headers)
    missing = await client.post(
        "/api/batch-jobs/00000000-0000-4000-8000-000000000000/retry", headers=intruder.admin.headers
    )

    assert error_of(foreign) == error_of(missing) == (404, "job_not_found")
    assert foreign.json() == missing.json()
    listing = await client.get("/api/batch-jobs", headers=organization.member.headers)
    assert len(listing.json()["items"]) == 1


async def test_a_retry_is_in_the_audit_log_of_both_jobs(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=1)
    job = await finished_job(client, settings, organization, orders.all_ids)

    retry = (
        await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)
    ).json()

    async with database.unscoped() as connection:
        rows = await connection.fetch(
            """
            SELECT action, job_id::text, user_id, detail FROM audit_log
            WHERE action <> 'job_created' OR job_id = $1
            """,
            retry["id"],
        )
    entries = {(row["action"], row["job_id"]): row for row in rows}
    retried = entries[("job_retried", job["id"])]
    assert retried["user_id"] == organization.member.id
    assert retried["detail"] == {"retry_job_id": retry["id"], "total_items": retry["total_items"]}
    assert entries[("job_created", retry["id"])]["detail"]["retry_of"] == job["id"]


async def test_a_retried_job_names_its_retry_in_every_read_and_the_retry_names_it(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=1)
    job = await finished_job(client, settings, organization, orders.all_ids)
    assert job["retried_as"] is None

    retry = (await ask_retry(client, organization.member, job["id"])).json()

    headers = organization.admin.headers
    original = (await client.get(f"/api/batch-jobs/{job['id']}", headers=headers)).json()
    listed = {j["id"]: j for j in (await client.get("/api/batch-jobs", headers=headers)).json()["items"]}
    assert original["retried_as"] == listed[job["id"]]["retried_as"] == retry["id"]
    assert (retry["retry_of"], retry["retried_as"]) == (job["id"], None)
    assert listed[retry["id"]]["retry_of"] == job["id"]
    active = (await client.get("/api/batch-jobs?status=pending", headers=headers)).json()["items"]
    assert [(j["id"], j["created_by_name"]) for j in active] == [(retry["id"], "Member")]


async def test_the_starter_is_named_by_name_else_email_and_never_by_id_once_gone(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    job = await finished_job(client, settings, organization, await create_orders(database, organization, 1))
    assert job["created_by_name"] == "Member"

    async with database.unscoped() as connection:
        await connection.execute("UPDATE users SET name = '' WHERE id = $1", organization.member.id)
    path = f"/api/batch-jobs/{job['id']}"
    assert (await client.get(path, headers=organization.admin.headers)).json()["created_by_name"] == (
        organization.member.email
    )

    async with database.unscoped() as connection:
        await connection.execute(
            "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2",
            organization.id,
            organization.member.id,
        )
    gone = (await client.get(path, headers=organization.admin.headers)).json()
    assert gone["created_by_name"] == "a former member"
    assert gone["created_by"] == str(organization.member.id)


async def test_a_poller_holding_the_etag_of_the_original_hears_that_it_was_retried(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=1)
    job = await finished_job(client, settings, organization, orders.all_ids)
    path = f"/api/batch-jobs/{job['id']}"
    etag = (await client.get(path, headers=organization.member.headers)).headers["ETag"]

    retry = (await ask_retry(client, organization.member, job["id"])).json()

    response = await client.get(path, headers={**organization.member.headers, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.json()["retried_as"] == retry["id"]
