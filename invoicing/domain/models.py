"""Frozen value objects of the invoicing domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Customer:
    id: UUID
    name: str
    billing_name: str | None
    billing_address: str | None
    billing_email: str | None
    payment_terms_days: int
    currency: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    position: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate_percent: Decimal


@dataclass(frozen=True, slots=True)
class SalesOrder:
    id: UUID
    organization_id: UUID
    number: str
    customer_id: UUID
    status: str  # draft | confirmed | cancelled
    currency: str
    order_date: date
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, slots=True)
class InvoiceLineDraft:
    position: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate_percent: Decimal
    net_amount: Decimal  # rounded half-up to the currency's minor unit


@dataclass(frozen=True, slots=True)
class TaxAmount:
    rate_percent: Decimal
    base: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    """Everything about an invoice except its identity and number (allocated at commit)."""

    sales_order_id: UUID
    customer_id: UUID
    billing_name: str
    billing_address: str
    billing_email: str
    issue_date: date
    due_date: date
    currency: str
    lines: tuple[InvoiceLineDraft, ...]
    taxes: tuple[TaxAmount, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
