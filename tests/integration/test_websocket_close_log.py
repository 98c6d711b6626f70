"""A WebSocket that ends normally leaves nothing above DEBUG in the server's log.

The server runs as `invoicing server` (its own process, uvicorn's own logging), so the test
reads exactly what an operator would see on its stderr.
"""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.factories import Organization, create_orders
from tests.support.server_process import ServerProcess
from tests.support.sockets import job_socket, messages_until_closed, receive, submit
from tests.support.workers import drain_queue

pytestmark = pytest.mark.slow


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
