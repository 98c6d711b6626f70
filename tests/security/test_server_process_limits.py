"""What uvicorn itself accepts, on `invoicing server` as an operator starts it (issue 12).

* A WebSocket frame over ``MAX_CLIENT_FRAME_BYTES`` closes the socket (1009) without being
  buffered: the server's memory does not grow with it.
* JSON nested too deep on a socket answers ``invalid_message`` and the socket stays usable.
* Without ``TRUSTED_PROXIES``, ``X-Forwarded-For`` from a loopback peer is not believed: the
  failed login counts under 127.0.0.1.
* A client that hangs up in the middle of its body leaves no ERROR and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from invoicing.infra import redis_keys as keys
from invoicing.infra.queue import JobQueue
from invoicing.kernel.settings import Settings
from tests.support.factories import Organization
from tests.support.server_process import ServerProcess, running_server
from tests.support.sockets import receive
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def organization_socket(server_process: ServerProcess, organization: Organization) -> connect:
    url = f"{server_process.server.ws}/ws/batch-jobs"
    return connect(url, additional_headers=organization.admin.headers, max_size=None)


async def close_code_after_sending(
    server_process: ServerProcess, organization: Organization, text: str
) -> int:
    async with organization_socket(server_process, organization) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        try:
            await ws.send(text)
            await asyncio.wait_for(ws.recv(), timeout=10)
        except ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), timeout=10)
        assert ws.close_code is not None
        return ws.close_code


async def test_an_oversized_frame_closes_the_socket_without_being_buffered(
    server_process: ServerProcess, organization: Organization
) -> None:
    server = psutil.Process(server_process.process.pid)
    # Warm up: the first sockets allocate what every later one reuses.
    for _ in range(2):
        await close_code_after_sending(server_process, organization, "x" * MiB)
    before = server.memory_info().rss
    codes = await asyncio.gather(
        *(close_code_after_sending(server_process, organization, "x" * MiB) for _ in range(10))
    )
    grown = server.memory_info().rss - before
    assert set(codes) == {1009}, codes  # message too big
    assert grown < 5 * MiB, f"the server grew by {grown / MiB:.1f} MiB for 10 frames of 1 MiB"

    # A normal message is still answered, on a socket that stays open.
    async with organization_socket(server_process, organization) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        await ws.send(json.dumps({"type": "hello", "padding": "é" * 4000}, ensure_ascii=False))
        assert (await receive(ws))["error"]["code"] == "unknown_message"
    output = server_process.stop()
    assert "Traceback" not in output, output


@pytest.mark.parametrize("depth", [1000, 2000])
async def test_json_nested_too_deep_on_a_socket_is_an_invalid_message(
    server_process: ServerProcess, organization: Organization, depth: int
) -> None:
    nested = "[" * depth + "]" * depth  # within the 4096 characters a message may have
    async with organization_socket(server_process, organization) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        await ws.send(nested)
        error = (await receive(ws))["error"]
        assert error["code"] == "invalid_message"
        # The socket is still there.
        await ws.send(json.dumps({"type": "cancel", "job_id": "not-a-job"}))
        assert (await receive(ws))["error"]["code"] == "job_not_found"
    output = server_process.stop()
    assert "Traceback" not in output, output
    assert "ERROR" not in output, output


async def test_forwarded_for_from_loopback_is_not_believed_without_trusted_proxies(
    server_process: ServerProcess, settings: Settings, organization: Organization, queue: JobQueue
) -> None:
    assert not settings.trusted_proxies
    http = server_process.server.http
    async with httpx.AsyncClient(base_url=http) as client:
        response = await client.post(
            "/login",
            data={"email": organization.member.email, "password": "wrong password"},
            headers={"Origin": http, "X-Forwarded-For": "203.0.113.9"},
        )
    assert response.status_code == 401, response.text
    loopback = keys.login_failures_by_address(settings.redis_prefix, "127.0.0.1")
    forged = keys.login_failures_by_address(settings.redis_prefix, "203.0.113.9")
    assert await queue.redis.exists(loopback) == 1
    assert await queue.redis.exists(forged) == 0


def send_part_and_hang_up(host: str, request_head: str, part: bytes) -> None:
    address, port = host.split(":")
    with socket.create_connection((address, int(port)), timeout=10) as connection:
        connection.sendall(request_head.encode() + part)


HANG_UP_LINE = "client went away during the body"


async def test_a_client_hanging_up_mid_body_is_not_an_error(
    settings: Settings, organization: Organization, tmp_path: Path
) -> None:
    with running_server(settings, tmp_path / "server.log", log_level="DEBUG") as server_process:
        host = server_process.server.host
        token = organization.admin.headers["Authorization"]
        api = (
            f"POST /api/batch-jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        login = (
            f"POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
        )
        hang_ups = [(api, b'{"order_ids": ["'), (login, b"email=a%40b.c&pass")] * 3
        for done, (head, part) in enumerate(hang_ups, start=1):
            await asyncio.to_thread(send_part_and_hang_up, host, head, part)

            async def logged(expected: int = done) -> bool:
                return server_process.log.read_text(errors="replace").count(HANG_UP_LINE) >= expected

            # Each hang-up handled, its one DEBUG line written, before the next and the stop.
            await eventually(logged, timeout=30, what=f"hang-up {done} to be logged")
        output = server_process.stop()
    assert "ERROR" not in output, output
    assert "Traceback" not in output, output
