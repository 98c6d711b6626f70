"""Progress events: what the worker publishes after each commit and WebSockets forward."""

from __future__ import annotations

import json
import time
from typing import Any, Literal, TypedDict

from invoicing.infra.queue import JobQueue
from invoicing.jobs.views import BatchJob


class ProgressEvent(TypedDict, total=False):
    type: Literal["progress"]
    job_id: str
    organization_id: str
    seq: int
    status: str
    #: Always false: a finished job's state goes out as a ``FinishedEvent``. Sent all the same,
    #: so that a client merging events into its job object never keeps a stale ``finished``.
    finished: bool
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    cancelled_items: int
    cancel_requested: bool
    #: Sent with every event: an admin may change it while the job waits or runs.
    priority: str
    active_workers: int
    items_per_second: float | None
    eta_seconds: float | None
    #: When the worker published it (Unix time); lets anyone measure delivery delay.
    published_at: float


class FinishedEvent(TypedDict, total=False):
    type: Literal["finished"]
    job_id: str
    organization_id: str
    seq: int
    job: dict[str, Any]
    published_at: float


def event_for(job: BatchJob) -> ProgressEvent | FinishedEvent:
    """The event announcing this committed state of the job (``seq`` only grows)."""
    body = job.to_json()
    if job.is_finished:
        return FinishedEvent(
            type="finished",
            job_id=body["id"],
            organization_id=body["organization_id"],
            seq=job.progress_seq,
            job=body,
        )
    return ProgressEvent(
        type="progress",
        job_id=body["id"],
        organization_id=body["organization_id"],
        seq=job.progress_seq,
        status=body["status"],
        finished=body["finished"],
        total_items=job.total_items,
        processed_items=job.processed_items,
        successful_items=job.successful_items,
        failed_items=job.failed_items,
        cancelled_items=job.cancelled_items,
        cancel_requested=job.cancel_requested,
        priority=body["priority"],
        active_workers=job.active_workers,
        items_per_second=body["items_per_second"],
        eta_seconds=body["eta_seconds"],
    )


def encode(event: ProgressEvent | FinishedEvent) -> str:
    """The wire form, stamped with the moment of publishing."""
    return json.dumps({**event, "published_at": round(time.time(), 6)}, separators=(",", ":"))


async def publish(queue: JobQueue, job: BatchJob) -> None:
    """Announce a committed state of the job. Call only after the commit; best effort. A
    finished job's notices were written by the commit that finished it (the outbox): a worker
    is asked to send them now (else the sweep finds them due)."""
    if job.is_finished:
        # First: a watcher's socket closes on the finished event, and cancels what its task
        # still awaits (a WebSocket's cancel ends here).
        await queue.enqueue_notifications(job.organization_id, f"job:{job.id}")
    await queue.publish(job.organization_id, encode(event_for(job)))
