"""Limits on the WebSocket edge: open sockets per user and per organization, shared by every
server process (a refused socket is told `too_many_sockets` and closed 4429), and client
messages per socket (`rate_limited`, then a 4429 close, and nothing of the message done).

Real servers, real Redis and PostgreSQL; small limits so that reaching them is quick.
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from typing import Any

from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from server.ws import RECHECK_SECONDS
from tests.conftest import make_settings
from tests.support.factories import Organization, User, create_orders, create_organization
from tests.support.live_server import LiveServer, live_server
from tests.support.services import RedisServer
from tests.support.sockets import messages_until_closed, receive, submit
from tests.support.waiting import eventually

TOO_MANY_REQUESTS = 4429


async def open_socket(stack: AsyncExitStack, server: LiveServer, user: User) -> ClientConnection:
    """An organization socket of ``user``, kept open until ``stack`` closes; it got its snapshot."""
    url = f"{server.ws}/ws/batch-jobs"
    socket = await stack.enter_async_context(connect(url, additional_headers=user.headers))
    assert (await receive(socket))["type"] == "snapshot"
    return socket


async def answer(server: LiveServer, user: User) -> tuple[list[str], int | None]:
    """What a new socket of ``user`` hears until it is closed (or until its snapshot)."""
    async with connect(f"{server.ws}/ws/batch-jobs", additional_headers=user.headers) as socket:
        first = await receive(socket)
        if first["type"] == "snapshot":
            return ["snapshot"], None
        rest = await messages_until_closed(socket)
        codes = [message["error"]["code"] for message in [first, *rest] if message["type"] == "error"]
        return codes, socket.close_code


async def test_a_users_socket_past_the_cap_is_refused_on_any_server_while_a_colleague_connects(
    database_url: str, redis_url: str, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, WS_MAX_SOCKETS_PER_USER="3")
    member = organization.member
    async with live_server(settings) as first, live_server(settings) as second, AsyncExitStack() as stack:
        await open_socket(stack, first, member)
        await open_socket(stack, first, member)
        await open_socket(stack, second, member)
        refused = await answer(second, member)
        refused_on_the_other = await answer(first, member)
        colleague = await answer(first, organization.admin)
    assert refused == (["too_many_sockets"], TOO_MANY_REQUESTS)
    assert refused_on_the_other == (["too_many_sockets"], TOO_MANY_REQUESTS)
    assert colleague == (["snapshot"], None), "the cap is per user"


async def test_closing_a_socket_frees_its_slot(
    database_url: str, redis_url: str, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, WS_MAX_SOCKETS_PER_USER="2")
    member = organization.member
    async with live_server(settings) as server, AsyncExitStack() as stack:
        await open_socket(stack, server, member)
        async with AsyncExitStack() as closed_soon:
            await open_socket(closed_soon, server, member)
            assert (await answer(server, member))[1] == TOO_MANY_REQUESTS

        async def admitted() -> bool:
            return (await answer(server, member))[0] == ["snapshot"]

        await eventually(admitted, timeout=10, what="a socket admitted once another one closed")


async def test_the_organizations_cap_counts_every_user_of_it_and_no_other_organization(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, WS_MAX_SOCKETS_PER_USER="5", WS_MAX_SOCKETS_PER_ORG="3")
    organization = await create_organization(database)
    other = await create_organization(database)
    async with live_server(settings) as server, AsyncExitStack() as stack:
        await open_socket(stack, server, organization.member)
        await open_socket(stack, server, organization.member)
        await open_socket(stack, server, organization.admin)
        admin_refused = await answer(server, organization.admin)
        other_organization = await answer(server, other.member)
    assert admin_refused == (["too_many_sockets"], TOO_MANY_REQUESTS)
    assert other_organization == (["snapshot"], None)


async def test_slots_left_by_a_dead_server_process_lapse(
    database_url: str, redis_url: str, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, WS_MAX_SOCKETS_PER_USER="2")
    member = organization.member
    user_sockets = keys.sockets_of_user(settings.redis_prefix, member.id)
    redis = Redis.from_url(redis_url)
    try:
        seconds, microseconds = await redis.time()
        lapsed = seconds * 1000 + microseconds // 1000 - 1
        # What a killed process leaves: slots it will never renew nor release, their lease over.
        await redis.zadd(user_sockets, {"dead-process-1": lapsed, "dead-process-2": lapsed})
        async with live_server(settings) as server:
            admitted = await answer(server, member)
        left = await redis.zrange(user_sockets, 0, -1)
    finally:
        await redis.aclose()
    assert admitted == (["snapshot"], None)
    assert left == [], "lapsed slots are dropped, and the closed socket gave its own back"


async def test_an_open_socket_renews_its_slot(
    database_url: str, redis_url: str, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url)
    user_sockets = keys.sockets_of_user(settings.redis_prefix, organization.member.id)
    redis = Redis.from_url(redis_url)
    try:
        async with live_server(settings) as server, AsyncExitStack() as stack:
            await open_socket(stack, server, organization.member)
            ((slot, lapses_at),) = await redis.zrange(user_sockets, 0, -1, withscores=True)

            async def renewed() -> bool:
                return (await redis.zscore(user_sockets, slot) or 0) > lapses_at

            await eventually(renewed, timeout=RECHECK_SECONDS + 5, what="the slot's lease pushed out")
    finally:
        await redis.aclose()


async def test_a_burst_of_cancels_past_the_rate_is_refused_closed_and_not_acted_on(
    database_url: str, redis_url: str, database: Database
) -> None:
    rate, burst = 0.1, 3
    settings = make_settings(
        database_url, redis_url, WS_MESSAGES_PER_SECOND=str(rate), WS_MESSAGE_BURST=str(burst)
    )
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 8)
    async with live_server(settings) as server:
        # No worker: every job stays pending until a cancel reaches it.
        jobs = [(await submit(server, organization, [order_id]))["id"] for order_id in order_ids]
        async with AsyncExitStack() as stack:
            socket = await open_socket(stack, server, organization.admin)
            started = time.monotonic()
            for job_id in jobs:
                await socket.send(json.dumps({"type": "cancel", "job_id": job_id}))
            messages = await messages_until_closed(socket)
            took = time.monotonic() - started
            close_code = socket.close_code
    assert close_code == TOO_MANY_REQUESTS
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["code"] == "rate_limited"
    statuses = await job_statuses(database, jobs)
    allowed = burst + int(rate * took)
    assert burst <= statuses.count("cancelled") <= allowed, statuses
    assert statuses[statuses.count("cancelled") :] == ["pending"] * (len(jobs) - statuses.count("cancelled"))


async def test_malformed_messages_count_against_the_rate_too(
    database_url: str, redis_url: str, organization: Organization
) -> None:
    settings = make_settings(database_url, redis_url, WS_MESSAGES_PER_SECOND="0.1", WS_MESSAGE_BURST="3")
    async with live_server(settings) as server, AsyncExitStack() as stack:
        socket = await open_socket(stack, server, organization.member)
        for _ in range(6):
            await socket.send("not json")
        messages = await messages_until_closed(socket)
        close_code = socket.close_code
    assert [message["error"]["code"] for message in messages] == [*["invalid_message"] * 3, "rate_limited"]
    assert close_code == TOO_MANY_REQUESTS


async def test_with_redis_down_sockets_are_admitted_uncounted(
    database_url: str, organization: Organization, private_redis: RedisServer
) -> None:
    settings = make_settings(database_url, private_redis.url, WS_MAX_SOCKETS_PER_USER="1")
    private_redis.stop()
    async with live_server(settings) as server, AsyncExitStack() as stack:
        await open_socket(stack, server, organization.member)
        past_the_cap = await answer(server, organization.member)
    assert past_the_cap == (["snapshot"], None), "the limit fails open: PostgreSQL can still be watched"


async def job_statuses(database: Database, job_ids: list[Any]) -> list[str]:
    """The jobs' statuses, in the order given."""
    async with database.unscoped() as connection:
        rows = await connection.fetch(
            "SELECT id::text, status FROM batch_job_queue WHERE id = ANY($1::uuid[])", job_ids
        )
    status = {row["id"]: row["status"] for row in rows}
    return [status[job_id] for job_id in job_ids]
