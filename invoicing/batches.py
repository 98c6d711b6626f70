"""Use cases on batch jobs, called by the HTTP edge (and later the WebSocket edge)."""

from __future__ import annotations

from uuid import UUID

from invoicing.domain.jobs import BatchRequest
from invoicing.principal import Principal
from invoicing.processing import job_payload
from invoicing.queue import JobQueue
from invoicing.records import BatchJob
from invoicing.storage import jobs
from invoicing.storage.database import Database


async def submit_batch(
    database: Database, queue: JobQueue, principal: Principal, request: BatchRequest
) -> BatchJob:
    """Record the job and its items in one transaction, then trigger a worker.

    The enqueue happens after the commit: a worker can never look for a job that is not
    there yet, and if Redis is down the job simply waits in PostgreSQL for the sweep.
    """
    async with database.transaction() as connection:
        job = await jobs.create_job(
            connection,
            organization_id=principal.organization_id,
            created_by=principal.user_id,
            order_ids=request.order_ids,
            payload=job_payload(principal.user_id, "api"),
        )
    await queue.enqueue(job.id, job.enqueue_generation)
    return job


async def cancel_batch(database: Database, queue: JobQueue, principal: Principal, job_id: UUID) -> BatchJob:
    async with database.transaction() as connection:
        job = await jobs.request_cancel(connection, principal.organization_id, job_id, principal.user_id)
    await queue.publish(job)
    return job
