"""The sweep: recover from PostgreSQL whatever Redis lost or a dead worker left behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from invoicing.queue import JobQueue
from invoicing.settings import Settings
from invoicing.storage import leases
from invoicing.storage.database import Database

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    enqueued: int
    resumed: int
    failed: int
    skipped: bool = False

    def to_json(self) -> dict[str, int]:
        return {"enqueued": self.enqueued, "resumed": self.resumed, "failed": self.failed}


async def sweep(database: Database, queue: JobQueue, settings: Settings) -> SweepResult:
    """Fail jobs that crashed too often, re-enqueue expired and stale pending ones.

    Safe to run from several places at once (cron on every worker, the CLI, the admin API):
    an advisory lock lets one run and the others return at once with ``skipped``.
    """
    async with database.system() as connection:
        if not await leases.try_sweep_lock(connection):
            return SweepResult(0, 0, 0, skipped=True)
        failed = await leases.fail_exhausted_jobs(connection, settings.max_job_attempts)
        expired = await leases.resume_expired_jobs(connection)
        pending = await leases.stale_pending_jobs(connection, settings.sweep_pending_after_seconds)
    for job in failed:
        logger.warning("job %s failed after %d attempts", job.id, job.attempts)
        await queue.publish(job)
    resumed = 0
    for ticket in expired:
        resumed += await queue.enqueue(ticket.job_id, ticket.generation)
    enqueued = 0
    for ticket in pending:
        enqueued += await queue.enqueue(ticket.job_id, ticket.generation)
    if failed or resumed or enqueued:
        logger.info("sweep: enqueued %d, resumed %d, failed %d", enqueued, resumed, len(failed))
    return SweepResult(enqueued=enqueued, resumed=resumed, failed=len(failed))
