"""Redis restarts while a job runs and a browser watches: the watcher still sees the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.factories import create_orders, create_organization
from tests.support.live_server import live_server
from tests.support.services import RedisServer
from tests.support.sockets import job_socket, messages_until_closed, receive, submit
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow


async def test_the_socket_gets_the_job_to_its_end_across_a_redis_restart(
    database_url: str, database: Database, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings: Settings = make_settings(database_url, private_redis.url, CHUNK_SIZE="10", LEASE_SECONDS="3")
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 2000)
    worker = WorkerProcess(settings, tmp_path)
    try:
        async with live_server(settings) as server:
            job = await submit(server, organization, order_ids)
            async with job_socket(server, organization, job["id"]) as socket:
                assert (await receive(socket))["type"] == "snapshot"
                while (event := await receive(socket))["processed_items"] == 0:
                    pass
                assert event["type"] == "progress", "the restart must happen mid-job"
                private_redis.restart()
                messages = await messages_until_closed(socket, timeout=60)
                assert socket.close_code == 1000
    finally:
        worker.stop()
    assert messages[-1]["type"] == "finished", worker.log()[-3000:]
    final = messages[-1]["job"]
    assert final["status"] == "completed"
    assert final["successful_items"] == 2000
    assert "snapshot" in [m["type"] for m in messages], "a fresh snapshot follows the reconnect"
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(DISTINCT sales_order_id) FROM invoices") == 2000
        assert await connection.fetchval("SELECT count(*) FROM invoices") == 2000
