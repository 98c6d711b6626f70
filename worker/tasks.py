"""arq tasks. They take ids, re-read state from PostgreSQL and call the domain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from uuid import UUID, uuid4

from invoicing.domain.chunking import ChunkSizer
from invoicing.pipeline import JobRun, committed_chunks
from invoicing.processing import ChunkOutcome
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
    sizer = _ChunkTimer(settings)
    run = JobRun(database, job_uuid, owner, job.organization_id, settings.lease_seconds)
    outcome = ChunkOutcome(job=None)
    try:
        async with contextlib.aclosing(committed_chunks(run, sizer.next_size)) as chunks:
            async for outcome in chunks:
                if outcome.job is not None:
                    await queue.publish(outcome.job)
                sizer.committed()
    except (asyncio.CancelledError, Exception):
        # Shutting down, Redis lost, or a chunk failed (a deadlock with another job, the
        # database gone): hand the job back now instead of leaving it until the lease expires.
        # Shielded, on its own task and connection: this one may be being cancelled.
        await asyncio.shield(asyncio.ensure_future(_release(database, queue, job_uuid, owner)))
        raise
    if outcome.job is None:
        logger.warning("job %s: lease lost to another worker; stopping", job_uuid)
        return "lease lost"
    logger.info("job %s %s", job_uuid, outcome.job.status.value)
    return outcome.job.status.value


class _ChunkTimer:
    """Feeds the sizer: each chunk's size, and the time between consecutive commits (with
    two chunks overlapping, that is what one chunk costs)."""

    def __init__(self, settings: Settings) -> None:
        self.sizer = ChunkSizer(
            size=settings.chunk_size,
            target_seconds=settings.chunk_target_seconds,
            maximum=max(settings.chunk_size, settings.max_chunk_size),
        )
        self.pending: list[int] = []  # sizes of the chunks started and not yet committed
        self.last_commit = time.perf_counter()

    def next_size(self) -> int:
        self.pending.append(self.sizer.size)
        return self.sizer.size

    def committed(self) -> None:
        now = time.perf_counter()
        elapsed, self.last_commit = now - self.last_commit, now
        if self.pending:
            self.sizer.observe(self.pending.pop(0), elapsed)


async def _release(database: Database, queue: JobQueue, job_id: UUID, owner: str) -> None:
    try:
        async with database.system() as connection:
            ticket = await leases.release_job(connection, job_id, owner)
        if ticket is not None:
            logger.info("job %s released for another worker", job_id)
            await queue.enqueue(ticket.job_id, ticket.generation)
    except Exception as exc:  # the error that stopped the job is the one to report
        logger.warning("job %s not released (%s); the sweep resumes it when its lease expires", job_id, exc)


async def sweep_task(ctx: dict[str, Any]) -> dict[str, int]:
    database, queue, settings = _resources(ctx)
    result = await sweep(database, queue, settings)
    return result.to_json()
