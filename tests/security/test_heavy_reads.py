"""One member's expensive reads cannot take the server's pool from another organization.

The penetration test sent 200 × ``GET /api/sales-orders?limit=500&include_total=true``, 40 at a
time, from one member: another organization's one-job poll went from ~4 ms to seconds, as
every pooled connection ran a count and a page of 500. Heavy reads now take turns per
organization (``invoicing/infra/read_gate.py``: a quarter of the pool), waiting without a
connection; light requests of everyone else find a free one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.factories import create_orders, create_organization
from tests.support.server_process import running_server

HEAVY_READ = "/api/sales-orders?limit=500&include_total=true&status=confirmed"
PARALLEL_HEAVY_READS = 16


async def test_a_flood_of_one_members_heavy_reads_leaves_another_organizations_requests_served(
    settings: Settings, database: Database, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    flooding, other = await create_organization(database), await create_organization(database)
    await create_orders(database, flooding, 3000)
    await create_orders(database, other, 5)
    # A pool of 8: heavy reads of one organization may hold 2 connections at once.
    small_pool = make_settings(database_url, redis_url, DB_POOL_SIZE="8", DB_READ_TIMEOUT_SECONDS="60")
    running_heavy = 0
    most_heavy_at_once = 0

    async def heavy_read(client: httpx.AsyncClient) -> int:
        response = await client.get(HEAVY_READ, headers=flooding.member.headers)
        return response.status_code

    async def busy_heavy_reads() -> int:
        async with database.connection() as connection:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%sales_orders%'"
                " AND query NOT LIKE '%pg_stat_activity%' AND datname = current_database()"
            )
        return count

    with running_server(small_pool, tmp_path / "server.log", log_level="WARNING") as server:
        async with httpx.AsyncClient(base_url=server.server.http, timeout=120) as client:
            flood = [asyncio.create_task(heavy_read(client)) for _ in range(PARALLEL_HEAVY_READS)]
            served_while_flooded = 0
            while not all(task.done() for task in flood):
                response = await client.get("/api/batch-jobs?limit=1", headers=other.member.headers)
                assert response.status_code == 200
                if not all(task.done() for task in flood):
                    served_while_flooded += 1
                running_heavy = await busy_heavy_reads()
                most_heavy_at_once = max(most_heavy_at_once, running_heavy)
            statuses = await asyncio.gather(*flood)
    assert statuses == [200] * PARALLEL_HEAVY_READS, "heavy reads wait their turn; none is refused"
    assert served_while_flooded >= 3, "the other organization was served while the flood ran"
    assert most_heavy_at_once <= 2, f"{most_heavy_at_once} heavy reads of one organization ran at once"
