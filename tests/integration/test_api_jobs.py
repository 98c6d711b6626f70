"""Batch jobs over the HTTP API: submit, list, poll, items, cancel, isolation and the admin sweep."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
from arq.constants import job_key_prefix

from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.kernel.settings import Settings
from tests.support.app import error_of, walk
from tests.support.factories import Organization, create_mixed_orders, create_orders, create_organization
from tests.support.workers import drain_queue

JOB_FIELDS = {
    "id", "organization_id", "job_type", "status", "total_items", "processed_items",
    "successful_items", "failed_items", "errors", "created_at", "started_at", "completed_at",
    "created_by", "cancel_requested", "progress", "items_per_second", "eta_seconds",
    "created_by_name", "retry_of", "retried_as",
}  # fmt: skip
ITEM_FIELDS = {"order_id", "order_number", "status", "invoice_id", "invoice_number", "error"}


async def submit(
    client: httpx.AsyncClient, user_headers: dict[str, str], order_ids: list[UUID]
) -> dict[str, Any]:
    response = await client.post(
        "/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids]}, headers=user_headers
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


# --- Submitting -------------------------------------------------------------------------------------


async def test_submit_answers_202_with_the_job_and_its_location(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 2)
    response = await client.post(
        "/api/batch-jobs",
        json={"order_ids": [str(i) for i in order_ids]},
        headers=organization.member.headers,
    )
    assert response.status_code == 202
    job = response.json()
    assert set(job) >= JOB_FIELDS
    assert response.headers["Location"] == f"/api/batch-jobs/{job['id']}"
    assert job["organization_id"] == str(organization.id)
    assert job["job_type"] == "bulk_invoice_generation"
    assert job["status"] == "pending"
    assert (job["total_items"], job["processed_items"], job["successful_items"], job["failed_items"]) == (
        2,
        0,
        0,
        0,
    )
    assert job["errors"] == []
    assert job["created_by"] == str(organization.member.id)
    assert job["created_by_name"] == "Member"
    assert job["retried_as"] is None
    assert job["started_at"] is None
    assert job["completed_at"] is None
    assert job["cancel_requested"] is False
    assert job["progress"] == 0.0


async def test_duplicate_order_ids_are_submitted_once(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    first, second = await create_orders(database, organization, 2)
    job = await submit(client, organization.member.headers, [first, second, first])
    assert job["total_items"] == 2
    items = await client.get(f"/api/batch-jobs/{job['id']}/items", headers=organization.member.headers)
    assert [item["order_id"] for item in items.json()["items"]] == [str(first), str(second)]


async def test_ids_differing_only_in_letter_case_are_one_order(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    (order_id,) = await create_orders(database, organization, 1)
    response = await client.post(
        "/api/batch-jobs",
        json={"order_ids": [str(order_id), str(order_id).upper()]},
        headers=organization.member.headers,
    )
    assert response.json()["total_items"] == 1


# --- Listing ---------------------------------------------------------------------------------------


async def test_jobs_are_listed_newest_first(client: httpx.AsyncClient, organization: Organization) -> None:
    submitted = [(await submit(client, organization.member.headers, [uuid4()]))["id"] for _ in range(3)]
    listing = await client.get("/api/batch-jobs", headers=organization.member.headers)
    assert [job["id"] for job in listing.json()["items"]] == submitted[::-1]
    assert listing.json()["next_cursor"] is None


async def test_jobs_are_filtered_by_status(client: httpx.AsyncClient, organization: Organization) -> None:
    headers = organization.member.headers
    kept, cancelled = [await submit(client, headers, [uuid4()]) for _ in range(2)]
    await client.post(f"/api/batch-jobs/{cancelled['id']}/cancel", headers=headers)
    only_cancelled = await client.get("/api/batch-jobs", params={"status": "cancelled"}, headers=headers)
    only_pending = await client.get("/api/batch-jobs", params={"status": "pending"}, headers=headers)
    assert [job["id"] for job in only_cancelled.json()["items"]] == [cancelled["id"]]
    assert [job["id"] for job in only_pending.json()["items"]] == [kept["id"]]


async def test_paging_through_jobs_visits_each_once_in_order(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    headers = organization.member.headers
    submitted = [(await submit(client, headers, [uuid4()]))["id"] for _ in range(5)]
    pages = await walk(client, "/api/batch-jobs", headers, limit="2")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [job["id"] for page in pages for job in page] == submitted[::-1]


async def test_a_last_page_that_is_full_has_no_cursor_to_an_empty_one(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    headers = organization.member.headers
    for _ in range(4):
        await submit(client, headers, [uuid4()])
    pages = await walk(client, "/api/batch-jobs", headers, limit="2")
    assert [len(page) for page in pages] == [2, 2]


async def test_other_organizations_jobs_are_not_listed(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other = await create_organization(database)
    await submit(client, other.member.headers, [uuid4()])
    listing = await client.get("/api/batch-jobs", headers=organization.admin.headers)
    assert listing.json() == {"items": [], "next_cursor": None}


# --- Polling one job -------------------------------------------------------------------------------


async def test_unchanged_job_asked_with_its_etag_is_304(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, [uuid4()])
    path = f"/api/batch-jobs/{job['id']}"
    first = await client.get(path, headers=organization.member.headers)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    response = await client.get(path, headers={**organization.member.headers, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag


async def test_etag_changes_when_the_job_changes(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, [uuid4()])
    path = f"/api/batch-jobs/{job['id']}"
    before = (await client.get(path, headers=organization.member.headers)).headers["ETag"]
    await client.post(f"{path}/cancel", headers=organization.member.headers)
    response = await client.get(path, headers={**organization.member.headers, "If-None-Match": before})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.headers["ETag"] != before


# --- Items ----------------------------------------------------------------------------------------


async def test_items_describe_each_order_outcome(
    client: httpx.AsyncClient, database: Database, organization: Organization, settings: Settings
) -> None:
    (valid,) = await create_orders(database, organization, 1)
    (draft,) = await create_orders(database, organization, 1, status="draft")
    job = await submit(client, organization.member.headers, [valid, draft])
    await drain_queue(settings)

    items = (
        await client.get(f"/api/batch-jobs/{job['id']}/items", headers=organization.member.headers)
    ).json()
    succeeded, failed = items["items"]
    async with database.connection() as connection:
        numbers = dict(await connection.fetch("SELECT id, number FROM sales_orders"))
        invoice = await connection.fetchrow(
            "SELECT id, number FROM invoices WHERE sales_order_id = $1", valid
        )
    invoice_id = invoice["id"]
    assert set(succeeded) >= ITEM_FIELDS
    assert succeeded["order_id"] == str(valid)
    assert succeeded["order_number"] == numbers[valid]
    assert succeeded["status"] == "succeeded"
    assert succeeded["invoice_id"] == str(invoice_id)
    assert succeeded["invoice_number"] == invoice["number"]
    assert succeeded["error"] is None
    assert failed["order_number"] == numbers[draft]
    assert failed["status"] == "failed"
    assert failed["invoice_id"] is None
    assert failed["invoice_number"] is None
    assert set(failed["error"]) == {"code", "message"}
    assert failed["error"]["code"] == "order_not_confirmed"


async def test_paging_through_items_follows_submission_order(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = await create_orders(database, organization, 7)
    job = await submit(client, organization.member.headers, order_ids)
    pages = await walk(client, f"/api/batch-jobs/{job['id']}/items", organization.member.headers, limit="3")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [item["order_id"] for page in pages for item in page] == [str(i) for i in order_ids]


async def test_items_are_filtered_by_status(
    client: httpx.AsyncClient, database: Database, organization: Organization, settings: Settings
) -> None:
    orders = await create_mixed_orders(database, organization, valid=3)
    job = await submit(client, organization.member.headers, orders.all_ids)
    await drain_queue(settings)
    failed = await client.get(
        f"/api/batch-jobs/{job['id']}/items", params={"status": "failed"}, headers=organization.member.headers
    )
    reasons = {item["order_id"]: item["error"]["code"] for item in failed.json()["items"]}
    assert reasons == {str(order_id): code for order_id, code in orders.invalid.items()}


# --- Cancelling -----------------------------------------------------------------------------------


async def test_cancelling_a_pending_job_cancels_every_item_at_once(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, [uuid4(), uuid4(), uuid4()])
    response = await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_requested"] is True
    assert cancelled["cancelled_items"] == cancelled["total_items"] == 3
    assert cancelled["completed_at"] is not None
    items = await client.get(f"/api/batch-jobs/{job['id']}/items", headers=organization.member.headers)
    assert {item["status"] for item in items.json()["items"]} == {"cancelled"}


async def test_cancelling_a_finished_job_is_409(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    job = await submit(client, organization.member.headers, [uuid4()])
    await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)
    again = await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)
    assert error_of(again) == (409, "job_finished")


# --- Organization isolation --------------------------------------------------------------------------


JOB_PATHS = [
    ("GET", "/api/batch-jobs/{}"),
    ("GET", "/api/batch-jobs/{}/items"),
    ("POST", "/api/batch-jobs/{}/cancel"),
]


async def test_another_organizations_job_is_answered_like_no_job(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    intruder = (await create_organization(database)).admin.headers
    job = await submit(client, organization.member.headers, [uuid4()])

    async def answer(method: str, path: str) -> tuple[int, Any]:
        response = await client.request(method, path, headers=intruder)
        return response.status_code, response.json()

    for method, template in JOB_PATHS:
        foreign = await answer(method, template.format(job["id"]))
        assert foreign == await answer(method, template.format(uuid4())), template
        assert foreign == await answer(method, template.format("not-a-uuid")), template
        assert foreign[0] == 404, template
        assert foreign[1]["error"]["code"] == "job_not_found", template
    untouched = await client.get(f"/api/batch-jobs/{job['id']}", headers=organization.member.headers)
    assert untouched.json()["status"] == "pending"
    assert untouched.json()["cancel_requested"] is False


async def test_another_organizations_orders_fail_as_not_found_without_their_number(
    client: httpx.AsyncClient, database: Database, organization: Organization, settings: Settings
) -> None:
    victim = await create_organization(database)
    their_orders = await create_orders(database, victim, 2)
    job = await submit(client, organization.admin.headers, their_orders)
    await drain_queue(settings)

    response = await client.get(f"/api/batch-jobs/{job['id']}/items", headers=organization.admin.headers)
    items = response.json()["items"]
    assert [(i["status"], i["error"]["code"], i["order_number"], i["invoice_id"]) for i in items] == [
        ("failed", "order_not_found", None, None)
    ] * 2
    assert "SO-" not in response.text  # no order number in any message either
    uninvoiced = await client.get(
        "/api/sales-orders", params={"invoiced": "false"}, headers=victim.member.headers
    )
    assert {order["id"] for order in uninvoiced.json()["items"]} == {str(i) for i in their_orders}


# --- POST /api/admin/process-pending ----------------------------------------------------------------


async def test_process_pending_does_not_enqueue_a_job_twice(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    await submit(client, organization.member.headers, [uuid4()])
    response = await client.post("/api/admin/process-pending", headers=organization.admin.headers)
    assert response.status_code == 200
    assert response.json() == {"enqueued": 0, "resumed": 0, "failed": 0}


async def test_process_pending_enqueues_a_job_redis_lost(
    client: httpx.AsyncClient, organization: Organization, queue: JobQueue, settings: Settings
) -> None:
    job = await submit(client, organization.member.headers, [uuid4()])
    arq_job_id = keys.arq_job_id(UUID(job["id"]), 0)
    # Lose only this test's keys: Redis is shared with other tests.
    await queue.redis.delete(job_key_prefix + arq_job_id)
    await queue.redis.zrem(settings.queue_name, arq_job_id)

    response = await client.post("/api/admin/process-pending", headers=organization.admin.headers)
    assert response.status_code == 200
    assert response.json()["enqueued"] == 1
    assert response.json()["resumed"] == 0
    # Under a fresh arq id: arq refuses one it still knows (see test_worker_processes).
    assert await queue.redis.zscore(settings.queue_name, keys.arq_job_id(UUID(job["id"]), 1)) is not None


async def test_process_pending_acts_on_and_reports_the_callers_organization_only(
    client: httpx.AsyncClient,
    database: Database,
    organization: Organization,
    queue: JobQueue,
    settings: Settings,
) -> None:
    other = await create_organization(database)
    jobs = {}
    for owner in (organization, other):
        job = await submit(client, owner.member.headers, [uuid4()])
        arq_job_id = keys.arq_job_id(UUID(job["id"]), 0)
        await queue.redis.delete(job_key_prefix + arq_job_id)
        await queue.redis.zrem(settings.queue_name, arq_job_id)
        jobs[owner.id] = job["id"]

    response = await client.post("/api/admin/process-pending", headers=organization.admin.headers)

    assert response.json() == {"enqueued": 1, "resumed": 0, "failed": 0}
    for owner, generation in ((organization, 1), (other, 0)):
        async with database.unscoped() as connection:
            found = await connection.fetchval(
                "SELECT enqueue_generation FROM batch_job_queue WHERE id = $1", UUID(jobs[owner.id])
            )
        assert found == generation
