"""Orders and customers as the API shows them: each with one JSON serializer and, beside it,
the schema of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from invoicing.domain.money import MONEY, money_text
from invoicing.domain.order_filters import ORDER_STATUSES
from invoicing.kernel.json_schema import (
    COUNT,
    CURRENCY,
    DATE,
    ID,
    NULLABLE_ID,
    TEXT,
    Schema,
    array,
    closed_object,
    enum,
)


@dataclass(frozen=True, slots=True)
class SalesOrderSummary:
    id: UUID
    number: str
    status: str
    customer_id: UUID
    customer_name: str
    currency: str
    order_date: date
    #: What its invoice will total (or did, by the same rules); None while its lines cannot
    #: be invoiced.
    total: Decimal | None
    invoice_id: UUID | None
    #: The pending or processing job that holds the order, if any.
    active_job_id: UUID | None

    @classmethod
    def from_row(cls, row: Any, *, total: Decimal | None) -> SalesOrderSummary:
        return cls(**{name: row[name] for name in cls.__slots__ if name != "total"}, total=total)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "number": self.number,
            "status": self.status,
            "customer_id": str(self.customer_id),
            "customer_name": self.customer_name,
            "currency": self.currency,
            "order_date": self.order_date.isoformat(),
            "total": None if self.total is None else money_text(self.total, self.currency),
            "invoice_id": None if self.invoice_id is None else str(self.invoice_id),
            "active_job_id": None if self.active_job_id is None else str(self.active_job_id),
        }


#: What ``SalesOrderSummary.to_json`` writes.
SALES_ORDER_SCHEMA = closed_object(
    {
        "id": ID,
        "number": TEXT,
        "status": enum(ORDER_STATUSES),
        "customer_id": ID,
        "customer_name": TEXT,
        "currency": CURRENCY,
        "order_date": DATE,
        "total": {
            **MONEY,
            "type": ["string", "null"],
            "description": "Its invoice's total, or the total its invoice will have (the invoice "
            "rules' arithmetic); null while its lines cannot be invoiced.",
        },
        "invoice_id": NULLABLE_ID,
        "active_job_id": {
            **NULLABLE_ID,
            "description": "The pending or processing job holding the order (no batch may take it).",
        },
    }
)


@dataclass(frozen=True, slots=True)
class OrderCount:
    #: Orders matching the filter.
    total: int
    #: Of those, orders a pending or processing job holds (a batch leaves them out).
    in_active_jobs: int

    def to_json(self) -> dict[str, Any]:
        """The fields an order page gains when its count is asked for (``include_total``)."""
        return {"total": self.total, "in_active_jobs": self.in_active_jobs}


#: The properties ``OrderCount.to_json`` adds to a page of orders.
ORDER_COUNT_PROPERTIES: dict[str, Schema] = {
    "total": {**COUNT, "description": "With `include_total=true`: every matching order."},
    "in_active_jobs": {
        **COUNT,
        "description": "With `include_total=true`: how many of them running jobs hold "
        "(a filter batch leaves them out).",
    },
}


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    orders: int
    total: Decimal


@dataclass(frozen=True, slots=True)
class SelectionTotals:
    #: Orders counted, per currency, largest first.
    currencies: list[CurrencyTotal]
    #: Orders whose lines cannot be invoiced, so have no total.
    without_total: int

    def to_json(self) -> dict[str, Any]:
        return {
            "currencies": [
                {
                    "currency": entry.currency,
                    "orders": entry.orders,
                    "total": money_text(entry.total, entry.currency),
                }
                for entry in self.currencies
            ],
            "orders": sum(entry.orders for entry in self.currencies) + self.without_total,
            "without_total": self.without_total,
        }


#: What ``SelectionTotals.to_json`` writes.
SELECTION_TOTALS_SCHEMA = closed_object(
    {
        "currencies": array(closed_object({"currency": CURRENCY, "orders": COUNT, "total": MONEY})),
        "orders": {**COUNT, "description": "Orders a filter batch would take now."},
        "without_total": {**COUNT, "description": "Of those, orders whose lines cannot be invoiced."},
    }
)


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """A customer as a filter offers it: who, and the currency its orders are in."""

    id: UUID
    name: str
    currency: str

    @classmethod
    def from_row(cls, row: Any) -> CustomerSummary:
        return cls(id=row["id"], name=row["name"], currency=row["currency"].strip())

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "name": self.name, "currency": self.currency}


#: What ``CustomerSummary.to_json`` writes.
CUSTOMER_SCHEMA = closed_object({"id": ID, "name": TEXT, "currency": CURRENCY})

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {
    "SalesOrder": SALES_ORDER_SCHEMA,
    "Customer": CUSTOMER_SCHEMA,
    "SalesOrderTotals": SELECTION_TOTALS_SCHEMA,
}
