"""The write gate: one submit per organization at a time, a bounded number overall, bounded waits."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from invoicing.infra.write_gate import WriteGate
from invoicing.kernel.errors import DatabaseBusy


async def test_writes_of_one_organization_take_turns_and_others_pass() -> None:
    gate = WriteGate(slots=4)
    busy, other = uuid4(), uuid4()
    inside: list[str] = []
    two_inside, release = asyncio.Event(), asyncio.Event()

    async def write(organization: UUID, name: str) -> None:
        async with gate.turn(organization, gate.deadline()):
            inside.append(name)
            if len(inside) == 2:
                two_inside.set()
            await release.wait()

    first = asyncio.create_task(write(busy, "first"))
    second = asyncio.create_task(write(busy, "second"))
    elsewhere = asyncio.create_task(write(other, "elsewhere"))
    await two_inside.wait()
    assert sorted(inside) == ["elsewhere", "first"], "the second write of an organization waits"
    release.set()
    await asyncio.gather(first, second, elsewhere)
    assert inside[-1] == "second"


async def test_no_more_writes_hold_a_slot_than_there_are_slots() -> None:
    gate = WriteGate(slots=2)
    holding = 0
    most = 0

    async def write() -> None:
        nonlocal holding, most
        async with gate.slot(gate.deadline()):
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0)
            holding -= 1

    await asyncio.gather(*(write() for _ in range(10)))
    assert most == 2


async def test_a_wait_past_the_deadline_is_refused_as_busy() -> None:
    gate = WriteGate(slots=1, wait_seconds=0.05)
    organization = uuid4()
    async with gate.turn(organization, gate.deadline()):
        with pytest.raises(DatabaseBusy):
            async with gate.turn(organization, gate.deadline()):
                pass  # never reached
        async with gate.slot(gate.deadline()):
            with pytest.raises(DatabaseBusy):
                async with gate.slot(gate.deadline()):
                    pass  # never reached
    # The refused waits left nothing behind: the organization's turn is free again.
    async with gate.turn(organization, gate.deadline()), gate.slot(gate.deadline()):
        pass


async def test_pausing_past_the_deadline_is_refused_as_busy() -> None:
    gate = WriteGate(slots=1, wait_seconds=0.05)
    deadline = gate.deadline()

    async def keep_pausing() -> None:
        for attempt in range(100):
            await gate.pause(attempt, deadline)

    with pytest.raises(DatabaseBusy):
        await keep_pausing()


def test_heavy_writes_get_a_quarter_of_the_pool_and_at_least_one_connection() -> None:
    assert [WriteGate.for_pool(size).slots for size in (2, 4, 8, 10, 40)] == [1, 1, 2, 2, 10]
