"""What the operations page shows, as the API writes it: one JSON serializer each and, beside
it, the schema of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from invoicing.jobs.views import BatchJob
from invoicing.kernel.json_schema import (
    COUNT,
    ID,
    NULLABLE_ID,
    NULLABLE_TEXT,
    TEXT,
    Schema,
    array,
    closed_object,
    enum,
    ref,
)
from invoicing.kernel.json_values import INSTANT, NULLABLE_INSTANT

#: Why a job counts as stuck: its worker's lease ran out, or no worker took it for too long.
STUCK_REASONS = ("lease_expired", "waiting_for_worker")
#: What the audit log records.
AUDIT_ACTIONS = ("job_created", "job_cancel_requested", "job_retried", "job_priority_changed")


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """Failed orders of one reason; ``count`` is distinct orders, each under its latest reason."""

    code: str
    count: int
    last_seen: datetime | None
    example: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "count": self.count,
            "last_seen": None if self.last_seen is None else self.last_seen.isoformat(),
            "example": self.example,
        }


#: What ``ErrorPattern.to_json`` writes.
ERROR_PATTERN_SCHEMA = closed_object(
    {"code": TEXT, "count": COUNT, "last_seen": NULLABLE_INSTANT, "example": NULLABLE_TEXT}
)


@dataclass(frozen=True, slots=True)
class StuckJob:
    job: BatchJob
    reason: str  # lease_expired | waiting_for_worker

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "job": self.job.to_json()}


#: What ``StuckJob.to_json`` writes.
STUCK_JOB_SCHEMA = closed_object({"reason": enum(STUCK_REASONS), "job": ref("BatchJob")})


@dataclass(frozen=True, slots=True)
class OperationalStats:
    pending_jobs: int
    processing_jobs: int
    oldest_pending_seconds: float | None
    jobs_last_24h: dict[str, int]
    invoices_last_hour: int
    error_patterns: list[ErrorPattern]
    stuck_jobs: list[StuckJob]

    @property
    def success_rate(self) -> float | None:
        """Of the orders the last 24 hours' jobs processed, the share that has its invoice now.

        Counted per order, not per item: a retry does not count an order twice, and an order
        refused as ``already_invoiced`` has its invoice. None when nothing was processed.
        """
        invoiced = self.jobs_last_24h["orders_invoiced"]
        processed = self.jobs_last_24h["orders_processed"]
        return None if processed == 0 else round(invoiced / processed, 4)

    def to_json(self) -> dict[str, Any]:
        return {
            "active": {
                "pending": self.pending_jobs,
                "processing": self.processing_jobs,
                "stuck": len(self.stuck_jobs),
                "oldest_pending_seconds": self.oldest_pending_seconds,
            },
            "last_24h": {**self.jobs_last_24h, "success_rate": self.success_rate},
            "invoices_last_hour": self.invoices_last_hour,
            "error_patterns": [pattern.to_json() for pattern in self.error_patterns],
            "stuck_jobs": [stuck.to_json() for stuck in self.stuck_jobs],
        }


_NULLABLE_SECONDS: Schema = {"type": ["number", "null"], "minimum": 0}

#: What ``OperationalStats.to_json`` writes.
OPERATIONAL_STATS_SCHEMA = closed_object(
    {
        "active": closed_object(
            {
                "pending": COUNT,
                "processing": COUNT,
                "stuck": COUNT,
                "oldest_pending_seconds": _NULLABLE_SECONDS,
            }
        ),
        "last_24h": closed_object(
            {
                "created": COUNT,
                "completed": COUNT,
                "failed": COUNT,
                "cancelled": COUNT,
                "items_succeeded": COUNT,
                "items_failed": COUNT,
                "orders_processed": COUNT,
                "orders_invoiced": COUNT,
                "success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            }
        ),
        "invoices_last_hour": COUNT,
        "error_patterns": array(ERROR_PATTERN_SCHEMA),
        "stuck_jobs": array(STUCK_JOB_SCHEMA),
    }
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: UUID  # the public id
    created_at: datetime
    action: str
    job_id: UUID | None
    user_email: str | None  # None for the system's own actions (the sweep)
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "job_id": None if self.job_id is None else str(self.job_id),
            "user_email": self.user_email,
            "detail": self.detail,
        }


#: What ``AuditEntry.to_json`` writes.
AUDIT_ENTRY_SCHEMA = closed_object(
    {
        "id": {**ID, "description": "Random: it reveals nothing of other organizations' activity."},
        "created_at": INSTANT,
        "action": enum(AUDIT_ACTIONS),
        "job_id": NULLABLE_ID,
        "user_email": NULLABLE_TEXT,
        "detail": {"type": "object"},
    }
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {"OperationalStats": OPERATIONAL_STATS_SCHEMA, "AuditEntry": AUDIT_ENTRY_SCHEMA}
