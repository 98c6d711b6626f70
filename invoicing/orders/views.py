"""Orders and customers as the API shows them, each with ``from_row`` and one JSON serializer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from invoicing.domain.money import money_text


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
