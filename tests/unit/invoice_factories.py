"""Builders of orders, lines and customers for the invoice rule specifications."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from invoicing.domain.invoice_rules import build_invoice_draft
from invoicing.domain.models import Customer, InvoiceDraft, OrderLine, SalesOrder
from invoicing.kernel.errors import InvoiceRuleError

ISSUE_DATE = date(2026, 3, 15)
ORDER_ID = UUID("00000000-0000-4000-8000-000000000001")
CUSTOMER_ID = UUID("00000000-0000-4000-8000-000000000002")
ORGANIZATION_ID = UUID("00000000-0000-4000-8000-000000000003")


def make_line(**overrides: Any) -> OrderLine:
    line = OrderLine(
        position=1,
        description="Widget",
        quantity=Decimal("1"),
        unit_price=Decimal("10.00"),
        discount_percent=Decimal("0"),
        tax_rate_percent=Decimal("20"),
    )
    return replace(line, **overrides)


def make_order(**overrides: Any) -> SalesOrder:
    order = SalesOrder(
        id=ORDER_ID,
        organization_id=ORGANIZATION_ID,
        number="SO-000012",
        customer_id=CUSTOMER_ID,
        status="confirmed",
        currency="EUR",
        order_date=date(2026, 3, 1),
        lines=(make_line(),),
    )
    return replace(order, **overrides)


def make_customer(**overrides: Any) -> Customer:
    customer = Customer(
        id=CUSTOMER_ID,
        name="Acme",
        billing_name="Acme GmbH",
        billing_address="Hauptstraße 1\n10115 Berlin",
        billing_email="billing@acme.example",
        payment_terms_days=30,
        currency="EUR",
    )
    return replace(customer, **overrides)


def lines_of(*lines: OrderLine) -> tuple[OrderLine, ...]:
    """Number the given lines 1, 2, 3... in the order given."""
    return tuple(replace(line, position=index) for index, line in enumerate(lines, start=1))


def build(
    order: SalesOrder | None = None,
    customer: Customer | None = None,
    *,
    already_invoiced: bool = False,
    issue_date: date = ISSUE_DATE,
) -> InvoiceDraft:
    return build_invoice_draft(
        make_order() if order is None else order,
        make_customer() if customer is None else customer,
        already_invoiced=already_invoiced,
        issue_date=issue_date,
    )


def refusal(
    order: SalesOrder | None,
    customer: Customer | None,
    *,
    already_invoiced: bool = False,
) -> InvoiceRuleError:
    with pytest.raises(InvoiceRuleError) as caught:
        build_invoice_draft(order, customer, already_invoiced=already_invoiced, issue_date=ISSUE_DATE)
    return caught.value


def draft_with_lines(*lines: OrderLine, currency: str = "EUR") -> InvoiceDraft:
    return build(make_order(lines=lines_of(*lines), currency=currency), make_customer(currency=currency))
