"""One job's chunks, overlapped: while a chunk commits, the next one is read and decided.

A chunk is one transaction in two phases (see :mod:`invoicing.processing`): *prepare* reads
the next pending items, locks their orders and applies the rules; *commit* proves the lease,
allocates the invoice numbers, writes invoices and items and moves the counters. Prepare
touches neither the job row nor the number counter, and two chunks never share an order, so
chunk k+1 can prepare on a second connection while chunk k commits: PostgreSQL works on the
writes of one while Python decides the other. Commits stay strictly in order (each chunk
awaits its predecessor before committing), so numbers, counters and events keep the order
of the items, and at most two chunks are open at a time.

Nothing about exactly once changes: every chunk is still all or nothing, and the database
still refuses a second invoice per order and a second outcome per item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from uuid import UUID

from invoicing.processing import ChunkOutcome, commit_chunk, prepare_chunk
from invoicing.storage.database import Database

logger = logging.getLogger(__name__)


class _Superseded(Exception):
    """The chunk before this one ended the job (or lost it): roll this one back."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """Whose job is run, and how."""

    database: Database
    job_id: UUID
    owner: str
    organization_id: UUID
    lease_seconds: float


async def _chunk(
    run: JobRun,
    after_position: int,
    chunk_size: int,
    previous: asyncio.Task[ChunkOutcome] | None,
    prepared: asyncio.Future[int | None],
) -> ChunkOutcome:
    try:
        async with run.database.scoped(run.organization_id) as connection:
            chunk = await prepare_chunk(
                connection, run.job_id, run.organization_id, chunk_size, after_position
            )
            prepared.set_result(chunk.last_position)
            # Shielded: cancelling this chunk must not cancel the one before it.
            if previous is not None and (await asyncio.shield(previous)).done:
                raise _Superseded
            return await commit_chunk(
                run.database,
                connection,
                chunk,
                run.job_id,
                run.owner,
                organization_id=run.organization_id,
                chunk_size=chunk_size,
                lease_seconds=run.lease_seconds,
            )
    except _Superseded:
        return ChunkOutcome(job=None)
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


async def committed_chunks(run: JobRun, chunk_size: Callable[[], int]) -> AsyncGenerator[ChunkOutcome]:
    """Run the job's chunks two at a time and yield each outcome in commit order, until one
    is ``done`` (finished, cancelled, or the lease lost). ``chunk_size()`` is asked for each
    new chunk's size. Closing the iterator rolls back whatever is still open."""
    previous: asyncio.Task[ChunkOutcome] | None = None
    current: asyncio.Task[ChunkOutcome] | None = None
    after_position = 0
    finished = False
    try:
        while True:
            prepared: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            current = asyncio.create_task(_chunk(run, after_position, chunk_size(), previous, prepared))
            if previous is not None:
                # Published as soon as it commits, even if the next chunk's prepare waits (on
                # orders another job holds, say).
                outcome = await asyncio.shield(previous)
                yield outcome
                if outcome.done:
                    finished = True
                    return
            last_position = await _prepared(prepared, current)
            previous = current
            if last_position is None:
                # Nothing pending after the last position: this chunk settles what is left on
                # its own (see commit_chunk), with nothing else in flight.
                outcome = await asyncio.shield(current)
                previous = None
                yield outcome
                if outcome.done:
                    finished = True
                    return
                last_position = outcome.last_position
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
