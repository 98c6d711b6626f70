"""`invoicing worker`: an arq worker that survives Redis restarts.

arq's worker exits when its Redis connection drops. This loop hands running jobs back
(their leases are released), waits with backoff, and starts a fresh arq worker; the sweep,
which every worker runs at startup and every ``SWEEP_INTERVAL_SECONDS`` beside its job slots
(``worker/sweeper.py``), re-enqueues whatever was handed back or lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from typing import Any

from arq.worker import Worker, func

from invoicing.infra import pools
from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import connect_redis
from invoicing.jobs import leases
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from worker.sweeper import sweep_periodically
from worker.tasks import deliver_notifications, process_batch_job

logger = logging.getLogger(__name__)

# A batch of 100,000 orders is one arq job; arq's 300 s default would kill it.
JOB_TIMEOUT_SECONDS = 24 * 3600
#: Notification runs each worker process serves at once, on a queue of their own: an endpoint
#: that times out delays other notices, never a batch. A run sends at most DELIVERIES_PER_RUN,
#: each within its timeouts; what is left or lost is due again for the sweep.
NOTIFICATION_SLOTS = 2
NOTIFICATION_RUN_TIMEOUT_SECONDS = 15 * 60


def build_worker(settings: Settings, database: Database, worker_id: str) -> Worker:
    """The batch jobs' worker: ``WORKER_MAX_JOBS`` slots."""
    return _arq_worker(
        settings,
        database,
        worker_id,
        func(process_batch_job, name=keys.PROCESS_BATCH_JOB, keep_result=0, max_tries=1000),
        queue_name=settings.queue_name,
        max_jobs=settings.worker_max_jobs,
        job_timeout=JOB_TIMEOUT_SECONDS,
    )


def build_notification_worker(settings: Settings, database: Database, worker_id: str) -> Worker:
    return _arq_worker(
        settings,
        database,
        worker_id,
        func(deliver_notifications, name=keys.DELIVER_NOTIFICATIONS, keep_result=0, max_tries=3),
        queue_name=keys.notification_queue(settings.queue_name),
        max_jobs=NOTIFICATION_SLOTS,
        job_timeout=NOTIFICATION_RUN_TIMEOUT_SECONDS,
    )


def _arq_worker(
    settings: Settings,
    database: Database,
    worker_id: str,
    function: Any,
    *,
    queue_name: str,
    max_jobs: int,
    job_timeout: float,
) -> Worker:
    _, redis_url = settings.require_services()
    return Worker(
        functions=[function],
        redis_pool=connect_redis(redis_url),
        queue_name=queue_name,
        handle_signals=False,
        max_jobs=max_jobs,
        job_timeout=job_timeout,
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


async def _run_workers_once(
    workers: list[Worker], stop: asyncio.Event, *, burst: bool
) -> BaseException | None:
    """Run the workers side by side until one fails or ``stop`` (in burst, one after the other
    until each has emptied its queue); the failure (Redis lost), if any."""
    if burst:
        for worker in workers:
            worker.burst = True
            failure = await _run_until_failure_or_stop([worker], stop)
            if failure is not None or stop.is_set():
                return failure
        return None
    return await _run_until_failure_or_stop(workers, stop)


async def _run_until_failure_or_stop(workers: list[Worker], stop: asyncio.Event) -> BaseException | None:
    mains = [asyncio.create_task(worker.main()) for worker in workers]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({*mains, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    failures = [main.exception() for main in mains if main.done() and not main.cancelled()]
    for worker, main in zip(workers, mains, strict=True):
        await _stop_worker(worker, main)
    return next((failure for failure in failures if failure is not None), None)


async def _stop_worker(worker: Worker, main: asyncio.Task[Any]) -> None:
    await _cancel_until_done([main, *worker.tasks.values()])
    with contextlib.suppress(Exception):
        await worker.pool.aclose(close_connection_pool=True)


async def run_worker(settings: Settings, *, burst: bool = False, handle_signals: bool = True) -> None:
    """Run until SIGINT/SIGTERM (or, with ``burst``, until the queue is empty)."""
    settings.require_services()
    # A random token first: a restarted container has the same host name and pid, and a long
    # host name is cut in application_name; the token still tells processes apart.
    worker_id = f"{secrets.token_hex(4)}.{os.getpid()}@{socket.gethostname()}"
    stop = asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    # Three connections per job (one chunk commits while the next is prepared; the lease's
    # heartbeat), opened up front: a connection still being opened when the worker is stopped
    # could be lost to the pool. Two more for the sweep and claims, one per notification slot
    # (a run's sends share it; they hold a connection only briefly, never while sending).
    connections = 3 * settings.worker_max_jobs + 2 + NOTIFICATION_SLOTS
    database = application_database(
        settings,
        pool_size=connections,
        min_size=connections,
        application_name=leases.worker_session_name(worker_id),
    )
    async with database:
        await pools.check_at_start(database, "worker")
        # Whatever was handed back or lost is queued again: in a burst, first and once; else at
        # once and then all along, beside the job slots.
        sweeper = None
        if burst:
            await sweep_periodically(database, settings, once=True)
        else:
            sweeper = asyncio.create_task(sweep_periodically(database, settings))
        try:
            await _run_arq(settings, database, worker_id, stop, burst=burst)
        finally:
            if sweeper is not None:
                await _cancel_until_done([sweeper])
    logger.info("worker %s stopped", worker_id)


async def _run_arq(
    settings: Settings, database: Database, worker_id: str, stop: asyncio.Event, *, burst: bool
) -> None:
    """Fresh arq workers (batch jobs, notifications) each time Redis is lost, until ``stop``
    (or, in burst, empty queues: the jobs' first, then the notices they left)."""
    backoff = 0.5
    while not stop.is_set():
        started = time.monotonic()
        failure = await _run_workers_once(
            [
                build_worker(settings, database, worker_id),
                build_notification_worker(settings, database, worker_id),
            ],
            stop,
            burst=burst,
        )
        if stop.is_set() or (burst and failure is None):
            return
        if time.monotonic() - started > 30:
            backoff = 0.5
        logger.warning("worker lost Redis (%s); reconnecting in %.1f s", failure, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(backoff * 2, 5.0)
