"""arq tasks. They take ids, re-read state from PostgreSQL and call the domain."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID, uuid4

from invoicing.domain.chunking import next_chunk_size
from invoicing.processing import process_next_chunk
from invoicing.queue import JobQueue
from invoicing.settings import Settings
from invoicing.storage import leases
from invoicing.storage.database import Database
from invoicing.sweep import sweep

logger = logging.getLogger(__name__)


def _resources(ctx: dict[str, Any]) -> tuple[Database, JobQueue, Settings]:
    settings: Settings = ctx["settings"]
    return ctx["database"], JobQueue(ctx["redis"], settings), settings


async def process_batch_job(ctx: dict[str, Any], job_id: str) -> str:
    """Claim the job, then invoice it chunk by chunk until it is finished or taken away.

    Safe to run twice for the same job (arq delivers at least once): the claim lets only one
    run hold the lease; the other returns at once.
    """
    database, queue, settings = _resources(ctx)
    job_uuid = UUID(job_id)
    owner = f"{ctx['worker_id']}/{uuid4().hex[:8]}"
    async with database.system() as connection:
        job = await leases.claim_job(connection, job_uuid, owner, settings.lease_seconds)
    if job is None:
        return "not claimed"
    logger.info("job %s claimed by %s (attempt %d)", job_uuid, owner, job.attempts)
    await queue.publish(job)
    chunk_size, after_position = settings.chunk_size, 0
    try:
        while True:
            started = time.perf_counter()
            outcome = await process_next_chunk(
                database,
                job_uuid,
                owner,
                organization_id=job.organization_id,
                chunk_size=chunk_size,
                lease_seconds=settings.lease_seconds,
                after_position=after_position,
            )
            if outcome.job is not None:
                await queue.publish(outcome.job)
            if outcome.done:
                break
            after_position = outcome.last_position
            elapsed = time.perf_counter() - started
            logger.debug("job %s: chunk of %d in %.3f s", job_uuid, chunk_size, elapsed)
            chunk_size = next_chunk_size(
                chunk_size,
                elapsed,
                target_seconds=settings.chunk_target_seconds,
                maximum=max(settings.chunk_size, settings.max_chunk_size),
            )
    except asyncio.CancelledError:
        # Shutting down (or Redis lost): hand the job back now instead of waiting for the lease
        # to expire. Shielded, on its own task and connection: this one is being cancelled.
        await asyncio.shield(asyncio.ensure_future(_release(database, queue, job_uuid, owner)))
        raise
    if outcome.job is None:
        logger.warning("job %s: lease lost to another worker; stopping", job_uuid)
        return "lease lost"
    logger.info("job %s %s", job_uuid, outcome.job.status.value)
    return outcome.job.status.value


async def _release(database: Database, queue: JobQueue, job_id: UUID, owner: str) -> None:
    async with database.system() as connection:
        ticket = await leases.release_job(connection, job_id, owner)
    if ticket is not None:
        logger.info("job %s released for another worker", job_id)
        await queue.enqueue(ticket.job_id, ticket.generation)


async def sweep_task(ctx: dict[str, Any]) -> dict[str, int]:
    database, queue, settings = _resources(ctx)
    result = await sweep(database, queue, settings)
    return result.to_json()
