"""Orders are locked in id order whatever order a chunk lists them in (no deadlocks between jobs)."""

from __future__ import annotations

import asyncio

import asyncpg

from invoicing.infra.database import Database
from invoicing.invoices import store as invoices
from tests.support.factories import create_orders, create_organization
from tests.support.waiting import eventually


async def test_a_chunk_locks_its_orders_in_id_order_even_when_listed_backwards(
    database: Database, database_url: str
) -> None:
    organization = await create_organization(database)
    by_id = sorted(await create_orders(database, organization, 10))
    middle = by_id[5]
    holder, chunk, observer = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT 1 FROM sales_orders WHERE id = $1 FOR UPDATE", middle)
        chunking = chunk.transaction()
        await chunking.start()
        chunk_pid = chunk.get_server_pid()
        locking = asyncio.create_task(invoices.lock_orders_for_invoicing(chunk, organization.id, by_id[::-1]))

        async def chunk_waits_on_a_lock() -> bool:
            wait = await observer.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", chunk_pid
            )
            return bool(wait == "Lock")

        await eventually(chunk_waits_on_a_lock, what="the chunk to wait for the held order")
        async with observer.transaction():
            free = await observer.fetch(
                "SELECT id FROM sales_orders WHERE id = ANY($1) FOR UPDATE SKIP LOCKED", by_id
            )
        held_by_chunk = set(by_id) - {row["id"] for row in free} - {middle}
        assert held_by_chunk == set(by_id[:5]), "the lower ids first, as every other locker does"

        await holding.commit()
        loaded = await locking
        await chunking.commit()
        assert set(loaded.orders) == set(by_id)
    finally:
        for connection in (holder, chunk, observer):
            await connection.close()
