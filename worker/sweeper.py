"""The recovery sweep of a worker process, every ``SWEEP_INTERVAL_SECONDS``.

It runs beside arq's job slots, not in one: a worker whose every slot holds a long batch
must still take back the jobs of a worker that died or froze (an arq cron job would wait
for a free slot, so a fleet of busy workers would never sweep).
"""

from __future__ import annotations

import asyncio
import logging
import random

from invoicing.infra.database import Database
from invoicing.infra.database_failures import is_unavailable
from invoicing.infra.queue import JobQueue, connect_redis
from invoicing.jobs.sweep import sweep
from invoicing.kernel.settings import Settings
from invoicing.notifications.sweep import enqueue_due

logger = logging.getLogger(__name__)


async def sweep_periodically(database: Database, settings: Settings, *, once: bool = False) -> None:
    """Sweep now, then every interval (with a little jitter, so workers do not sweep in
    step) until cancelled; with ``once``, just now."""
    _, redis_url = settings.require_services()
    queue = JobQueue(connect_redis(redis_url), settings)
    try:
        while True:
            await _sweep_once(database, queue, settings)
            if once:
                return
            await asyncio.sleep(settings.sweep_interval_seconds * (0.9 + 0.2 * random.random()))
    finally:
        await queue.close()


async def _sweep_once(database: Database, queue: JobQueue, settings: Settings) -> None:
    # Each step on its own: jobs that cannot be swept now do not hold back the notices.
    for step, run in (
        ("sweep", lambda: sweep(database, queue, settings)),
        ("notification sweep", lambda: enqueue_due(database, queue, settings.sweep_interval_seconds)),
    ):
        try:
            await run()
        except Exception as exc:
            if is_unavailable(exc):
                logger.warning("%s skipped: the database cannot be reached (%s)", step, exc)
            else:
                logger.exception("%s failed; the next one tries again", step)
