"""What each ``invoicing`` command does, given its settings."""

from __future__ import annotations

import asyncio

from invoicing.queue import JobQueue, connect_redis
from invoicing.settings import Settings
from invoicing.storage.database import Database
from invoicing.storage.migrations import migrate
from invoicing.storage.seed import SeedResult, seed
from invoicing.sweep import sweep


def serve(settings: Settings, *, host: str, port: int) -> int:
    import uvicorn

    from server.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        # Progress events are small; per-socket deflate state would cost more memory and CPU
        # (tens of KB and a compression per message per socket) than the bytes it saves.
        ws_per_message_deflate=False,
        # Server-side keepalive: a half-open socket is dropped after a missed pong.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
    )
    return 0


def work(settings: Settings, *, burst: bool) -> int:
    from worker.main import run_worker

    asyncio.run(run_worker(settings, burst=burst))
    return 0


async def migrate_database(settings: Settings) -> list[int]:
    async with Database(settings.require_database(), pool_size=2) as database:
        return await migrate(database)


async def seed_database(
    settings: Settings, organizations: int, orders: int, invalid_ratio: float
) -> SeedResult:
    await migrate_database(settings)
    async with Database(settings.require_database(), pool_size=2) as database:
        return await seed(database, organizations=organizations, orders=orders, invalid_ratio=invalid_ratio)


async def process_pending(settings: Settings) -> dict[str, int]:
    database_url, redis_url = settings.require_services()
    queue = JobQueue(connect_redis(redis_url), settings)
    try:
        async with Database(database_url, pool_size=2) as database:
            return (await sweep(database, queue, settings)).to_json()
    finally:
        await queue.close()
