"""Heavy reads take turns per organization, so one organization cannot fill the pool."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from invoicing.infra.read_gate import ReadGate
from invoicing.kernel.errors import DatabaseBusy


async def test_an_organization_runs_at_most_its_share_of_heavy_reads_at_once() -> None:
    gate = ReadGate(per_organization=1, wait_seconds=5)
    mine, theirs = uuid4(), uuid4()
    started: list[str] = []
    release = asyncio.Event()
    two_started = asyncio.Event()

    async def read(organization: object, name: str) -> None:
        async with gate.heavy(organization):  # type: ignore[arg-type]
            started.append(name)
            if len(started) == 2:
                two_started.set()
            await release.wait()

    first = asyncio.create_task(read(mine, "mine 1"))
    second = asyncio.create_task(read(mine, "mine 2"))
    other = asyncio.create_task(read(theirs, "theirs"))
    await asyncio.wait_for(two_started.wait(), timeout=5)
    assert sorted(started) == ["mine 1", "theirs"]  # the other organization did not wait
    release.set()
    await asyncio.gather(first, second, other)
    assert started[-1] == "mine 2"
    assert gate._shares == {}  # nothing kept once no read is left


async def test_a_heavy_read_that_waits_too_long_is_refused_busy() -> None:
    gate = ReadGate(per_organization=1, wait_seconds=0.05)
    organization = uuid4()
    async with gate.heavy(organization):
        with pytest.raises(DatabaseBusy):
            async with gate.heavy(organization):
                pass


def test_each_organization_gets_a_quarter_of_the_pool_at_least_one() -> None:
    assert ReadGate.for_pool(10).per_organization == 2
    assert ReadGate.for_pool(2).per_organization == 1
