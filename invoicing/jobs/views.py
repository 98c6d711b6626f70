"""Batch jobs and their items as the API shows them, each with ``from_row`` and one JSON serializer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from invoicing.domain.job_progress import progress_metrics
from invoicing.domain.job_states import JobStatus
from invoicing.kernel.json_values import iso_time

#: Who started a job when they are no longer a member of its organization: never their id.
FORMER_MEMBER = "a former member"


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
    #: Read beside the row (``invoicing.jobs.store.job_columns``), not stored in it: the starter's name
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
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "completed_at": iso_time(self.completed_at),
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
            "processed_at": iso_time(self.processed_at),
        }
