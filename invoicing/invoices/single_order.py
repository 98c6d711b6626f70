"""Invoicing one order on request, with the rules and locks of a batch chunk."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID

from invoicing.domain.job_states import STORAGE_REJECTED
from invoicing.infra.database import Database
from invoicing.invoices import store as invoices
from invoicing.invoices.decisions import decide, today
from invoicing.invoices.store import InvoiceRows
from invoicing.invoices.views import Invoice
from invoicing.kernel.errors import InvoiceRuleError, OrderLocked, OrdersInActiveJob
from invoicing.orders import store as orders

#: How long a single order's request keeps trying an order someone else holds, and its pauses.
SINGLE_ORDER_LOCK_WAIT = 2.0
FIRST_LOCK_PAUSE = 0.02
LONGEST_LOCK_PAUSE = 0.25


async def invoice_single_order(
    database: Database, *, organization_id: UUID, order_id: UUID, user_id: UUID
) -> Invoice:
    """The seed's create-invoice-from-order: same rules and locks as a batch chunk.

    If someone else holds the order (an ERP editing it, a batch chunk), the request does not
    wait on it with a pooled connection: it gives the connection back, pauses briefly and tries
    again, and answers ``OrderLocked`` (409) once ``SINGLE_ORDER_LOCK_WAIT`` has passed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SINGLE_ORDER_LOCK_WAIT
    pause = FIRST_LOCK_PAUSE
    while True:
        try:
            return await _invoice_single_order_now(
                database, organization_id=organization_id, order_id=order_id, user_id=user_id
            )
        except OrderLocked:
            if loop.time() + pause > deadline:
                raise
        await asyncio.sleep(pause * (0.5 + random.random()))  # jittered: waiters do not retry in step
        pause = min(pause * 2, LONGEST_LOCK_PAUSE)


async def _invoice_single_order_now(
    database: Database, *, organization_id: UUID, order_id: UUID, user_id: UUID
) -> Invoice:
    async with database.scoped(organization_id) as connection:
        loaded = await invoices.lock_orders_for_invoicing(
            connection, organization_id, [order_id], on_locked="fail"
        )
        # An order a running job holds is that job's to invoice (its outcome is reported there).
        held = await orders.held_orders(connection, organization_id, [order_id])
        if held:
            raise OrdersInActiveJob.holding(held)
        decision = decide([order_id], loaded, today())[0]
        if isinstance(decision, InvoiceRuleError):
            raise decision
        rows = InvoiceRows(organization_id, decision.issue_date.year)
        rows.add([decision])
        created, refused = await invoices.insert_invoices_isolating(
            connection, rows, created_by=user_id, batch_job_id=None
        )
        if order_id in refused:
            raise InvoiceRuleError(refused[order_id], code=STORAGE_REJECTED)
        return await invoices.get_invoice(connection, organization_id, created[order_id])
