"""Batch jobs and their items as the API shows them: each with ``from_row``, one JSON serializer
and, beside it, the schema of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from invoicing.domain.job_progress import progress_metrics
from invoicing.domain.job_states import ItemStatus, JobStatus, Priority
from invoicing.kernel.json_schema import (
    BOOLEAN,
    COUNT,
    ID,
    NULLABLE_ID,
    NULLABLE_TEXT,
    POSITION,
    TEXT,
    Schema,
    array,
    closed_object,
    enum,
    ref,
)
from invoicing.kernel.json_values import INSTANT, NULLABLE_INSTANT, iso_time

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
    priority: Priority
    #: Read beside the row (``invoicing.jobs.store.job_columns``), not stored in it: the starter's name
    #: (else email; None once they left the organization) and the job that retried this one.
    created_by_name: str | None
    retried_as: UUID | None
    #: Workers holding the job right now (its lease is held and alive): 0 or 1.
    active_workers: int

    DERIVED_FIELDS: ClassVar[tuple[str, ...]] = ("created_by_name", "retried_as", "active_workers")

    @classmethod
    def from_row(cls, row: Any) -> BatchJob:
        return cls(
            **{name: row[name] for name in cls.__slots__ if name not in ("status", "priority")},
            status=JobStatus(row["status"]),
            priority=Priority(row["priority"]),
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
            "finished": self.is_finished,
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
            "priority": self.priority.value,
            "active_workers": self.active_workers,
            "progress": metrics.progress,
            "items_per_second": metrics.items_per_second,
            "eta_seconds": metrics.eta_seconds,
            "seq": self.progress_seq,
            "retry_of": None if self.retry_of is None else str(self.retry_of),
            "retried_as": None if self.retried_as is None else str(self.retried_as),
        }


#: One entry of a job's ``errors``: a job-level error (no ``order_id``) or a failed order.
JOB_ERROR_SCHEMA = closed_object({"order_id": ID, "code": TEXT, "message": TEXT}, optional=("order_id",))

#: What ``BatchJob.to_json`` writes.
BATCH_JOB_SCHEMA = closed_object(
    {
        "id": ID,
        "organization_id": ID,
        "job_type": TEXT,
        "status": enum(JobStatus),
        "finished": {
            **BOOLEAN,
            "description": "True once the status is final (completed, failed or cancelled): test "
            "this, not a list of statuses.",
        },
        "total_items": COUNT,
        "processed_items": COUNT,
        "successful_items": COUNT,
        "failed_items": COUNT,
        "cancelled_items": COUNT,
        "errors": array(ref("JobError"), description="A sample; every failure is in the items."),
        "created_at": INSTANT,
        "started_at": NULLABLE_INSTANT,
        "completed_at": NULLABLE_INSTANT,
        "created_by": ID,
        "created_by_name": {
            **TEXT,
            "description": "Who started it, in words: their name, else their email; "
            f'"{FORMER_MEMBER}" once they left the organization. Never an id.',
        },
        "cancel_requested": BOOLEAN,
        "priority": {
            **enum(Priority),
            "description": "Runnable work goes by priority first (a low job climbs a class for every "
            "PRIORITY_AGING_SECONDS it waits, up to urgent), then the organization served least "
            "recently, then the oldest job.",
        },
        "active_workers": {**COUNT, "description": "Workers running the job right now."},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "items_per_second": {"type": ["number", "null"], "minimum": 0},
        "eta_seconds": {"type": ["number", "null"], "minimum": 0},
        "seq": {"type": "integer", "description": "Grows with every change of the job."},
        "retry_of": {**NULLABLE_ID, "description": "The finished job this one retries."},
        "retried_as": {**NULLABLE_ID, "description": "The job that retried this one, if any."},
    }
)


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


#: What ``BatchJobItem.to_json`` writes.
BATCH_JOB_ITEM_SCHEMA = closed_object(
    {
        "position": POSITION,
        "order_id": ID,
        "order_number": NULLABLE_TEXT,
        "status": enum(ItemStatus),
        "invoice_id": NULLABLE_ID,
        "invoice_number": {**NULLABLE_TEXT, "description": "The invoice created, if any."},
        "error": {"oneOf": [{"type": "null"}, closed_object({"code": TEXT, "message": TEXT})]},
        "processed_at": NULLABLE_INSTANT,
    }
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {
    "JobError": JOB_ERROR_SCHEMA,
    "BatchJob": BATCH_JOB_SCHEMA,
    "BatchJobItem": BATCH_JOB_ITEM_SCHEMA,
}
