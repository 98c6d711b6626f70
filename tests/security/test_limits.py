"""Abuse limits: job creation per user and per organization, and login throttling (what a
third party can and cannot do to someone else's logins: tests/security/test_login_lockout.py).

Real PostgreSQL and Redis; each test has its own settings, so its own Redis key prefix, and
small limits so that reaching them is quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import httpx
from starlette.types import Receive, Scope, Send

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from server.app import create_app
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import TEST_PASSWORD, Organization, User, create_orders, create_organization
from tests.support.services import RedisServer

SITE = "http://testserver"
#: The first wait past the free failures (invoicing/domain/login_backoff.py).
THROTTLED = "Too many failed attempts; try again in 1 second."


@asynccontextmanager
async def clients_at(settings: Settings, *addresses: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One app, and a client for each client address (what the server sees as request.client)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        lifespan_state: dict[str, Any] = dict(state or {})

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(lifespan_state)}, receive, send)

        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=with_state, client=(address, 40000)), base_url=SITE
            )
            for address in addresses
        ]
        try:
            yield clients
        finally:
            for client in clients:
                await client.aclose()


async def log_in(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD, *, forwarded_for: str = ""
) -> httpx.Response:
    headers = {"Origin": SITE, **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
    return await client.post("/login", data={"email": email, "password": password}, headers=headers)


async def failed_guesses(
    client: httpx.AsyncClient, count: int, forwarded_for: Callable[[int], str] = lambda n: ""
) -> list[int]:
    """Statuses of ``count`` wrong logins, each to another account: only per-address counts add up."""
    return [
        (await log_in(client, f"guess-{n}@example.test", "wrong", forwarded_for=forwarded_for(n))).status_code
        for n in range(count)
    ]


async def submit(client: httpx.AsyncClient, user: User, order_ids: list[str]) -> httpx.Response:
    return await client.post("/api/batch-jobs", json={"order_ids": order_ids}, headers=user.headers)


async def job_count(database: Database, organization: Organization) -> int:
    async with database.connection() as connection:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM batch_job_queue WHERE organization_id = $1", organization.id
        )
    return count


async def test_job_creation_over_the_per_minute_limit_is_refused_and_writes_nothing(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, JOB_CREATE_PER_MINUTE="2")
    organization = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 4)]
    async with api_client(settings) as client:
        accepted = [await submit(client, organization.member, [order_id]) for order_id in order_ids[:2]]
        refused = await submit(client, organization.member, [order_ids[2]])
        colleague = await submit(client, organization.admin, [order_ids[3]])
    assert [response.status_code for response in accepted] == [202, 202]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert colleague.status_code == 202, "the limit is per user"
    assert await job_count(database, organization) == 3


async def test_refused_job_requests_do_not_use_up_the_job_quota(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, JOB_CREATE_PER_MINUTE="3", MAX_ACTIVE_JOBS_PER_ORG="2")
    organization = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 4)]
    member = organization.member
    refusals = [
        ("POST", "/api/batch-jobs", b'{"order_ids": ['),
        ("POST", "/api/batch-jobs", b'{"order_ids": []}'),
        ("POST", "/api/batch-jobs", b'{"order_ids": ["not-a-uuid"]}'),
        ("POST", "/api/batch-jobs", b'{"filter": {"status": "draft"}}'),  # matches nothing
        ("POST", f"/api/batch-jobs/{uuid4()}/retry", b""),
    ]
    async with api_client(settings) as client:
        refused = [
            (await client.request(method, path, content=body, headers=member.headers)).status_code
            for _ in range(6)
            for method, path, body in refusals
        ]
        first = await submit(client, member, [order_ids[0]])
        not_finished = await client.post(
            f"/api/batch-jobs/{first.json()['id']}/retry", headers=member.headers
        )
        second = await submit(client, member, [order_ids[1]])
        over_the_cap = await submit(client, member, [order_ids[2]])
        await client.post(f"/api/batch-jobs/{first.json()['id']}/cancel", headers=member.headers)
        third = await submit(client, member, [order_ids[2]])
        over_the_quota = await submit(client, member, [order_ids[3]])
    assert len(refused) == 30
    assert sorted(set(refused)) == [400, 404]
    assert not_finished.json()["error"]["code"] == "job_not_finished"
    assert over_the_cap.json()["error"]["code"] == "too_many_active_jobs"
    assert [first.status_code, second.status_code, third.status_code] == [202, 202, 202], (
        "32 refused requests and 3 jobs: only the jobs count"
    )
    assert over_the_quota.status_code == 429
    assert over_the_quota.json()["error"]["code"] == "rate_limited"
    assert await job_count(database, organization) == 3


async def test_parallel_submits_never_create_more_jobs_than_the_quota(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(
        database_url, redis_url, JOB_CREATE_PER_MINUTE="3", MAX_ACTIVE_JOBS_PER_ORG="100"
    )
    organization = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 8)]
    async with api_client(settings) as client:
        responses = await asyncio.gather(
            *(submit(client, organization.member, [order_id]) for order_id in order_ids)
        )
    answers = sorted((r.status_code, r.json().get("error", {}).get("code", "")) for r in responses)
    assert answers == [(202, "")] * 3 + [(429, "rate_limited")] * 5
    assert await job_count(database, organization) == 3


async def test_a_flood_of_refused_job_requests_is_answered_429(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(
        database_url, redis_url, BAD_REQUESTS_PER_MINUTE="3", JOB_CREATE_PER_MINUTE="100"
    )
    organization = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 2)]
    member = organization.member
    async with api_client(settings) as client:
        malformed = [
            await client.post("/api/batch-jobs", content=b"{", headers=member.headers) for _ in range(4)
        ]
        valid_meanwhile = await submit(client, member, [order_ids[0]])
        colleague = await submit(client, organization.admin, [order_ids[1]])
    assert [response.status_code for response in malformed] == [400, 400, 400, 429]
    assert malformed[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(malformed[-1].headers["retry-after"]) <= 60
    assert valid_meanwhile.status_code == 429, "over the limit, the user waits whatever they send"
    assert colleague.status_code == 202, "the limit is per user"
    assert await job_count(database, organization) == 1


async def test_active_jobs_per_organization_are_capped(
    database_url: str, redis_url: str, database: Database
) -> None:
    # No worker runs, so the jobs stay pending.
    settings = make_settings(database_url, redis_url, MAX_ACTIVE_JOBS_PER_ORG="2")
    organization = await create_organization(database)
    other = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 4)]
    other_order_id = str((await create_orders(database, other, 1))[0])
    async with api_client(settings) as client:
        first = await submit(client, organization.member, [order_ids[0]])
        second = await submit(client, organization.admin, [order_ids[1]])
        refused = await submit(client, organization.member, [order_ids[2]])
        elsewhere = await submit(client, other.member, [other_order_id])
        cancelled = await client.post(
            f"/api/batch-jobs/{first.json()['id']}/cancel", headers=organization.member.headers
        )
        after_cancel = await submit(client, organization.member, [order_ids[3]])
    assert (first.status_code, second.status_code) == (202, 202)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_active_jobs"
    assert int(refused.headers["retry-after"]) > 0
    assert elsewhere.status_code == 202, "the cap is per organization"
    assert cancelled.status_code == 200
    assert after_cancel.status_code == 202, "a finished job frees its place"
    assert await job_count(database, organization) == 3


async def test_parallel_submits_never_exceed_the_active_jobs_cap(
    database_url: str, redis_url: str, database: Database
) -> None:
    # No worker runs, so accepted jobs stay pending; the per-minute limit is out of the way.
    settings = make_settings(
        database_url, redis_url, MAX_ACTIVE_JOBS_PER_ORG="3", JOB_CREATE_PER_MINUTE="100"
    )
    organization = await create_organization(database)
    order_ids = [str(i) for i in await create_orders(database, organization, 8)]
    async with api_client(settings) as client:
        responses = await asyncio.gather(
            *(submit(client, organization.member, [order_id]) for order_id in order_ids)
        )
    answers = sorted((r.status_code, r.json().get("error", {}).get("code", "")) for r in responses)
    assert answers == [(202, "")] * 3 + [(429, "too_many_active_jobs")] * 5
    assert await job_count(database, organization) == 3


async def test_failed_logins_are_throttled_per_account(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="3")
    organization = await create_organization(database, with_passwords=True)
    email = organization.member.email
    async with clients_at(settings, "192.0.2.1", "192.0.2.2", "192.0.2.3") as (first, second, third):
        failures = [await log_in(first, email, "wrong") for _ in range(3)]
        # Same account in other letter case, right password, from another address.
        throttled = await log_in(second, f"  {email.upper()} ")
        unknown = [await log_in(third, "nobody@example.test", "wrong") for _ in range(4)]
    assert [response.status_code for response in failures] == [401, 401, 401]
    assert throttled.status_code == 429
    assert THROTTLED in throttled.text
    assert throttled.headers["retry-after"] == "1", "slowed, not locked"
    assert "set-cookie" not in throttled.headers
    # An unknown email is throttled just the same: the answers do not reveal accounts.
    assert [response.status_code for response in unknown] == [401, 401, 401, 429]
    assert THROTTLED in unknown[-1].text


async def test_failed_logins_are_throttled_per_address(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="3")
    organization = await create_organization(database, with_passwords=True)
    async with clients_at(settings, "192.0.2.1", "192.0.2.2") as (attacker, elsewhere):
        failures = await failed_guesses(attacker, 3)
        from_attacker = await log_in(attacker, organization.member.email)
        from_elsewhere = await log_in(elsewhere, organization.member.email)
    assert failures == [401, 401, 401]
    assert from_attacker.status_code == 429
    assert THROTTLED in from_attacker.text
    assert from_elsewhere.status_code == 303


async def test_a_forged_forwarded_for_does_not_escape_the_per_address_limit(
    database_url: str, redis_url: str, database: Database
) -> None:
    # No TRUSTED_PROXIES: the header is the client's own word and is ignored.
    settings = make_settings(database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="3")
    organization = await create_organization(database, with_passwords=True)
    async with clients_at(settings, "192.0.2.1") as (attacker,):
        failures = await failed_guesses(attacker, 3, forwarded_for=lambda n: f"198.51.100.{n}")
        rotated = await log_in(attacker, organization.member.email, forwarded_for="198.51.100.99")
    assert failures == [401, 401, 401]
    assert rotated.status_code == 429
    assert THROTTLED in rotated.text


async def test_clients_behind_a_trusted_proxy_have_their_own_per_address_limits(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(
        database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="3", TRUSTED_PROXIES="192.0.2.0/28"
    )
    organization = await create_organization(database, with_passwords=True)
    async with clients_at(settings, "192.0.2.1") as (proxy,):
        # What the attacker forges on the left is skipped: the proxy appended the real address.
        failures = await failed_guesses(proxy, 3, forwarded_for=lambda n: f"10.9.9.{n}, 198.51.100.7")
        from_attacker = await log_in(proxy, organization.member.email, forwarded_for="198.51.100.7")
        from_elsewhere = await log_in(proxy, organization.member.email, forwarded_for="198.51.100.8")
    assert failures == [401, 401, 401]
    assert from_attacker.status_code == 429
    assert from_elsewhere.status_code == 303, "another client behind the same proxy is not blocked"


async def test_a_good_login_is_neither_blocked_by_others_nor_counted(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="2")
    organization = await create_organization(database, with_passwords=True)
    async with clients_at(settings, "192.0.2.1", "192.0.2.2") as (attacker, user):
        for _ in range(3):
            await log_in(attacker, organization.admin.email, "wrong")
        logins = [await log_in(user, organization.member.email) for _ in range(4)]
        one_failure = await log_in(user, organization.member.email, "typo")
        after = await log_in(user, organization.member.email)
    assert [response.status_code for response in logins] == [303, 303, 303, 303]
    assert one_failure.status_code == 401
    assert after.status_code == 303, "successes before the typo did not count"


async def test_limits_fail_open_when_redis_is_down(
    database_url: str, database: Database, private_redis: RedisServer
) -> None:
    settings = make_settings(
        database_url, private_redis.url, JOB_CREATE_PER_MINUTE="1", LOGIN_FAILURES_PER_15_MIN="1"
    )
    organization = await create_organization(database, with_passwords=True)
    order_ids = [str(i) for i in await create_orders(database, organization, 2)]
    private_redis.stop()
    async with api_client(settings) as client:
        jobs = [await submit(client, organization.member, [order_id]) for order_id in order_ids]
        wrong = await log_in(client, organization.member.email, "wrong")
        right = await log_in(client, organization.member.email)
    assert [response.status_code for response in jobs] == [202, 202]
    assert await job_count(database, organization) == 2, "PostgreSQL has the jobs; the sweep enqueues them"
    assert (wrong.status_code, right.status_code) == (401, 303)
