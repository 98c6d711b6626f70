"""Domain objects read from storage, each with ``from_row`` and one JSON serializer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from invoicing.domain.jobs import JobStatus, progress_metrics
from invoicing.domain.money import round_money

#: Who started a job when they are no longer a member of its organization: never their id.
FORMER_MEMBER = "a former member"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def money_text(amount: Decimal, currency: str) -> str:
    """An amount as a string with exactly the currency's minor digits (JSON has no decimals)."""
    return str(round_money(amount, currency))


def _plain(number: Decimal) -> str:
    """A quantity or percentage without trailing zeros and never in exponent form."""
    return format(number.normalize(), "f")


@dataclass(frozen=True, slots=True)
class BatchJob:
    id: UUID
    organization_id: UUID
    job_type: str
    status: JobStatus
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    cancelled_items: int
    payload: dict[str, Any]
    errors: list[dict[str, Any]]
    created_by: UUID
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    cancel_requested: bool
    attempts: int
    enqueue_generation: int
    progress_seq: int
    retry_of: UUID | None
    #: Read beside the row (``storage.jobs.job_columns``), not stored in it: the starter's name
    #: (else email; None once they left the organization) and the job that retried this one.
    created_by_name: str | None
    retried_as: UUID | None

    DERIVED_FIELDS: ClassVar[tuple[str, ...]] = ("created_by_name", "retried_as")

    @classmethod
    def from_row(cls, row: Any) -> BatchJob:
        return cls(
            **{name: row[name] for name in cls.__slots__ if name != "status"}, status=JobStatus(row["status"])
        )

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        metrics = progress_metrics(
            total=self.total_items,
            processed=self.processed_items,
            started_at=self.started_at,
            now=(self.completed_at or now or datetime.now(UTC)),
            status=self.status.value,
        )
        return {
            "id": str(self.id),
            "organization_id": str(self.organization_id),
            "job_type": self.job_type,
            "status": self.status.value,
            "total_items": self.total_items,
            "processed_items": self.processed_items,
            "successful_items": self.successful_items,
            "failed_items": self.failed_items,
            "cancelled_items": self.cancelled_items,
            "errors": self.errors,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "created_by": str(self.created_by),
            "created_by_name": self.created_by_name or FORMER_MEMBER,
            "cancel_requested": self.cancel_requested,
            "progress": metrics.progress,
            "items_per_second": metrics.items_per_second,
            "eta_seconds": metrics.eta_seconds,
            "seq": self.progress_seq,
            "retry_of": None if self.retry_of is None else str(self.retry_of),
            "retried_as": None if self.retried_as is None else str(self.retried_as),
        }


@dataclass(frozen=True, slots=True)
class BatchJobItem:
    position: int
    order_id: UUID
    order_number: str | None
    status: str
    invoice_id: UUID | None
    invoice_number: str | None
    error_code: str | None
    error_message: str | None
    processed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> BatchJobItem:
        return cls(**{name: row[name] for name in cls.__slots__})

    def to_json(self) -> dict[str, Any]:
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message or ""}
        return {
            "position": self.position,
            "order_id": str(self.order_id),
            "order_number": self.order_number,
            "status": self.status,
            "invoice_id": None if self.invoice_id is None else str(self.invoice_id),
            "invoice_number": self.invoice_number,
            "error": error,
            "processed_at": _iso(self.processed_at),
        }


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
            "created_at": _iso(self.created_at),
        }
        if self.lines is not None:
            body["lines"] = [_invoice_line_json(line, self.currency) for line in self.lines]
        return body


def _invoice_line_json(row: Any, currency: str) -> dict[str, Any]:
    return {
        "position": row["position"],
        "description": row["description"],
        "quantity": _plain(row["quantity"]),
        "unit_price": _plain(row["unit_price"]),
        "discount_percent": _plain(row["discount_percent"]),
        "tax_rate_percent": _plain(row["tax_rate_percent"]),
        "net_amount": money_text(row["net_amount"], currency),
    }
