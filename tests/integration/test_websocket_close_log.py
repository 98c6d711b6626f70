"""A WebSocket that ends normally leaves nothing above DEBUG in the server's log.

The server runs as `invoicing server` (its own process, uvicorn's own logging), so the test
reads exactly what an operator would see on its stderr.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from invoicing.embedded import free_port
from invoicing.settings import Settings
from invoicing.storage.database import Database
from tests.support.factories import Organization, create_orders
from tests.support.live_server import LiveServer
from tests.support.sockets import job_socket, messages_until_closed, receive, submit
from tests.support.workers import ROOT, drain_queue, environment_of

pytestmark = pytest.mark.slow


@dataclass
class ServerProcess:
    server: LiveServer
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> str:
        """SIGTERM, wait for the exit, and return everything the server wrote."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")


@pytest.fixture
def server_process(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "server", "--port", str(port)],
            env=environment_of(settings),
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = ServerProcess(LiveServer(f"127.0.0.1:{port}"), process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.05)
        yield running
    finally:
        running.stop()


async def test_normal_closes_from_either_side_log_no_error(
    server_process: ServerProcess, settings: Settings, database: Database, organization: Organization
) -> None:
    server = server_process.server

    # The job finishes while watched: the server sends `finished` and closes with 1000, and
    # the client, like the page does, closes as soon as it reads `finished`.
    running = await submit(server, organization, await create_orders(database, organization, 3))
    async with job_socket(server, organization, running["id"]) as socket:
        assert (await receive(socket))["type"] == "snapshot"
        await drain_queue(settings)
        while (await receive(socket))["type"] != "finished":
            pass
        await socket.close(1000)

    # A finished job: snapshot, finished, and the server closes at once.
    async with job_socket(server, organization, running["id"]) as socket:
        assert [m["type"] for m in await messages_until_closed(socket)] == ["snapshot", "finished"]
        assert socket.close_code == 1000

    # The client leaves first: a job that has not started, and the organization's socket on
    # a page being left (1001, going away).
    waiting = await submit(server, organization, await create_orders(database, organization, 1))
    async with job_socket(server, organization, waiting["id"]) as socket:
        assert (await receive(socket))["type"] == "snapshot"
        await socket.close(1000)
    url = f"{server.ws}/ws/batch-jobs"
    async with connect(url, additional_headers=organization.admin.headers) as socket:
        assert (await receive(socket))["type"] == "snapshot"
        await socket.close(1001)

    output = server_process.stop()
    assert output.count("[accepted]") == 4, output
    assert "ERROR" not in output, output
    assert "Traceback" not in output, output
