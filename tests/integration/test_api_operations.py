"""The operations page and its API: job health and the audit log, for administrators only."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any
from uuid import UUID

import httpx

from invoicing.domain.paging import encode_cursor
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.integration.test_api_jobs import submit, walk
from tests.support.factories import (
    Organization,
    create_mixed_orders,
    create_orders,
    create_organization,
)
from tests.support.workers import drain_queue

SITE = "http://testserver"


async def stats_of(client: httpx.AsyncClient, organization: Organization) -> dict[str, Any]:
    response = await client.get("/api/admin/stats", headers=organization.admin.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_stats_count_jobs_and_group_failures_by_reason(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    orders = await create_mixed_orders(database, organization, valid=3)
    await submit(client, organization.member.headers, orders.all_ids)
    await drain_queue(settings)
    await submit(client, organization.member.headers, await create_orders(database, organization, 1))

    stats = await stats_of(client, organization)

    active = stats["active"]
    assert (active["pending"], active["processing"], active["stuck"]) == (1, 0, 0)
    assert active["oldest_pending_seconds"] >= 0
    day = stats["last_24h"]
    failed = len(orders.invalid)
    assert day == {
        "created": 2,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "items_succeeded": 3,
        "items_failed": failed,
        "orders_processed": 3 + failed,
        "orders_invoiced": 3,
        "success_rate": round(3 / (3 + failed), 4),
    }
    assert stats["invoices_last_hour"] == 3
    patterns = {p["code"]: p["count"] for p in stats["error_patterns"]}
    assert patterns == dict(Counter(orders.invalid.values()))


async def test_failures_count_orders_once_however_often_they_failed(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    """A retry that fails again, and a batch of orders already invoiced, do not inflate the page.

    Failed orders are counted once, under the reason they failed with last; the success rate
    is the share of processed orders that have their invoice, so `already_invoiced` counts as
    done.
    """
    orders = await create_mixed_orders(database, organization, valid=3)
    job = await submit(client, organization.member.headers, orders.all_ids)
    await drain_queue(settings)
    retry = await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)
    assert retry.status_code == 202, retry.text
    await drain_queue(settings)
    await submit(client, organization.member.headers, orders.valid)
    await drain_queue(settings)

    stats = await stats_of(client, organization)

    invalid = len(orders.invalid)
    day = stats["last_24h"]
    # The retry leaves out the id that names no order.
    assert (day["items_succeeded"], day["items_failed"]) == (3, invalid + invalid - 1 + 3)
    assert (day["orders_processed"], day["orders_invoiced"]) == (3 + invalid, 3)
    assert day["success_rate"] == round(3 / (3 + invalid), 4)
    patterns = {p["code"]: p["count"] for p in stats["error_patterns"]}
    assert patterns == {**Counter(orders.invalid.values()), "already_invoiced": 3}


async def test_an_order_is_filed_under_the_reason_it_failed_with_last(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1, status="draft")
    job = await submit(client, organization.member.headers, [order_id])
    await drain_queue(settings)
    async with database.unscoped() as connection:
        await connection.execute("DELETE FROM sales_order_lines WHERE sales_order_id = $1", order_id)
        await connection.execute("UPDATE sales_orders SET status = 'confirmed' WHERE id = $1", order_id)
    await client.post(f"/api/batch-jobs/{job['id']}/retry", headers=organization.member.headers)
    await drain_queue(settings)

    stats = await stats_of(client, organization)

    (pattern,) = stats["error_patterns"]
    assert (pattern["code"], pattern["count"]) == ("no_lines", 1)


async def test_a_job_whose_worker_stopped_is_reported_stuck(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, await create_orders(database, organization, 1))
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE batch_job_queue SET status = 'processing', started_at = now() WHERE id = $1", job["id"]
        )
        await connection.execute(
            "UPDATE batch_job_parts SET lease_owner = 'gone', lease_expires_at = now() - interval '1 minute'"
            " WHERE job_id = $1",
            job["id"],
        )

    stats = await stats_of(client, organization)

    assert stats["active"]["stuck"] == 1
    (stuck,) = stats["stuck_jobs"]
    assert (stuck["reason"], stuck["job"]["id"]) == ("lease_expired", job["id"])


async def test_stats_show_nothing_of_another_organization(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other = await create_organization(database)
    await submit(client, other.member.headers, await create_orders(database, other, 2))

    stats = await stats_of(client, organization)

    assert stats["active"]["pending"] == 0
    assert stats["last_24h"]["created"] == 0


async def test_the_audit_log_says_who_did_what_newest_first_in_pages(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    first = await submit(client, organization.member.headers, await create_orders(database, organization, 1))
    second = await submit(client, organization.admin.headers, await create_orders(database, organization, 1))
    await client.post(f"/api/batch-jobs/{second['id']}/cancel", headers=organization.admin.headers)

    pages = await walk(client, "/api/admin/audit-log", organization.admin.headers, limit="2")

    entries = [(e["action"], e["job_id"], e["user_email"]) for page in pages for e in page]
    assert [len(page) for page in pages] == [2, 1]
    assert entries == [
        ("job_cancel_requested", second["id"], organization.admin.email),
        ("job_created", second["id"], organization.admin.email),
        ("job_created", first["id"], organization.member.email),
    ]


async def test_the_audit_log_holds_only_the_organizations_own_entries(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other = await create_organization(database)
    await submit(client, other.member.headers, await create_orders(database, other, 1))

    response = await client.get("/api/admin/audit-log", headers=organization.admin.headers)

    assert response.json() == {"items": [], "next_cursor": None}


async def test_audit_ids_and_cursors_reveal_nothing_of_other_organizations(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    """A global counter in ids or cursors would tell an organization how busy the others are."""
    other = await create_organization(database)
    for owner in (organization, other, organization):
        await submit(client, owner.member.headers, await create_orders(database, owner, 1))
    mine = (
        await client.get("/api/admin/audit-log", params={"limit": "1"}, headers=organization.admin.headers)
    ).json()
    theirs = (await client.get("/api/admin/audit-log", headers=other.admin.headers)).json()

    assert all(UUID(entry["id"]).version == 4 for entry in mine["items"] + theirs["items"])
    assert str(theirs["items"][0]["id"]) not in base64.urlsafe_b64decode(mine["next_cursor"] + "==").decode()
    # Another organization's entry as a cursor names nothing here: an empty page, not theirs.
    foreign = encode_cursor([theirs["items"][0]["id"]])
    response = await client.get(
        "/api/admin/audit-log", params={"cursor": foreign}, headers=organization.admin.headers
    )
    assert response.json() == {"items": [], "next_cursor": None}
    second = await client.get(
        "/api/admin/audit-log", params={"cursor": mine["next_cursor"]}, headers=organization.admin.headers
    )
    assert len(second.json()["items"]) == 1
