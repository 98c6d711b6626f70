"""When PostgreSQL or Redis is down, restarting or hanging, the HTTP edge says so: never a 500.

PostgreSQL is a server of each test's own (``private_postgres``), stopped and started for
real; Redis likewise (``private_redis``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from invoicing.infra.database import Database
from tests.conftest import make_settings
from tests.support.app import api_client, error_of
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.live_server import live_server
from tests.support.postgres import PrivateDatabase
from tests.support.services import RedisServer
from tests.support.sockets import job_socket, receive
from tests.support.waiting import eventually

SITE = "http://testserver"


async def organization_on(url: str) -> tuple[Organization, list[str]]:
    async with Database(url, pool_size=2) as database:
        organization = await create_organization(database, with_passwords=True)
        order_ids = [str(order_id) for order_id in await create_orders(database, organization, 3)]
    return organization, order_ids


def requests_needing_the_database(organization: Organization, order_ids: list[str]) -> list[dict[str, Any]]:
    """One request of each kind a client makes (API, token, admin, the login form)."""
    job_id, token_id = str(uuid4()), str(uuid4())
    return [
        {"method": "GET", "url": "/api/me"},
        {"method": "GET", "url": "/api/sales-orders"},
        {"method": "POST", "url": f"/api/sales-orders/{order_ids[0]}/invoice"},
        {"method": "POST", "url": "/api/batch-jobs", "json": {"order_ids": order_ids}},
        {"method": "POST", "url": "/api/batch-jobs", "json": {"filter": {"status": "confirmed"}}},
        {"method": "GET", "url": "/api/batch-jobs"},
        {"method": "GET", "url": f"/api/batch-jobs/{job_id}"},
        {"method": "GET", "url": f"/api/batch-jobs/{job_id}/items"},
        {"method": "POST", "url": f"/api/batch-jobs/{job_id}/cancel"},
        {"method": "POST", "url": f"/api/batch-jobs/{job_id}/retry"},
        {"method": "GET", "url": "/api/invoices"},
        {"method": "GET", "url": "/api/tokens"},
        {"method": "POST", "url": "/api/tokens", "json": {"name": "ci"}},
        {"method": "POST", "url": f"/api/tokens/{token_id}/revoke"},
        {"method": "GET", "url": "/api/admin/stats"},
        {"method": "POST", "url": "/api/admin/process-pending"},
        {
            "method": "POST",
            "url": "/login",
            "data": {"email": organization.admin.email, "password": "wrong"},
            "headers": {"Origin": SITE},
        },
    ]


async def answers(client: httpx.AsyncClient, organization: Organization, request: dict[str, Any]) -> Any:
    headers = {**organization.admin.headers, **request.get("headers", {})}
    return await client.request(**{**request, "headers": headers})


async def test_while_postgresql_is_down_every_request_answers_503_with_retry_after_then_works_again(
    private_postgres: PrivateDatabase, redis_url: str
) -> None:
    # One job a minute: a submit refused by the outage must not use it up.
    settings = make_settings(private_postgres.url, redis_url, JOB_CREATE_PER_MINUTE="1")
    organization, order_ids = await organization_on(private_postgres.url)
    async with api_client(settings) as client:
        assert (await client.get("/api/batch-jobs", headers=organization.admin.headers)).status_code == 200
        await asyncio.to_thread(private_postgres.server.stop)
        for request in requests_needing_the_database(organization, order_ids):
            response = await answers(client, organization, request)
            assert error_of(response) == (503, "service_unavailable"), request
            assert int(response.headers["Retry-After"]) > 0, request
        await asyncio.to_thread(private_postgres.server.start)

        async def listed() -> bool:
            response = await client.get("/api/batch-jobs", headers=organization.admin.headers)
            return response.status_code == 200

        await eventually(listed, timeout=10, what="requests to succeed once PostgreSQL is back")
        submitted = await client.post(
            "/api/batch-jobs", json={"order_ids": order_ids}, headers=organization.admin.headers
        )
    assert submitted.status_code == 202, submitted.text


async def test_a_request_cut_off_by_a_postgresql_restart_answers_503(
    private_postgres: PrivateDatabase, redis_url: str
) -> None:
    # No lock timeout: the cancel waits on the job's row lock until the restart cuts it off.
    settings = make_settings(private_postgres.url, redis_url, DB_LOCK_TIMEOUT_SECONDS="0")
    organization, order_ids = await organization_on(private_postgres.url)
    async with api_client(settings) as client:
        submitted = await client.post(
            "/api/batch-jobs", json={"order_ids": order_ids}, headers=organization.admin.headers
        )
        cancel = f"/api/batch-jobs/{submitted.json()['id']}/cancel"
        holder = await asyncpg.connect(private_postgres.url)
        holding = holder.transaction()
        await holding.start()
        await holder.execute(
            "SELECT 1 FROM batch_job_queue WHERE id = $1 FOR UPDATE", UUID(submitted.json()["id"])
        )
        cancelling = asyncio.create_task(client.post(cancel, headers=organization.admin.headers))

        async def request_waits_on_the_lock() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            return bool(waiting)

        await eventually(request_waits_on_the_lock, what="the request to wait for the job's lock")
        await asyncio.to_thread(private_postgres.server.restart)
        cut_off = await cancelling
        retried = await client.post(cancel, headers=organization.admin.headers)
    await holder.close()  # already closed by the restart; harmless
    assert error_of(cut_off) == (503, "service_unavailable")
    assert "Retry-After" in cut_off.headers
    assert retried.status_code == 200, "the restart rolled the first attempt back"
    assert retried.json()["status"] == "cancelled"


async def readiness(client: httpx.AsyncClient) -> tuple[int, Any, float]:
    started = time.monotonic()
    response = await client.get("/readyz")
    return response.status_code, response.json(), time.monotonic() - started


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_readyz_says_quickly_that_postgresql_is_down(
    private_postgres: PrivateDatabase, redis_url: str, outage: str
) -> None:
    settings = make_settings(private_postgres.url, redis_url)
    async with api_client(settings) as client:
        assert (await readiness(client))[:2] == (200, {"status": "ok", "database": True, "redis": True})
        server = private_postgres.server
        await asyncio.to_thread(server.stop if outage == "stopped" else server.freeze)
        try:
            status, body, took = await readiness(client)
        finally:
            await asyncio.to_thread(server.start if outage == "stopped" else server.thaw)
        assert (await readiness(client))[0] == 200
    assert (status, body) == (503, {"status": "unavailable", "database": False, "redis": True})
    assert took < 3, f"/readyz took {took:.1f} s"


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_readyz_says_quickly_that_redis_is_down(
    database_url: str, private_redis: RedisServer, outage: str
) -> None:
    settings = make_settings(database_url, private_redis.url)
    async with api_client(settings) as client:
        assert (await readiness(client))[0] == 200
        await asyncio.to_thread(private_redis.stop if outage == "stopped" else private_redis.freeze)
        try:
            status, body, took = await readiness(client)
        finally:
            await asyncio.to_thread(private_redis.start if outage == "stopped" else private_redis.thaw)
    assert (status, body) == (503, {"status": "unavailable", "database": True, "redis": False})
    assert took < 3, f"/readyz took {took:.1f} s"


async def test_with_redis_down_requests_still_succeed_and_none_answers_500(
    database_url: str, database: Database, private_redis: RedisServer
) -> None:
    settings = make_settings(database_url, private_redis.url)
    organization = await create_organization(database, with_passwords=True)
    order_ids = [str(order_id) for order_id in await create_orders(database, organization, 3)]
    private_redis.stop()
    async with api_client(settings) as client:
        statuses = {
            request["method"] + " " + request["url"]: (
                await answers(client, organization, request)
            ).status_code
            for request in requests_needing_the_database(organization, order_ids)
        }
        # Orders no job of the requests above holds.
        more_ids = [str(order_id) for order_id in await create_orders(database, organization, 2)]
        submitted = await client.post(
            "/api/batch-jobs", json={"order_ids": more_ids}, headers=organization.admin.headers
        )
        job_id = submitted.json()["id"]
        job = await client.get(f"/api/batch-jobs/{job_id}", headers=organization.admin.headers)
        cancelled = await client.post(f"/api/batch-jobs/{job_id}/cancel", headers=organization.admin.headers)
        retried = await client.post(f"/api/batch-jobs/{job_id}/retry", headers=organization.admin.headers)
        ready = await client.get("/readyz")
    assert not [request for request, status in statuses.items() if status >= 500], statuses
    assert statuses[f"POST /api/sales-orders/{order_ids[0]}/invoice"] == 201
    assert (submitted.status_code, job.status_code, cancelled.status_code) == (202, 200, 200)
    assert retried.status_code == 202, retried.text
    assert ready.json() == {"status": "unavailable", "database": True, "redis": False}


async def test_a_websocket_handshake_while_postgresql_is_down_is_answered_503_then_works_again(
    private_postgres: PrivateDatabase, redis_url: str
) -> None:
    settings = make_settings(private_postgres.url, redis_url)
    organization, order_ids = await organization_on(private_postgres.url)
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http, headers=organization.admin.headers) as client:
            job = (await client.post("/api/batch-jobs", json={"order_ids": order_ids})).json()
        await asyncio.to_thread(private_postgres.server.stop)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.ws}/ws/batch-jobs", additional_headers=organization.admin.headers):
                pass
        await asyncio.to_thread(private_postgres.server.start)
        async with job_socket(server, organization, job["id"]) as socket:
            snapshot = await receive(socket)
    answer = refused.value.response
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert json.loads(answer.body)["error"]["code"] == "service_unavailable"
    assert snapshot["type"] == "snapshot"


async def test_an_open_websocket_answers_an_error_during_an_outage_and_stays_usable(
    private_postgres: PrivateDatabase, redis_url: str
) -> None:
    settings = make_settings(private_postgres.url, redis_url)
    organization, order_ids = await organization_on(private_postgres.url)
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http, headers=organization.admin.headers) as client:
            job = (await client.post("/api/batch-jobs", json={"order_ids": order_ids})).json()
        async with job_socket(server, organization, job["id"]) as socket:
            assert (await receive(socket))["type"] == "snapshot"
            await asyncio.to_thread(private_postgres.server.stop)
            await socket.send('{"type": "cancel"}')
            during = await receive(socket)
            await asyncio.to_thread(private_postgres.server.start)
            await socket.send('{"type": "cancel"}')
            after = await receive(socket)
    assert during["type"] == "error"
    assert during["error"]["code"] == "service_unavailable"
    assert (after["type"], after["job"]["status"]) == ("finished", "cancelled")
