"""A job's priority over the API: chosen at submit (urgent for admins), kept by a retry unless
the retry names another, changed by an admin while the job is pending or running."""

from __future__ import annotations

from typing import Any

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.integration.test_api_retry import finished_job
from tests.support.app import error_of
from tests.support.factories import User, create_mixed_orders, create_orders, create_organization
from tests.support.workers import drain_queue


async def create(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/batch-jobs", json=body, headers=user.headers)


async def ids(database: Database, organization: Any, count: int = 2) -> list[str]:
    return [str(order_id) for order_id in await create_orders(database, organization, count)]


async def test_a_job_is_normal_unless_its_creator_says_otherwise(
    client: httpx.AsyncClient, database: Database
) -> None:
    organization = await create_organization(database)
    member = organization.member

    plain = await create(client, member, {"order_ids": await ids(database, organization)})
    low = await create(client, member, {"order_ids": await ids(database, organization), "priority": "low"})
    await create_orders(database, organization, 2)  # for the filter: the others are in jobs
    by_filter = await create(client, organization.admin, {"filter": {}, "priority": "urgent"})

    assert (plain.status_code, plain.json()["priority"], plain.json()["active_workers"]) == (202, "normal", 0)
    assert (low.status_code, low.json()["priority"]) == (202, "low")
    assert (by_filter.status_code, by_filter.json()["priority"]) == (202, "urgent")


async def test_urgent_is_for_admins_and_an_unknown_priority_is_refused(
    client: httpx.AsyncClient, database: Database
) -> None:
    organization = await create_organization(database)
    order_ids = await ids(database, organization)

    urgent = await create(client, organization.member, {"order_ids": order_ids, "priority": "urgent"})
    unknown = await create(client, organization.admin, {"order_ids": order_ids, "priority": "high"})
    not_text = await create(client, organization.admin, {"order_ids": order_ids, "priority": 1})

    assert error_of(urgent) == (403, "admin_required")
    assert error_of(unknown) == (400, "invalid_priority")
    assert error_of(not_text) == (400, "invalid_priority")
    listed = await client.get("/api/batch-jobs", headers=organization.admin.headers)
    assert listed.json()["items"] == []


async def test_an_admin_changes_the_priority_of_a_waiting_job_and_it_is_audited(
    client: httpx.AsyncClient, database: Database
) -> None:
    organization = await create_organization(database)
    job = (await create(client, organization.member, {"order_ids": await ids(database, organization)})).json()
    path = f"/api/batch-jobs/{job['id']}/priority"

    by_member = await client.post(path, json={"priority": "low"}, headers=organization.member.headers)
    changed = await client.post(path, json={"priority": "urgent"}, headers=organization.admin.headers)
    unknown = await client.post(path, json={"priority": "soon"}, headers=organization.admin.headers)
    extra = await client.post(path, json={"priority": "low", "why": "x"}, headers=organization.admin.headers)
    missing = await client.post(path, json={}, headers=organization.admin.headers)

    assert error_of(by_member) == (403, "admin_required")
    assert (changed.status_code, changed.json()["priority"]) == (200, "urgent")
    assert changed.json()["seq"] > job["seq"]
    assert [error_of(response) for response in (unknown, extra, missing)] == [
        (400, "invalid_priority"),
        (400, "unknown_field"),
        (400, "missing_field"),
    ]
    audit = await client.get("/api/admin/audit-log", headers=organization.admin.headers)
    changes = [entry for entry in audit.json()["items"] if entry["action"] == "job_priority_changed"]
    assert [entry["detail"] for entry in changes] == [{"priority": "urgent"}]


async def test_a_finished_or_foreign_job_keeps_its_priority(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    organization, stranger = await create_organization(database), await create_organization(database)
    finished = await finished_job(
        client, settings, organization, await create_orders(database, organization, 2)
    )
    path = f"/api/batch-jobs/{finished['id']}/priority"

    too_late = await client.post(path, json={"priority": "low"}, headers=organization.admin.headers)
    foreign = await client.post(path, json={"priority": "low"}, headers=stranger.admin.headers)

    assert error_of(too_late) == (409, "job_finished")
    assert error_of(foreign) == (404, "job_not_found")


async def test_a_retry_keeps_the_priority_unless_it_names_another(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    organization = await create_organization(database)
    mixed = await create_mixed_orders(database, organization, valid=1)
    body = {"order_ids": [str(i) for i in mixed.all_ids], "priority": "low"}
    first = (await create(client, organization.member, body)).json()
    await drain_queue(settings)
    retry_path = f"/api/batch-jobs/{first['id']}/retry"

    urgent_by_member = await client.post(
        retry_path, json={"priority": "urgent"}, headers=organization.member.headers
    )
    kept = await client.post(retry_path, headers=organization.member.headers)

    assert error_of(urgent_by_member) == (403, "admin_required")
    assert (kept.status_code, kept.json()["priority"]) == (202, "low")
    await drain_queue(settings)
    again = await client.post(
        f"/api/batch-jobs/{kept.json()['id']}/retry",
        json={"priority": "normal"},
        headers=organization.member.headers,
    )
    assert (again.status_code, again.json()["priority"]) == (202, "normal")


async def test_asking_for_the_priority_a_job_has_changes_nothing_and_members_are_refused_unread(
    client: httpx.AsyncClient, database: Database
) -> None:
    organization = await create_organization(database)
    job = (await create(client, organization.member, {"order_ids": await ids(database, organization)})).json()
    path = f"/api/batch-jobs/{job['id']}/priority"

    same = await client.post(path, json={"priority": "normal"}, headers=organization.admin.headers)
    garbled = await client.post(path, content=b"{not json", headers=organization.member.headers)

    assert (same.status_code, same.json()["seq"]) == (200, job["seq"])
    assert error_of(garbled) == (403, "admin_required")
    audit = await client.get("/api/admin/audit-log", headers=organization.admin.headers)
    assert [entry for entry in audit.json()["items"] if entry["action"] == "job_priority_changed"] == []


async def test_a_members_retry_of_an_urgent_job_is_normal(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    organization = await create_organization(database)
    mixed = await create_mixed_orders(database, organization, valid=1)
    body = {"order_ids": [str(i) for i in mixed.all_ids], "priority": "urgent"}
    urgent = (await create(client, organization.admin, body)).json()
    await drain_queue(settings)

    retried = await client.post(f"/api/batch-jobs/{urgent['id']}/retry", headers=organization.member.headers)

    assert (retried.status_code, retried.json()["priority"]) == (202, "normal")
