"""`invoicing worker`: an arq worker that survives Redis restarts.

arq's worker exits when its Redis connection drops. This loop hands running jobs back
(their leases are released), waits with backoff, and starts a fresh arq worker; the sweep
that every worker runs at startup then re-enqueues whatever was handed back or lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from typing import Any

from arq import cron
from arq.worker import Worker, func

from invoicing import keys
from invoicing.queue import connect_redis
from invoicing.settings import Settings
from invoicing.storage import leases
from invoicing.storage.database import APP_ROLE, Database, SessionLimits
from worker.tasks import process_batch_job, sweep_task

logger = logging.getLogger(__name__)

# A batch of 100,000 orders is one arq job; arq's 300 s default would kill it.
JOB_TIMEOUT_SECONDS = 24 * 3600


class _QuietSweeps(logging.Filter):
    """Drop arq's start and end lines of the sweep: it runs every few seconds on every worker,
    and says itself when it did something (``invoicing.sweep``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) > 1 and args[1] == keys.SWEEP)


def build_worker(settings: Settings, database: Database, worker_id: str) -> Worker:
    _, redis_url = settings.require_services()
    return Worker(
        functions=[func(process_batch_job, name=keys.PROCESS_BATCH_JOB, keep_result=0, max_tries=1000)],
        cron_jobs=[
            cron(
                sweep_task,
                name=keys.SWEEP,
                second=set(range(0, 60, settings.sweep_interval_seconds)),
                run_at_startup=True,
                keep_result=0,
                timeout=120,
            )
        ],
        redis_pool=connect_redis(redis_url),
        queue_name=settings.queue_name,
        handle_signals=False,
        max_jobs=settings.worker_max_jobs,
        job_timeout=JOB_TIMEOUT_SECONDS,
        keep_result=0,
        poll_delay=settings.worker_poll_delay,
        health_check_interval=30,
        ctx={"database": database, "settings": settings, "worker_id": worker_id},
    )


async def _cancel_until_done(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel and wait, cancelling again as long as needed.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around every command when a
    socket timeout is set) swallows a cancellation that lands as the command completes: one
    ``cancel()`` is not always enough to stop arq's poll loop or a job.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


async def _stop_worker(worker: Worker, main: asyncio.Task[Any]) -> None:
    await _cancel_until_done([main, *worker.tasks.values()])
    with contextlib.suppress(Exception):
        await worker.pool.aclose(close_connection_pool=True)


async def run_worker(settings: Settings, *, burst: bool = False, handle_signals: bool = True) -> None:
    """Run until SIGINT/SIGTERM (or, with ``burst``, until the queue is empty)."""
    database_url, _ = settings.require_services()
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    arq_logger = logging.getLogger("arq.worker")
    if not any(isinstance(existing, _QuietSweeps) for existing in arq_logger.filters):
        arq_logger.addFilter(_QuietSweeps())
    stop = asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    backoff = 0.5
    # Three connections per job (one chunk commits while the next is prepared; the lease's
    # heartbeat), opened up front: a connection still being opened when the worker is stopped
    # could be lost to the pool. Two more for the sweep and claims.
    connections = 3 * settings.worker_max_jobs + 2
    database = Database(
        database_url,
        pool_size=connections,
        min_size=connections,
        app_role=APP_ROLE,
        limits=SessionLimits.from_settings(settings),
        application_name=leases.worker_session_name(worker_id),
    )
    async with database:
        while not stop.is_set():
            worker = build_worker(settings, database, worker_id)
            worker.burst = burst
            started = time.monotonic()
            main = asyncio.create_task(worker.main())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            failure = main.exception() if main.done() and not main.cancelled() else None
            await _stop_worker(worker, main)
            if stop.is_set() or (burst and failure is None):
                break
            if time.monotonic() - started > 30:
                backoff = 0.5
            logger.warning("worker lost Redis (%s); reconnecting in %.1f s", failure, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 5.0)
    logger.info("worker %s stopped", worker_id)
