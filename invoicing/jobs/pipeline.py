"""One part's chunks, overlapped: while a chunk commits, the next one is read and decided.

A chunk is one transaction in two phases (see :mod:`invoicing.jobs.chunks`): *prepare* reads
the next pending items, locks their orders and applies the rules; *commit* proves the lease,
allocates the invoice numbers, writes invoices and items and moves the counters. Prepare
touches neither the job row nor the number counter, and two chunks never share an order, so
chunk k+1 can prepare on a second connection while chunk k commits: PostgreSQL works on the
writes of one while Python decides the other. Commits stay strictly in order (each chunk
awaits its predecessor before committing), so numbers, counters and events keep the order
of the items within the part, and at most two chunks of a part are open at a time. Other
parts of the same job run the same way on other slots; their commits interleave.

Nothing about exactly once changes: every chunk is still all or nothing, and the database
still refuses a second invoice per order and a second outcome per item.

A run is one or more *passes* over the part's pending items, in position order. A chunk never
waits for an order someone else holds (an ERP editing it, another job, a frozen process whose
session PostgreSQL has not ended yet): that item stays pending, and when a pass reaches the
end with such items left, the next pass starts after a short pause. Once the part has waited
``locked_order_wait`` seconds for them, the last pass fails them with ``order_locked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from uuid import UUID

from invoicing.infra.database import Database
from invoicing.jobs.chunks import ChunkOutcome, commit_chunk, prepare_chunk
from invoicing.jobs.progress import ItemsChanged, PartRange

logger = logging.getLogger(__name__)


class _Superseded(Exception):
    """The chunk before this one ended the job (or lost it): roll this one back."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """Which part of whose job is run, and how."""

    database: Database
    job_id: UUID
    part: PartRange
    owner: str
    organization_id: UUID
    lease_seconds: float
    #: How long the job keeps coming back to orders locked elsewhere before failing them.
    locked_order_wait: float = 30.0


#: Pauses between passes over orders locked elsewhere: the first, and the longest.
FIRST_PASS_PAUSE = 0.25
LONGEST_PASS_PAUSE = 2.0


async def _chunk(
    run: JobRun,
    after_position: int,
    chunk_size: int,
    previous: asyncio.Task[ChunkOutcome] | None,
    prepared: asyncio.Future[int | None],
    fail_locked: bool,
) -> ChunkOutcome:
    try:
        async with run.database.scoped(run.organization_id) as connection:
            chunk = await prepare_chunk(
                connection,
                run.job_id,
                run.part,
                run.organization_id,
                chunk_size,
                after_position,
                fail_locked=fail_locked,
            )
            prepared.set_result(chunk.scanned_through)
            # Shielded: cancelling this chunk must not cancel the one before it.
            if previous is not None and (await asyncio.shield(previous)).done:
                raise _Superseded
            return await commit_chunk(
                connection, chunk, run.job_id, run.part, run.owner, lease_seconds=run.lease_seconds
            )
    except _Superseded:
        return ChunkOutcome(job=None)
    except ItemsChanged:
        # Rolled back: a cancel of the whole job committed between this chunk's lease check
        # and its items. The part stops; whoever cancelled finished the job.
        logger.info("job %s: items cancelled under a chunk; stopping the part", run.job_id)
        return ChunkOutcome(job=None, lease_lost=True)
    finally:
        if not prepared.done():
            prepared.cancel()


async def _prepared(prepared: asyncio.Future[int | None], task: asyncio.Task[ChunkOutcome]) -> int | None:
    """The chunk's last position once it is prepared; its error if it fails before that."""
    waiting: set[asyncio.Future[object]] = {prepared, task}  # type: ignore[arg-type]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if prepared.done() and not prepared.cancelled():
        return prepared.result()
    await asyncio.shield(task)  # raises what stopped it
    raise RuntimeError("a chunk ended without preparing")  # pragma: no cover (task raised)


async def _settled(task: asyncio.Task[ChunkOutcome]) -> None:
    """Wait for a chunk's task to end, whatever its outcome (its own error is not ours to
    raise: the error that stopped the run already propagates)."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():
            return  # the task was cancelled (by us): its own end, not ours
        # We are being cancelled: let the task end first (its connection must go back), then
        # pass the cancel on.
        await asyncio.wait({task})
        raise
    except Exception:
        logger.debug("chunk of job ended with an error after the run stopped", exc_info=True)


def _always() -> bool:
    return True


async def committed_chunks(
    run: JobRun, chunk_size: Callable[[], int], keep_going: Callable[[], bool] = _always
) -> AsyncGenerator[ChunkOutcome]:
    """Run the part's chunks two at a time and yield each outcome in commit order, until one
    is ``done`` (the part or the job finished, or the lease lost), pass after pass while orders
    locked elsewhere are left. ``chunk_size()`` is asked for each new chunk's size. Once
    ``keep_going()`` says no, no chunk starts: the one in flight commits, its outcome is
    yielded, and the iterator ends (a slot handing its part over). Closing the iterator rolls
    back whatever is still open."""
    waiting_since: float | None = None
    pause = FIRST_PASS_PAUSE
    while True:
        fail_locked = waiting_since is not None and time.monotonic() - waiting_since >= run.locked_order_wait
        async with contextlib.aclosing(_one_pass(run, chunk_size, fail_locked, keep_going)) as chunks:
            async for outcome in chunks:
                yield outcome
                if outcome.done:
                    return
        if not keep_going():
            return
        # The pass ended with items whose orders someone else holds: come back to them.
        if waiting_since is None:
            waiting_since = time.monotonic()
            logger.info("job %s: orders locked elsewhere are left; coming back to them", run.job_id)
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_PASS_PAUSE)


async def _one_pass(
    run: JobRun, chunk_size: Callable[[], int], fail_locked: bool, keep_going: Callable[[], bool]
) -> AsyncGenerator[ChunkOutcome]:
    """One pass over the part's pending items, from the first; ends after an outcome that is ``done``
    or says items were left."""
    previous: asyncio.Task[ChunkOutcome] | None = None
    current: asyncio.Task[ChunkOutcome] | None = None
    after_position = run.part.first - 1
    finished = False
    try:
        while True:
            if previous is not None and not keep_going():
                # Handing over: the chunk in flight commits (it is valid work), none starts.
                outcome = await asyncio.shield(previous)
                finished = True
                yield outcome
                return
            prepared: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            current = asyncio.create_task(
                _chunk(run, after_position, chunk_size(), previous, prepared, fail_locked)
            )
            if previous is not None:
                # Published as soon as it commits, even if the next chunk's prepare is slow.
                outcome = await asyncio.shield(previous)
                yield outcome
                if outcome.done:
                    finished = True
                    return
            last_position = await _prepared(prepared, current)
            previous = current
            if last_position is None:
                # Nothing pending after the last position: this chunk ends the pass on its own
                # (see commit_chunk), with nothing else in flight.
                outcome = await asyncio.shield(current)
                previous = None
                finished = True
                yield outcome
                return
            after_position = last_position
    finally:
        # After a normal end the chunk still open rolls itself back at once (superseded).
        # Otherwise (an error, or the worker stopping) the chunk being prepared is cancelled,
        # and the one committing is left to finish: it is valid work, and a cancel landing
        # on its COMMIT would leave unknown whether it committed.
        if current is not None and current is not previous and not current.done() and not finished:
            current.cancel()
        for task in (previous, current):
            if task is not None:
                # Each rolls back or commits on its own; wait until its connection is back.
                await _settled(task)
