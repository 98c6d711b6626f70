"""Admission of heavy writes (batch submits and retries), so that they never starve reads.

A submit inserts up to 100,000 items under its organization's lock, and submits of one
organization take turns on that lock (the active-job cap counts what the previous one
committed). Waiting for that turn while holding a pooled connection would let a burst of
submits take the whole pool and queue every read behind them. So a submit waits *before* it
takes a connection:

1. for its organization's turn in this process (an asyncio lock per organization): at most one
   connection per organization and process is ever used by submits;
2. for one of the write slots (``slots``, a quarter of the pool): the rest of the pool is
   left to reads, whatever the number of organizations submitting at once. A quarter, not
   more: bulk inserts are CPU-bound in PostgreSQL, so more of them at once do not finish a
   burst sooner, they only slow every read down (measured on 2 cores: 30 clients submitting
   4,000-id batches for 10 organizations, pool of 10: reads' p99 112–559 ms with 5 slots,
   63–139 ms with 2, the burst as long);
3. across server processes, the organization's advisory lock is only *tried*; a submit that
   finds it taken gives its connection back and pauses (``pause``), briefly and with jitter,
   before trying again.

Every wait ends at the request's deadline with ``DatabaseBusy`` (503, ``Retry-After``): a
submit waits its turn, without a connection, but not forever.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

from invoicing.kernel.errors import DatabaseBusy

#: How long a submit waits for its turn, all waits together, before answering 503.
SUBMIT_WAIT_SECONDS = 30.0
#: Pauses between tries of a lock another process holds: doubling from the first, up to the
#: last, each scaled by a random factor so that waiting processes do not retry in step.
FIRST_PAUSE_SECONDS = 0.01
LONGEST_PAUSE_SECONDS = 0.2


@dataclass
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # requests holding or waiting for the lock: the entry goes at zero


class WriteGate:
    """One per server process (the lifespan creates it), shared by all its requests."""

    def __init__(self, slots: int, *, wait_seconds: float = SUBMIT_WAIT_SECONDS) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(slots)
        self._turns: dict[UUID, _Turns] = {}

    @classmethod
    def for_pool(cls, pool_size: int) -> WriteGate:
        """Heavy writes get a quarter of the pool (at least one connection); reads keep the rest."""
        return cls(max(1, pool_size // 4))

    def deadline(self) -> float:
        """The event loop's time at which a write that starts now stops waiting."""
        return asyncio.get_running_loop().time() + self.wait_seconds

    @asynccontextmanager
    async def turn(self, organization_id: UUID, deadline: float) -> AsyncIterator[None]:
        """The organization's turn among this process's writes (no connection is held while waiting)."""
        turns = self._turns.setdefault(organization_id, _Turns())
        turns.holders += 1
        try:
            await _acquire(turns.lock, deadline)
            try:
                yield
            finally:
                turns.lock.release()
        finally:
            turns.holders -= 1
            if turns.holders == 0:
                del self._turns[organization_id]

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """One of the write slots: hold it for as long as the write holds a connection."""
        await _acquire(self._slots, deadline)
        try:
            yield
        finally:
            self._slots.release()

    async def pause(self, attempt: int, deadline: float) -> None:
        """Wait before trying a lock another process holds again; DatabaseBusy past the deadline."""
        delay = min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2**attempt) * random.uniform(0.5, 1.5)
        if asyncio.get_running_loop().time() + delay > deadline:
            raise _busy()
        await asyncio.sleep(delay)


async def _acquire(primitive: asyncio.Lock | asyncio.Semaphore, deadline: float) -> None:
    try:
        async with asyncio.timeout_at(deadline):
            await primitive.acquire()
    except TimeoutError:
        raise _busy() from None


def _busy() -> DatabaseBusy:
    return DatabaseBusy("Too many batch jobs are being submitted right now; try again in a moment.")
