"""A batch of valid and invalid orders, submitted over the API and run by a real worker."""

from __future__ import annotations

from collections import Counter

from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.jobs import store as job_storage
from invoicing.kernel.settings import Settings
from tests.support.app import api_client
from tests.support.factories import create_mixed_orders, create_organization
from tests.support.workers import drain_queue


async def test_mixed_batch_ends_completed_with_counts_and_reasons(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    orders = await create_mixed_orders(database, organization, valid=60)
    async with api_client(settings) as client:
        submitted = await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(i) for i in orders.all_ids]},
            headers=organization.member.headers,
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.json()["status"] == "pending"

        await drain_queue(settings)

        job = (await client.get(f"/api/batch-jobs/{job_id}", headers=organization.member.headers)).json()
        assert job["status"] == "completed"
        assert job["total_items"] == len(orders.all_ids)
        assert job["processed_items"] == len(orders.all_ids)
        assert job["successful_items"] == 60
        assert job["failed_items"] == len(orders.invalid)
        assert job["progress"] == 1.0
        assert job["created_by"] == str(organization.member.id)

        failed = await client.get(
            f"/api/batch-jobs/{job_id}/items",
            params={"status": "failed"},
            headers=organization.member.headers,
        )
        reasons = {item["order_id"]: item["error"]["code"] for item in failed.json()["items"]}
        assert reasons == {str(order_id): code for order_id, code in orders.invalid.items()}

        invoices = await client.get(
            "/api/invoices", params={"job_id": job_id, "limit": 500}, headers=organization.member.headers
        )
        created = invoices.json()["items"]
    assert sorted(i["sales_order_id"] for i in created) == sorted(str(i) for i in orders.valid)
    assert {i["created_by"] for i in created} == {str(organization.member.id)}
    assert {i["batch_job_id"] for i in created} == {job_id}


async def test_invoice_amounts_follow_the_rules(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    orders = await create_mixed_orders(database, organization, valid=1)
    async with api_client(settings) as client:
        await client.post(
            "/api/batch-jobs", json={"order_ids": [str(orders.valid[0])]}, headers=organization.admin.headers
        )
        await drain_queue(settings)
        listing = await client.get("/api/invoices", headers=organization.admin.headers)
        invoice_id = listing.json()["items"][0]["id"]
        invoice = (await client.get(f"/api/invoices/{invoice_id}", headers=organization.admin.headers)).json()
    # 2 x 50.00 at 20 % and 1 x 19.99 less 10 % (17.99) at 7 %.
    assert invoice["subtotal"] == "117.99"
    assert invoice["tax_total"] == "21.26"
    assert invoice["total"] == "139.25"
    assert [line["net_amount"] for line in invoice["lines"]] == ["100.00", "17.99"]
    assert invoice["number"].startswith("INV-")
    assert invoice["due_date"] > invoice["issue_date"]


async def test_every_order_is_invoiced_once_across_overlapping_jobs(
    settings: Settings, database: Database, queue: JobQueue
) -> None:
    organization = await create_organization(database)
    order_ids = (await create_mixed_orders(database, organization, valid=40)).valid
    # The API refuses a batch naming orders a running job holds; the database alone must still
    # keep one invoice per order when jobs overlap (jobs written by hand, an old server).
    for ids in (order_ids[:30], order_ids[10:]):
        async with database.scoped(organization.id) as connection:
            job = await job_storage.create_job(
                connection,
                organization_id=organization.id,
                created_by=organization.admin.id,
                order_ids=ids,
                payload={},
                part_size=settings.job_part_size,
            )
        await queue.enqueue(job.id, job.enqueue_generation)
    async with api_client(settings) as client:
        await drain_queue(settings)
        jobs = (await client.get("/api/batch-jobs", headers=organization.admin.headers)).json()["items"]
    assert sum(job["successful_items"] for job in jobs) == 40
    codes = Counter(error["code"] for job in jobs for error in job["errors"])
    assert codes == {"already_invoiced": 20}
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM invoices") == 40
