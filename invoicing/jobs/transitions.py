"""Every SQL statement that changes a job's or an item's status, with the operation it performs.

The tables of allowed transitions are in ``invoicing/domain/job_states.py``. Each statement
names, in its own WHERE clause, the statuses it moves rows from (even where an earlier
statement of its transaction already proved it, such as a chunk's lease check), so that
``tests/unit/test_job_transitions.py`` can parse it with PostgreSQL's own parser and check
every move it can make against the tables: an illegal transition fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoicing.domain.job_states import ItemStatus, Operation
from invoicing.jobs import leases, progress, store


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A statement changing statuses: its name, its SQL, and what it does."""

    name: str
    sql: str
    operation: Operation
    #: Item statuses a statement sets from its parameters (``status = found.status``).
    item_targets: tuple[ItemStatus, ...] = ()


STATUS_CHANGES: tuple[StatusChange, ...] = (
    StatusChange("INSERT_JOB", store.INSERT_JOB, Operation.submit),
    StatusChange("INSERT_ITEMS", store.INSERT_ITEMS, Operation.submit),
    StatusChange("CLAIM_JOB", leases.CLAIM_JOB, Operation.claim),
    StatusChange("REQUEST_CANCEL", store.REQUEST_CANCEL, Operation.cancel),
    StatusChange("CANCEL_PENDING_ITEMS", store.CANCEL_PENDING_ITEMS, Operation.cancel),
    StatusChange(
        "RECORD_ITEMS",
        progress.RECORD_ITEMS,
        Operation.record_chunk,
        item_targets=(ItemStatus.succeeded, ItemStatus.failed),
    ),
    StatusChange("RECORD_PROGRESS", progress.RECORD_PROGRESS, Operation.record_chunk),
    StatusChange("FINISH_CANCELLED", progress.FINISH_CANCELLED, Operation.cancel),
    StatusChange("FINISH_COMPLETED", progress.FINISH_COMPLETED, Operation.close_completed),
    StatusChange("GIVE_UP_JOB", leases.GIVE_UP_JOB, Operation.give_up),
)
