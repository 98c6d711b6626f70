"""Turning orders into invoices: one chunk of a batch job, or a single order.

Each chunk is one transaction: it proves the lease, locks the orders, writes the invoices,
marks the items and moves the counters together, so a crash anywhere leaves either all of a
chunk or none of it. Exactly once is then the database's job (unique ``sales_order_id``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.invoice_rules import build_invoice_draft
from invoicing.domain.jobs import ItemStatus
from invoicing.domain.models import InvoiceDraft
from invoicing.errors import InvoiceRuleError
from invoicing.records import BatchJob, Invoice
from invoicing.storage import invoices, progress
from invoicing.storage.database import Database
from invoicing.storage.invoices import InvoiceRows, OrdersToInvoice
from invoicing.storage.progress import ItemResult

#: How many failed items the job's ``errors`` column keeps; the rest are in the items.
ERROR_SAMPLE_SIZE = 50

#: Orders decided between two pauses that let other tasks run (about a millisecond's work).
DECIDE_SLICE = 32


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """The job as committed by a chunk, or None when another worker has taken the job over."""

    job: BatchJob | None
    #: The last item position this chunk handled: the next chunk starts after it.
    last_position: int = 0

    @property
    def done(self) -> bool:
        return self.job is None or self.job.is_finished


def today() -> date:
    return datetime.now(UTC).date()


def decide(
    order_ids: Sequence[UUID], loaded: OrdersToInvoice, issue_date: date
) -> list[InvoiceDraft | InvoiceRuleError]:
    """Pure: a draft or the rule it breaks, for each order id, in order."""
    decisions: list[InvoiceDraft | InvoiceRuleError] = []
    for order_id in order_ids:
        order = loaded.orders.get(order_id)
        customer = None if order is None else loaded.customers.get(order.customer_id)
        try:
            decisions.append(
                build_invoice_draft(
                    order,
                    customer,
                    already_invoiced=order_id in loaded.already_invoiced,
                    issue_date=issue_date,
                )
            )
        except InvoiceRuleError as error:
            # An outcome, not a failure: without its traceback it holds no frames, so it
            # forms no reference cycle for the garbage collector to find.
            decisions.append(error.with_traceback(None))
    return decisions


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    """The next items of a job, their orders locked and decided, nothing written yet."""

    items: list[tuple[int, UUID]]
    #: Per item, the rule its order breaks, or None: its invoice is among the rows. (The drafts
    #: themselves are not kept: two chunks in flight held 10 MB of them for nothing.)
    refusals: list[InvoiceRuleError | None]
    #: The invoices' rows, ready to be numbered and written.
    rows: InvoiceRows

    @property
    def last_position(self) -> int | None:
        return self.items[-1][0] if self.items else None


async def prepare_chunk(
    connection: asyncpg.Connection, job_id: UUID, organization_id: UUID, chunk_size: int, after_position: int
) -> PreparedChunk:
    """Read the next ``chunk_size`` pending items after ``after_position``, lock their orders and
    decide each one. Touches neither the job row nor the number counter, so it can run while
    the previous chunk of the same job is still committing."""
    items = await progress.next_pending_items(connection, job_id, chunk_size, after_position)
    if not items:
        return PreparedChunk([], [], InvoiceRows(organization_id, today().year))
    order_ids = [order_id for _, order_id in items]
    loaded = await invoices.lock_orders_for_invoicing(connection, organization_id, order_ids)
    # The day is read once the orders are locked: waiting for another job's locks across
    # midnight must not date the invoices (and number them in the year) before it.
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
    return PreparedChunk(items, refusals, rows)


async def commit_chunk(
    database: Database,
    connection: asyncpg.Connection,
    chunk: PreparedChunk,
    job_id: UUID,
    owner: str,
    *,
    organization_id: UUID,
    chunk_size: int,
    lease_seconds: float,
) -> ChunkOutcome:
    """Prove the lease, then write a prepared chunk: numbers, invoices, items, counters.

    Called once every earlier chunk of the job has committed. A cancel requested meanwhile
    discards the chunk (the transaction then only finishes the job as cancelled).
    """
    if not chunk.items:
        # Nothing after the last position: with no chunk in flight now, make sure nothing
        # before it is left either. Before the lease's row lock, so that a cancel request
        # never waits behind this chunk's order locks.
        chunk = await prepare_chunk(connection, job_id, organization_id, chunk_size, 0)
    lease = await progress.renew_lease(connection, job_id, owner, lease_seconds)
    if lease is None:
        return ChunkOutcome(job=None)
    if lease.cancel_requested:
        return ChunkOutcome(job=await progress.finish_cancelled(connection, job_id))
    if not chunk.items:
        return ChunkOutcome(job=await progress.finish_completed(connection, job_id))
    async with database.as_owner(connection):
        created = await invoices.insert_invoices(
            connection, chunk.rows, created_by=lease.created_by, batch_job_id=job_id
        )
    results = [
        _item_result(position, order_id, refusal, created)
        for (position, order_id), refusal in zip(chunk.items, chunk.refusals, strict=True)
    ]
    await progress.record_items(connection, job_id, results)
    failures = [
        {"order_id": str(order_id), "code": refusal.code, "message": refusal.message}
        for (_, order_id), refusal in zip(chunk.items, chunk.refusals, strict=True)
        if refusal is not None
    ]
    job = await progress.record_progress(
        connection,
        job_id,
        processed=len(chunk.items),
        succeeded=len(chunk.rows),
        failed=len(failures),
        new_errors=failures[: max(0, ERROR_SAMPLE_SIZE - lease.error_count)],
    )
    return ChunkOutcome(job=job, last_position=chunk.items[-1][0])


def _item_result(
    position: int, order_id: UUID, refusal: InvoiceRuleError | None, created: dict[UUID, UUID]
) -> ItemResult:
    if refusal is not None:
        return ItemResult(position, ItemStatus.failed.value, None, refusal.code, refusal.message)
    return ItemResult(position, ItemStatus.succeeded.value, created[order_id])


async def invoice_single_order(
    database: Database, *, organization_id: UUID, order_id: UUID, user_id: UUID
) -> Invoice:
    """The seed's create-invoice-from-order: same rules and locks as a batch chunk."""
    async with database.scoped(organization_id) as connection:
        loaded = await invoices.lock_orders_for_invoicing(connection, organization_id, [order_id])
        decision = decide([order_id], loaded, today())[0]
        if isinstance(decision, InvoiceRuleError):
            raise decision
        rows = InvoiceRows(organization_id, decision.issue_date.year)
        rows.add([decision])
        async with database.as_owner(connection):
            created = await invoices.insert_invoices(connection, rows, created_by=user_id, batch_job_id=None)
        return await invoices.get_invoice(connection, organization_id, created[order_id])


def job_payload(user_id: UUID, source: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request context stored with a job (the seed's ``payload``), for audit and support."""
    return {"requested_by": str(user_id), "source": source, **(extra or {})}
