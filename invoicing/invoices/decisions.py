"""Deciding orders: loaded rows through the pure invoice rules, to drafts or typed refusals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from uuid import UUID

from invoicing.domain.invoice_rules import build_invoice_draft
from invoicing.domain.job_states import ORDER_LOCKED, PROCESSING_ERROR
from invoicing.domain.models import InvoiceDraft
from invoicing.invoices.store import OrdersToInvoice
from invoicing.kernel.errors import InvoiceRuleError

logger = logging.getLogger(__name__)


def today() -> date:
    return datetime.now(UTC).date()


def decide(
    order_ids: Sequence[UUID], loaded: OrdersToInvoice, issue_date: date
) -> list[InvoiceDraft | InvoiceRuleError]:
    """Pure: a draft or the rule it breaks, for each order id, in order (an order someone else
    holds, left out of ``loaded``, is ``order_locked``)."""
    decisions: list[InvoiceDraft | InvoiceRuleError] = []
    for order_id in order_ids:
        order = loaded.orders.get(order_id)
        if order is None and order_id in loaded.locked_elsewhere:
            decisions.append(locked_too_long())
            continue
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
        except Exception:
            # A bug met by one order's data must not sink the others: that order fails alone.
            logger.exception("unexpected error deciding the invoice of order %s", order_id)
            message = "The order could not be processed because of an unexpected error; it was logged."
            decisions.append(InvoiceRuleError(message, code=PROCESSING_ERROR))
    return decisions


def locked_too_long() -> InvoiceRuleError:
    message = (
        "The order was held by another transaction (an edit elsewhere, another job) for the whole"
        " time the job waited for it; retry the job to invoice it."
    )
    return InvoiceRuleError(message, code=ORDER_LOCKED)
