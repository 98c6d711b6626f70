"""Use cases on batch jobs, called by the HTTP and WebSocket edges.

``create_job`` and ``retry_job`` apply the user's limits themselves (the limiter they are
handed), around ``submit_batch``, which records a job within its organization's active-job cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID

import asyncpg

from invoicing.domain.batch_requests import (
    BatchRequest,
    parse_batch_request,
    parse_priority_body,
    parse_retry_request,
)
from invoicing.domain.job_states import Priority
from invoicing.domain.order_filters import OrderFilter
from invoicing.infra.database import FAST_UUID, Database
from invoicing.infra.limits import Limiter
from invoicing.infra.queue import JobQueue
from invoicing.infra.write_gate import WriteGate
from invoicing.jobs import active_jobs, events
from invoicing.jobs import store as jobs
from invoicing.jobs.views import BatchJob
from invoicing.kernel.errors import BadRequest, Conflict, NotFound, OrdersInActiveJob
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings
from invoicing.orders import store as orders

T = TypeVar("T")


class JobServices(Protocol):
    """What the job use cases are handed (the server's services object is one)."""

    @property
    def database(self) -> Database: ...

    @property
    def queue(self) -> JobQueue: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def limiter(self) -> Limiter: ...

    @property
    def write_gate(self) -> WriteGate: ...


async def create_job(
    services: JobServices, principal: Principal, body: Callable[[], Awaitable[object]]
) -> BatchJob:
    """A job over the orders the client's request ``body`` (its JSON) names by id or by filter.

    ``body`` is read only once the user's limits allow a request (see ``_limited``).
    """
    max_batch_size = services.settings.max_batch_size

    async def batch() -> BatchRequest:
        request = parse_batch_request(await body(), max_batch_size=max_batch_size, make_uuid=FAST_UUID)
        _may_use(principal, request.priority)
        return request

    return await _limited(services, principal, batch, partial(_submit, services, principal))


async def retry_job(
    services: JobServices,
    principal: Principal,
    job_id: str,
    body: Callable[[], Awaitable[object | None]] | None = None,
) -> BatchJob:
    """A new job over the finished job's orders that got no invoice (audited on both jobs).

    ``job_id`` is the id as the client sent it: a malformed one is answered like a missing job.
    ``body`` (optional: ``{"priority": ...}``) chooses the new job's priority; by default it is
    the retried job's.
    """

    async def original() -> tuple[UUID, Priority | None]:
        job_uuid = parse_job_id(job_id)
        priority = parse_retry_request(None if body is None else await body())
        _may_use(principal, priority)
        return job_uuid, priority

    return await _limited(services, principal, original, partial(_retry, services, principal))


async def change_priority(
    services: JobServices, principal: Principal, job_id: UUID, body: Callable[[], Awaitable[object]]
) -> BatchJob:
    """An admin moves a pending or running job to another priority (Conflict once it ended).
    A member is refused before anything they sent is read."""
    principal.require_admin()
    priority = parse_priority_body(await body())
    async with services.database.scoped(principal.organization_id) as connection:
        job = await jobs.set_priority(
            connection, principal.organization_id, job_id, principal.user_id, priority
        )
    await events.publish(services.queue, job)
    return job


def _retry_priority(principal: Principal, job: BatchJob, asked: Priority | None) -> Priority:
    """What the retry asked for, else the retried job's priority; but a member's retry of an
    urgent job is normal (urgent is an admin's choice, not something a member can inherit)."""
    if asked is not None:
        return asked
    if job.priority is Priority.urgent and not principal.is_admin:
        return Priority.normal
    return job.priority


def _may_use(principal: Principal, priority: Priority | None) -> None:
    """Urgent work goes before every other job of every organization: admins only."""
    if priority is Priority.urgent:
        principal.require_admin()


async def _limited(
    services: JobServices,
    principal: Principal,
    read: Callable[[], Awaitable[T]],
    create: Callable[[T], Awaitable[BatchJob]],
) -> BatchJob:
    """The steps of every request for a new job, in this order: refused at once while the user
    is over their refused requests' limit, before anything is read; then what the client sent is
    read and validated (a refusal from here on counts against that limit); then one of the
    user's jobs per minute is reserved, and given back unless ``create`` makes the job."""
    limiter = services.limiter
    async with limiter.refusals_counted(principal):
        wanted = await read()
        async with limiter.job_creation_quota(principal):
            return await create(wanted)


async def _submit(services: JobServices, principal: Principal, request: BatchRequest) -> BatchJob:
    return await submit_batch(
        services.database, services.queue, principal, request, services.settings, gate=services.write_gate
    )


def parse_job_id(text: str) -> UUID:
    """A job id the client sent; a malformed one cannot name a job, so it is answered like a
    missing one."""
    try:
        return UUID(text)
    except ValueError:
        raise NotFound.job() from None


async def submit_batch(
    database: Database,
    queue: JobQueue,
    principal: Principal,
    request: BatchRequest,
    settings: Settings,
    *,
    gate: WriteGate | None = None,
) -> BatchJob:
    """Record the job and its items in one transaction, then trigger a worker.

    That transaction first checks the organization's cap of active jobs under its lock
    (TooManyRequests ``too_many_active_jobs``), so parallel submits never exceed it. No order
    goes into two running jobs: a filter is resolved to order ids inside that transaction, by
    the database, leaving out orders a running job holds, and a list of ids naming any of them
    is refused (``OrdersInActiveJob``). As every submit of the organization holds the same
    lock, two parallel submits cannot both take an order. The enqueue happens
    after the commit: a worker can never look for a job that is not there yet, and if Redis
    is down the job simply waits in PostgreSQL for the sweep.

    Submits take turns without holding a connection while they wait (``gate``, the server
    process's: see invoicing/infra/write_gate.py); DatabaseBusy if the turn does not come in time.
    """
    gate = gate or WriteGate(slots=1)
    deadline = gate.deadline()
    async with gate.turn(principal.organization_id, deadline):
        job = await _record_when_unlocked(database, gate, deadline, principal, request, settings)
    await queue.enqueue(job.id, job.enqueue_generation)
    return job


async def _record_when_unlocked(
    database: Database,
    gate: WriteGate,
    deadline: float,
    principal: Principal,
    request: BatchRequest,
    settings: Settings,
) -> BatchJob:
    attempt = 0
    while True:
        async with gate.slot(deadline), database.scoped(principal.organization_id) as connection:
            if await active_jobs.try_lock_submits(connection, principal.organization_id):
                return await _record(connection, principal, request, settings)
        # Another server process is submitting for this organization: its transaction holds
        # the lock. Ours ended empty and gave its connection back; wait, then try again.
        await gate.pause(attempt, deadline)
        attempt += 1


async def _record(
    connection: asyncpg.Connection, principal: Principal, request: BatchRequest, settings: Settings
) -> BatchJob:
    """The job and its items, under the organization's submit lock."""
    await active_jobs.check_active_jobs(
        connection, principal.organization_id, settings.max_active_jobs_per_org
    )
    order_ids = list(request.order_ids)
    extra: dict[str, Any] = {}
    if request.retry_of is not None:
        await jobs.refuse_second_retry(connection, request.retry_of)
    if order_ids:
        held = await orders.held_orders(connection, principal.organization_id, order_ids)
        if held and request.retry_of is not None:
            # A retry takes what is still free; another job is already on the rest.
            order_ids = [order_id for order_id in order_ids if order_id not in held]
            if not order_ids:
                raise _nothing_to_retry()
        elif held:
            raise OrdersInActiveJob.holding(held)
    if request.order_filter is not None:
        order_ids = await _resolve_filter(
            connection, principal, request.order_filter, settings.max_batch_size
        )
        extra["filter"] = request.order_filter.to_json()
    if request.retry_of is not None:
        extra["retry_of"] = str(request.retry_of)
    return await jobs.create_job(
        connection,
        organization_id=principal.organization_id,
        created_by=principal.user_id,
        order_ids=order_ids,
        payload=job_payload(principal.user_id, "api", extra),
        retry_of=request.retry_of,
        priority=request.priority or Priority.normal,
        part_size=settings.job_part_size,
    )


async def _resolve_filter(
    connection: Any, principal: Principal, order_filter: OrderFilter, max_batch_size: int
) -> list[UUID]:
    order_ids = await orders.matching_order_ids(
        connection, principal.organization_id, order_filter, limit=max_batch_size + 1
    )
    if not order_ids:
        message = "No orders match the filter (orders in running jobs are left out)."
        raise BadRequest(message, code="empty_batch")
    if len(order_ids) > max_batch_size:
        raise BadRequest(
            f"More than {max_batch_size} orders match; a batch may contain at most {max_batch_size}.",
            code="batch_too_large",
        )
    return order_ids


async def _retry(
    services: JobServices, principal: Principal, wanted: tuple[UUID, Priority | None]
) -> BatchJob:
    """A new job over the orders of a finished job that still have no invoice and that no
    running job holds (the failed items' reasons are usually fixed in the orders first: an
    address, a price)."""
    job_id, priority = wanted
    async with services.database.scoped(principal.organization_id) as connection:
        job = await jobs.get_job(connection, principal.organization_id, job_id)
        if not job.is_finished:
            message = f"The job is still {job.status.value}; retry it once it has finished."
            raise Conflict(message, code="job_not_finished")
        order_ids = await jobs.uninvoiced_order_ids(connection, job)
    if not order_ids:
        raise _nothing_to_retry()
    retry = BatchRequest(
        order_ids=tuple(order_ids), retry_of=job.id, priority=_retry_priority(principal, job, priority)
    )
    return await _submit(services, principal, retry)


def _nothing_to_retry() -> Conflict:
    message = "Every order of the job has its invoice or is in a running job; there is nothing to retry."
    return Conflict(message, code="nothing_to_retry")


async def cancel_job(services: JobServices, principal: Principal, job_id: UUID) -> BatchJob:
    """Cancel a pending job now, or ask its worker to stop; Conflict if it already finished."""
    async with services.database.scoped(principal.organization_id) as connection:
        job = await jobs.request_cancel(connection, principal.organization_id, job_id, principal.user_id)
    await events.publish(services.queue, job)
    return job


def job_payload(user_id: UUID, source: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request context stored with a job (the seed's ``payload``), for audit and support."""
    return {"requested_by": str(user_id), "source": source, **(extra or {})}
