"""Invoices as the API shows them: ``from_row``, one JSON serializer and, beside it, the schema
of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from invoicing.domain.money import MONEY, money_text
from invoicing.kernel.json_schema import (
    CURRENCY,
    DATE,
    ID,
    NULLABLE_ID,
    TEXT,
    Schema,
    array,
    closed_object,
    ref,
)
from invoicing.kernel.json_values import DECIMAL, INSTANT, iso_time, plain_number


@dataclass(frozen=True, slots=True)
class Invoice:
    id: UUID
    organization_id: UUID
    number: str
    sales_order_id: UUID
    customer_id: UUID
    billing_name: str
    billing_address: str
    billing_email: str
    issue_date: date
    due_date: date
    currency: str
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    tax_breakdown: list[dict[str, str]]
    created_by: UUID
    batch_job_id: UUID | None
    created_at: datetime
    lines: tuple[Any, ...] | None = None

    @classmethod
    def from_row(cls, row: Any, lines: list[Any] | None = None) -> Invoice:
        fields = {name: row[name] for name in cls.__slots__ if name != "lines"}
        return cls(**fields, lines=None if lines is None else tuple(lines))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(self.id),
            "number": self.number,
            "sales_order_id": str(self.sales_order_id),
            "customer_id": str(self.customer_id),
            "billing_name": self.billing_name,
            "billing_address": self.billing_address,
            "billing_email": self.billing_email,
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "currency": self.currency,
            "subtotal": money_text(self.subtotal, self.currency),
            "tax_total": money_text(self.tax_total, self.currency),
            "total": money_text(self.total, self.currency),
            "taxes": self.tax_breakdown,
            "created_by": str(self.created_by),
            "batch_job_id": None if self.batch_job_id is None else str(self.batch_job_id),
            "created_at": iso_time(self.created_at),
        }
        if self.lines is not None:
            body["lines"] = [_invoice_line_json(line, self.currency) for line in self.lines]
        return body


#: An entry of ``taxes``: the invoice rules' breakdown per rate, stored with the invoice.
TAX_AMOUNT_SCHEMA = closed_object({"rate": TEXT, "base": TEXT, "tax": TEXT})

#: What ``Invoice.to_json`` writes for an invoice in a list: no lines.
INVOICE_SUMMARY_SCHEMA = closed_object(
    {
        "id": ID,
        "number": {"type": "string", "examples": ["INV-2026-000123"]},
        "sales_order_id": ID,
        "customer_id": ID,
        "billing_name": TEXT,
        "billing_address": TEXT,
        "billing_email": TEXT,
        "issue_date": DATE,
        "due_date": DATE,
        "currency": CURRENCY,
        "subtotal": MONEY,
        "tax_total": MONEY,
        "total": MONEY,
        "taxes": array(ref("TaxAmount")),
        "created_by": ID,
        "batch_job_id": NULLABLE_ID,
        "created_at": INSTANT,
    }
)

#: What ``Invoice.to_json`` writes for one invoice fetched (or created) alone: with its lines.
INVOICE_SCHEMA = closed_object({**INVOICE_SUMMARY_SCHEMA["properties"], "lines": array(ref("InvoiceLine"))})


def _invoice_line_json(row: Any, currency: str) -> dict[str, Any]:
    return {
        "position": row["position"],
        "description": row["description"],
        "quantity": plain_number(row["quantity"]),
        "unit_price": plain_number(row["unit_price"]),
        "discount_percent": plain_number(row["discount_percent"]),
        "tax_rate_percent": plain_number(row["tax_rate_percent"]),
        "net_amount": money_text(row["net_amount"], currency),
    }


#: What ``_invoice_line_json`` writes.
INVOICE_LINE_SCHEMA = closed_object(
    {
        "position": {"type": "integer"},
        "description": TEXT,
        "quantity": DECIMAL,
        "unit_price": DECIMAL,
        "discount_percent": DECIMAL,
        "tax_rate_percent": DECIMAL,
        "net_amount": MONEY,
    }
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {
    "TaxAmount": TAX_AMOUNT_SCHEMA,
    "InvoiceLine": INVOICE_LINE_SCHEMA,
    "InvoiceSummary": INVOICE_SUMMARY_SCHEMA,
    "Invoice": INVOICE_SCHEMA,
}
