"""Every SQL statement that changes a job's or an item's status, with the operation it performs.

The tables of allowed transitions are in ``invoicing/domain/job_states.py``. A statement either
names the statuses it moves from in its own WHERE clause, or runs only after one that does:
``after`` lists the statements that proved, earlier in the same transaction and under the same
row lock, which status the job is in (the lease check of a chunk, the failing-run or
crashed-job reads of a failure). ``tests/unit/test_job_transitions.py`` reads each statement
and checks every move it can make against the tables, so an illegal transition fails the test.
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
    #: Statements run before it in its transaction that select the row by status.
    after: tuple[str, ...] = ()
    #: Item statuses a statement sets from its parameters (``status = found.status``).
    item_targets: tuple[ItemStatus, ...] = ()


#: The lease check every chunk and every cancel-at-chunk-boundary runs first.
_LEASED = (progress.RENEW_LEASE,)
#: The reads of a failed run: the worker's own, or the sweep's crashed jobs.
_FAILING = (leases.OWN_FAILING_JOB, leases.CRASHED_JOBS)

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
    StatusChange("RECORD_PROGRESS", progress.RECORD_PROGRESS, Operation.record_chunk, after=_LEASED),
    StatusChange("FINISH_CANCELLED", progress.FINISH_CANCELLED, Operation.cancel, after=_LEASED + _FAILING),
    StatusChange("FINISH_COMPLETED", progress.FINISH_COMPLETED, Operation.close_completed, after=_LEASED),
    StatusChange("GIVE_UP_JOB", leases.GIVE_UP_JOB, Operation.give_up, after=_FAILING),
)
