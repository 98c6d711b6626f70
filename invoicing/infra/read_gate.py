"""Admission of heavy reads (counts, sums over every matching order, large pages), so that one
organization's cannot take the pool from the others'.

Each server process lets an organization run at most a quarter of its pool's connections on
heavy reads at once (at least one); the next waits, without a connection, and answers
``DatabaseBusy`` (503, ``Retry-After``) if its turn does not come in time. Light reads (a page
of 50, one job) never wait here: what an organization cannot do is fill the pool with
expensive ones while another organization's requests queue behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

from invoicing.kernel.errors import DatabaseBusy

#: How long a heavy read waits for its organization's turn before answering 503.
HEAVY_READ_WAIT_SECONDS = 10.0


@dataclass
class _Share:
    slots: asyncio.Semaphore
    holders: int = 0  # requests holding or waiting for a slot: the entry goes at zero


@dataclass
class ReadGate:
    """One per server process (the lifespan creates it), shared by all its requests."""

    per_organization: int
    wait_seconds: float = HEAVY_READ_WAIT_SECONDS
    _shares: dict[UUID, _Share] = field(default_factory=dict)

    @classmethod
    def for_pool(cls, pool_size: int) -> ReadGate:
        return cls(max(1, pool_size // 4))

    @asynccontextmanager
    async def heavy(self, organization_id: UUID) -> AsyncIterator[None]:
        """Hold one of the organization's heavy-read slots for the read's whole transaction."""
        share = self._shares.setdefault(organization_id, _Share(asyncio.Semaphore(self.per_organization)))
        share.holders += 1
        try:
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await share.slots.acquire()
            except TimeoutError:
                raise DatabaseBusy(
                    "Too many large reads of your organization are running; try again in a moment."
                ) from None
            try:
                yield
            finally:
                share.slots.release()
        finally:
            share.holders -= 1
            if share.holders == 0:
                del self._shares[organization_id]
