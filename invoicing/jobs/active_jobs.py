"""The active-job cap: one organization's submits one at a time, its active jobs counted."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from invoicing.kernel.errors import TooManyRequests

# A hint only: active jobs end when they end; polling every few seconds is cheap.
ACTIVE_JOBS_RETRY_AFTER_SECONDS = 10


# Submits of one organization take turns on this lock, held until their transaction ends, so
# each counts the jobs the ones before it committed. Tried, never waited for: a submit that
# finds it taken gives its connection back and tries again (invoicing/jobs/actions.py). The
# two-key form has its own key space, apart from the single-key locks of migrations and the
# sweep; the first key names this use.
TRY_LOCK_ORGANIZATION_SUBMITS = "SELECT pg_try_advisory_xact_lock($1, $2)"
SUBMIT_LOCK_CLASS = 724_031_503


# Bounded by the limit, so an organization with many active jobs costs no more than the cap.
COUNT_ACTIVE_JOBS = """
SELECT count(*) FROM (
    SELECT 1 FROM batch_job_queue
    WHERE organization_id = $1 AND status IN ('pending', 'processing')
    LIMIT $2
) AS active
"""


async def try_lock_submits(connection: asyncpg.Connection, organization_id: UUID) -> bool:
    """Take the organization's submit lock for this transaction, if no other transaction has it."""
    taken: bool = await connection.fetchval(
        TRY_LOCK_ORGANIZATION_SUBMITS, SUBMIT_LOCK_CLASS, submit_lock_key(organization_id)
    )
    return taken


async def check_active_jobs(connection: asyncpg.Connection, organization_id: UUID, cap: int) -> None:
    """Raise TooManyRequests if the organization already has ``cap`` pending or processing jobs.

    Call inside the transaction that then inserts the job, once ``try_lock_submits`` took the
    organization's lock: held to the transaction's end, it keeps any parallel submit from
    counting until this one is committed.
    """
    active = await count_active_jobs(connection, organization_id, cap)
    if active >= cap:
        raise TooManyRequests(
            f"The organization already has {active} batch jobs pending or processing; "
            "wait for some to finish or cancel them.",
            retry_after=ACTIVE_JOBS_RETRY_AFTER_SECONDS,
            code="too_many_active_jobs",
        )


def submit_lock_key(organization_id: UUID) -> int:
    """The organization's 32-bit lock key: its id's first bytes, random in a version 4 uuid.

    Two organizations that share a key only wait for each other's submits; counts stay exact.
    """
    return int.from_bytes(organization_id.bytes[:4], "big", signed=True)


async def count_active_jobs(connection: asyncpg.Connection, organization_id: UUID, cap: int) -> int:
    """Pending and processing jobs of the organization, counted up to ``cap``."""
    count: int = await connection.fetchval(COUNT_ACTIVE_JOBS, organization_id, cap)
    return count
