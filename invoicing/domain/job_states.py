"""What can happen to a batch job and to each of its items: statuses and transitions.

The transition tables below are the whole state machine. Every SQL statement that changes a
status lives in ``invoicing/jobs/`` and is listed in ``invoicing/jobs/transitions.py`` with the
operation it performs; a test reads each statement and checks it against these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

JOB_TYPE_BULK_INVOICE = "bulk_invoice_generation"


class JobStatus(StrEnum):
    """Life cycle of a batch job: pending → processing → completed | failed | cancelled."""

    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_finished(self) -> bool:
        """True once the job can no longer change (completed, failed or cancelled)."""
        return self.value in FINISHED_VALUES


FINISHED_VALUES = frozenset(
    status.value for status in (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)
)


class Priority(StrEnum):
    """How soon a job should run: urgent (admins only), normal (the default) or low."""

    urgent = "urgent"
    normal = "normal"
    low = "low"


class ItemStatus(StrEnum):
    """Outcome of one order inside a batch."""

    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Operation(StrEnum):
    """What moves a job or an item from one status to another."""

    #: A person or client creates the job and its items (the retry of a job too).
    submit = "submit"
    #: A worker takes the job: a new one, or one handed back after a failed run.
    claim = "claim"
    #: Someone cancels: at once if no worker holds the job, else its pending items at the next chunk.
    cancel = "cancel"
    #: A chunk commits its orders' outcomes; the last one completes the job.
    record_chunk = "record_chunk"
    #: The last pass found no pending item although the counters said some remained.
    close_completed = "close_completed"
    #: The job kept failing at the same place (or its worker kept dying): failed for good.
    give_up = "give_up"


S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Transition(Generic[S]):
    """``source`` → ``target`` by ``operation``; a ``source`` of None creates the row."""

    source: S | None
    target: S
    operation: Operation


JOB_TRANSITIONS: tuple[Transition[JobStatus], ...] = (
    Transition(None, JobStatus.pending, Operation.submit),
    Transition(JobStatus.pending, JobStatus.processing, Operation.claim),
    Transition(JobStatus.pending, JobStatus.cancelled, Operation.cancel),
    Transition(JobStatus.processing, JobStatus.cancelled, Operation.cancel),
    Transition(JobStatus.processing, JobStatus.completed, Operation.record_chunk),
    Transition(JobStatus.processing, JobStatus.completed, Operation.close_completed),
    Transition(JobStatus.processing, JobStatus.failed, Operation.give_up),
)

ITEM_TRANSITIONS: tuple[Transition[ItemStatus], ...] = (
    Transition(None, ItemStatus.pending, Operation.submit),
    Transition(ItemStatus.pending, ItemStatus.succeeded, Operation.record_chunk),
    Transition(ItemStatus.pending, ItemStatus.failed, Operation.record_chunk),
    Transition(ItemStatus.pending, ItemStatus.cancelled, Operation.cancel),
    Transition(ItemStatus.pending, ItemStatus.failed, Operation.give_up),
)


def allows(transitions: tuple[Transition[S], ...], source: S | None, target: S, operation: Operation) -> bool:
    """Whether ``operation`` may move a row from ``source`` to ``target`` (staying put always may)."""
    if source == target:
        return True
    return Transition(source, target, operation) in transitions


# Why an item failed when no invoice rule refused its order (the rules' codes are in
# invoice_rules): each is that order's alone, and retrying the job may well invoice it.
#: Held by someone else (an ERP, another job) for longer than LOCKED_ORDER_WAIT_SECONDS.
ORDER_LOCKED = "order_locked"
#: PostgreSQL refused the invoice's values (a constraint, a value it cannot hold).
STORAGE_REJECTED = "storage_rejected"
#: Deciding the invoice raised an unexpected error (a bug: logged with the order's id).
PROCESSING_ERROR = "processing_error"
