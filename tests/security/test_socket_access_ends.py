"""An open WebSocket keeps its organization's events only while its credential allows it:
a revoked token, a removed membership or an ended session closes it (4401, `session_ended`)
within a few seconds, and a cancel sent on it meanwhile is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from server.ws import RECHECK_SECONDS
from tests.support.factories import TEST_PASSWORD, create_orders, create_organization
from tests.support.live_server import live_server
from tests.support.sockets import receive, submit

#: The guard checks every RECHECK_SECONDS; the close must follow well within a few of them.
WITHIN = RECHECK_SECONDS * 3 + 5


async def messages_until_closed(socket: Any) -> tuple[list[dict[str, Any]], int | None]:
    received: list[dict[str, Any]] = []
    try:
        while True:
            received.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=WITHIN)))
    except ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None


async def test_a_revoked_tokens_socket_is_closed_and_hears_nothing_more(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    async with live_server(settings) as server:
        url = f"{server.ws}/ws/batch-jobs"
        async with connect(url, additional_headers=organization.member.headers) as socket:
            assert (await receive(socket))["type"] == "snapshot"
            async with database.unscoped() as connection:
                await connection.execute(
                    "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1", organization.member.id
                )
            messages, code = await messages_until_closed(socket)
    assert code == 4401
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["code"] == "session_ended"


async def test_a_socket_of_a_user_removed_from_the_organization_is_closed(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    async with (
        live_server(settings) as server,
        connect(f"{server.ws}/ws/batch-jobs", additional_headers=organization.member.headers) as socket,
    ):
        assert (await receive(socket))["type"] == "snapshot"
        async with database.unscoped() as connection:
            await connection.execute(
                "DELETE FROM memberships WHERE user_id = $1 AND organization_id = $2",
                organization.member.id,
                organization.id,
            )
        _, code = await messages_until_closed(socket)
    assert code == 4401


async def test_a_cancel_sent_after_the_token_was_revoked_is_refused(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 3)
    async with live_server(settings) as server:
        job = await submit(server, organization, order_ids)  # no worker: it stays pending
        url = f"{server.ws}/ws/batch-jobs/{job['id']}"
        async with connect(url, additional_headers=organization.admin.headers) as socket:
            assert (await receive(socket))["type"] == "snapshot"
            async with database.unscoped() as connection:
                await connection.execute(
                    "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1", organization.admin.id
                )
            await socket.send(json.dumps({"type": "cancel"}))
            messages, code = await messages_until_closed(socket)
        assert code == 4401
        assert [m["error"]["code"] for m in messages if m["type"] == "error"] == ["session_ended"]
    async with database.unscoped() as connection:
        status = await connection.fetchval(
            "SELECT status FROM batch_job_queue WHERE id = $1::uuid", job["id"]
        )
    assert status == "pending"


async def test_a_socket_whose_session_was_logged_out_is_closed(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http) as client:
        login = await client.post(
            "/login",
            data={"email": organization.member.email, "password": TEST_PASSWORD},
            headers={"Origin": server.http},
        )
        assert login.status_code in (302, 303), login.text
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        headers = {"Cookie": cookie, "Origin": server.http}
        async with connect(f"{server.ws}/ws/batch-jobs", additional_headers=headers) as socket:
            assert (await receive(socket))["type"] == "snapshot"
            await client.post("/logout", headers={"Origin": server.http})
            _, code = await messages_until_closed(socket)
    assert code == 4401
