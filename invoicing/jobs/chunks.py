"""Turning orders into invoices, one chunk of a batch job at a time.

Each chunk is one transaction: it proves the lease, locks the orders, writes the invoices,
marks the items and moves the counters together, so a crash anywhere leaves either all of a
chunk or none of it. Exactly once is then the database's job (unique ``sales_order_id``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from invoicing.domain.job_states import STORAGE_REJECTED, ItemStatus
from invoicing.domain.models import InvoiceDraft
from invoicing.invoices import store as invoices
from invoicing.invoices.decisions import decide, today
from invoicing.invoices.store import InvoiceRows
from invoicing.jobs import progress
from invoicing.jobs.progress import ItemResult, PartRange
from invoicing.jobs.views import BatchJob
from invoicing.kernel.errors import InvoiceRuleError

#: How many failed items the job's ``errors`` column keeps; the rest are in the items.
ERROR_SAMPLE_SIZE = 50

#: Orders decided between two pauses that let other tasks run (about a millisecond's work).
DECIDE_SLICE = 32


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """What a chunk's transaction committed.

    ``job`` is the job as committed when the chunk changed it (None when it changed nothing:
    every order of the chunk was locked elsewhere, or the lease was lost).
    """

    job: BatchJob | None
    #: The last item position this chunk handled: the next chunk starts after it.
    last_position: int = 0
    #: The part is no longer ours (the sweep took it back) or its job no longer runs: stop,
    #: having written nothing.
    lease_lost: bool = False
    #: The pass over the part reached its end with items left (orders locked elsewhere).
    items_left: bool = False
    #: Every item of the part has its outcome: the part is over (the job may go on elsewhere).
    part_done: bool = False
    #: Seconds the commit queued for the organization's number counter behind other chunks
    #: (of other parts or jobs): time the chunk did not spend on its own work.
    counter_wait: float = 0.0

    @property
    def done(self) -> bool:
        return self.lease_lost or self.part_done or (self.job is not None and self.job.is_finished)


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    """The next items of a job, their orders locked and decided, nothing written yet."""

    #: The items decided in this chunk (those whose orders someone else holds are left out).
    items: list[tuple[int, UUID]]
    #: Per item, the rule its order breaks, or None: its invoice is among the rows. (The drafts
    #: themselves are not kept: two chunks in flight held 10 MB of them for nothing.)
    refusals: list[InvoiceRuleError | None]
    #: The invoices' rows, ready to be numbered and written.
    rows: InvoiceRows
    #: The last position read, decided or left; None when nothing was left after the start.
    scanned_through: int | None = None


async def prepare_chunk(
    connection: asyncpg.Connection,
    job_id: UUID,
    part: PartRange,
    organization_id: UUID,
    chunk_size: int,
    after_position: int,
    *,
    fail_locked: bool = False,
) -> PreparedChunk:
    """Read the part's next ``chunk_size`` pending items after ``after_position``, lock their
    orders and decide each one. Touches neither the job row nor the number counter, so it can
    run while the previous chunk of the same part (or another part's) is still committing.

    It never waits for an order someone else holds: such an item stays pending for a later
    pass, or, with ``fail_locked`` (the job waited long enough), fails with ``order_locked``.
    """
    read = await progress.next_pending_items(connection, job_id, chunk_size, after_position, part.last)
    if not read:
        return PreparedChunk([], [], InvoiceRows(organization_id, today().year))
    loaded = await invoices.lock_orders_for_invoicing(
        connection, organization_id, [order_id for _, order_id in read], on_locked="skip"
    )
    locked = loaded.locked_elsewhere
    # Held orders stay pending for a later pass; with ``fail_locked`` they are decided (refused).
    items = read if not locked or fail_locked else [item for item in read if item[1] not in locked]
    order_ids = [order_id for _, order_id in items]
    # The day is read once the orders are locked, so that invoices are dated when they are made.
    issue_date = today()
    rows = InvoiceRows(organization_id, issue_date.year)
    refusals: list[InvoiceRuleError | None] = []
    for start in range(0, len(order_ids), DECIDE_SLICE):
        decided = decide(order_ids[start : start + DECIDE_SLICE], loaded, issue_date)
        rows.add(d for d in decided if isinstance(d, InvoiceDraft))
        refusals += [d if isinstance(d, InvoiceRuleError) else None for d in decided]
        # The chunk committing meanwhile needs this thread to send its COPY: without a pause,
        # deciding a whole chunk kept PostgreSQL waiting for it (tens of milliseconds).
        await asyncio.sleep(0)
    return PreparedChunk(items, refusals, rows, scanned_through=read[-1][0])


async def commit_chunk(
    connection: asyncpg.Connection,
    chunk: PreparedChunk,
    job_id: UUID,
    part: PartRange,
    owner: str,
    *,
    lease_seconds: float,
) -> ChunkOutcome:
    """Prove the part's lease, then write a prepared chunk: numbers, invoices, items, counters.

    Called once every earlier chunk of the part has committed. A cancel requested meanwhile
    discards the chunk (the transaction then only finishes the job as cancelled). An invoice
    PostgreSQL refuses fails its own item (``storage_rejected``), not the chunk.
    """
    if chunk.scanned_through is None:
        return await _end_of_pass(connection, job_id, part, owner, lease_seconds)
    lease = await progress.renew_lease(
        connection, job_id, part, owner, lease_seconds, processing=len(chunk.items)
    )
    if lease is None:
        return ChunkOutcome(job=None, lease_lost=True)
    if lease.cancel_requested:
        return await _cancelled(connection, job_id)
    if not chunk.items:
        return ChunkOutcome(job=None, last_position=chunk.scanned_through)
    # A third of a lease: the heartbeat cannot renew the part's row while this waits.
    counter_wait = await invoices.wait_for_number_counter(connection, chunk.rows, patience=lease_seconds / 3)
    created, refused = await invoices.insert_invoices_isolating(
        connection, chunk.rows, created_by=lease.created_by, batch_job_id=job_id
    )
    refusals = chunk.refusals
    if refused:
        refusals = [
            InvoiceRuleError(refused[order_id], code=STORAGE_REJECTED) if order_id in refused else refusal
            for (_, order_id), refusal in zip(chunk.items, chunk.refusals, strict=True)
        ]
    results = [
        _item_result(position, order_id, refusal, created)
        for (position, order_id), refusal in zip(chunk.items, refusals, strict=True)
    ]
    await progress.record_items(connection, job_id, results)
    failures = [
        {"order_id": str(order_id), "code": refusal.code, "message": refusal.message}
        for (_, order_id), refusal in zip(chunk.items, refusals, strict=True)
        if refusal is not None
    ]
    job = await progress.record_progress(
        connection,
        job_id,
        processed=len(chunk.items),
        succeeded=len(created),
        failed=len(failures),
        new_errors=failures[: max(0, ERROR_SAMPLE_SIZE - lease.error_count)],
    )
    return ChunkOutcome(job=job, last_position=chunk.scanned_through, counter_wait=counter_wait)


async def _cancelled(connection: asyncpg.Connection, job_id: UUID) -> ChunkOutcome:
    """The job cancelled now, every part's pending items with it (None if another part's
    transaction cancelled it first: this part stops all the same)."""
    job = await progress.finish_cancelled(connection, job_id)
    return ChunkOutcome(job=None, lease_lost=True) if job is None else ChunkOutcome(job=job)


async def _end_of_pass(
    connection: asyncpg.Connection, job_id: UUID, part: PartRange, owner: str, lease_seconds: float
) -> ChunkOutcome:
    """Nothing after the last position of the part, and no chunk in flight: the part is done,
    unless items were left behind (their orders were locked elsewhere) for another pass."""
    # Read before the renew takes the part row, so that the row is held as briefly as possible.
    items_left = await progress.has_pending_items(connection, job_id, part.first, part.last)
    lease = await progress.renew_lease(connection, job_id, part, owner, lease_seconds)
    if lease is None:
        return ChunkOutcome(job=None, lease_lost=True)
    if lease.cancel_requested:
        return await _cancelled(connection, job_id)
    if items_left:
        return ChunkOutcome(job=None, items_left=True)
    return ChunkOutcome(job=None, part_done=True)


def _item_result(
    position: int, order_id: UUID, refusal: InvoiceRuleError | None, created: dict[UUID, UUID]
) -> ItemResult:
    if refusal is not None:
        return ItemResult(position, ItemStatus.failed.value, None, refusal.code, refusal.message)
    return ItemResult(position, ItemStatus.succeeded.value, created[order_id])
