"""The job use cases apply the user's limits themselves, whichever edge calls them.

Called here as any edge would, with the services it would hand them: real PostgreSQL and
Redis, each test with its own settings (so its own counters) and small limits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from invoicing.infra.database import Database
from invoicing.infra.limits import Limiter
from invoicing.infra.queue import JobQueue
from invoicing.infra.write_gate import WriteGate
from invoicing.jobs import actions
from invoicing.kernel.errors import BadRequest, TooManyRequests
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.jobs import job_queue


@dataclass(frozen=True)
class Services:
    """What an edge hands the job use cases (the server's own object has more)."""

    database: Database
    queue: JobQueue
    settings: Settings
    limiter: Limiter
    write_gate: WriteGate


def member(organization: Organization) -> Principal:
    user = organization.member
    return Principal(user.id, organization.id, user.role, user.email)


def sent(document: object) -> Callable[[], Awaitable[object]]:
    async def body() -> object:
        return document

    return body


async def test_a_job_over_the_per_minute_quota_is_refused_by_the_use_case(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, JOB_CREATE_PER_MINUTE="1")
    organization = await create_organization(database)
    first, second = (str(order_id) for order_id in await create_orders(database, organization, 2))
    async with job_queue(settings) as queue:
        services = Services(database, queue, settings, Limiter(queue.redis, settings), WriteGate(slots=1))
        created = await actions.create_job(services, member(organization), sent({"order_ids": [first]}))
        with pytest.raises(TooManyRequests) as refused:
            await actions.create_job(services, member(organization), sent({"order_ids": [second]}))
    assert created.total_items == 1
    assert refused.value.code == "rate_limited"


async def test_past_the_refused_requests_limit_the_body_is_not_even_read(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, BAD_REQUESTS_PER_MINUTE="1")
    organization = await create_organization(database)
    reads: list[object] = []

    async def counted_body() -> object:
        reads.append("read")
        return {"order_ids": []}

    async with job_queue(settings) as queue:
        services = Services(database, queue, settings, Limiter(queue.redis, settings), WriteGate(slots=1))
        with pytest.raises(BadRequest):
            await actions.create_job(services, member(organization), counted_body)
        with pytest.raises(TooManyRequests):
            await actions.create_job(services, member(organization), counted_body)
        with pytest.raises(TooManyRequests):
            await actions.retry_job(services, member(organization), "not-a-job-id")
    assert reads == ["read"], "the refused request was read; the ones after it were not"
