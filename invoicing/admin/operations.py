"""What an organization's administrators watch: job health, failure patterns, the audit log.

Every query is scoped to one organization (and row-level security holds it there too); the
windows are bounded by indexed columns so the page stays cheap however long the history is.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from invoicing.admin.views import AuditEntry, ErrorPattern, OperationalStats, StuckJob
from invoicing.jobs.store import JOB
from invoicing.jobs.views import BatchJob

#: A pending job older than this has missed several sweeps (they run every minute).
PENDING_TOO_LONG_SECONDS = 5 * 60
WINDOW = "24 hours"
MAX_ERROR_PATTERNS = 10
MAX_STUCK_JOBS = 20

ACTIVE_JOBS = """
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'processing') AS processing,
       extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8
           AS oldest_pending_seconds
FROM batch_job_queue
WHERE organization_id = $1 AND status IN ('pending', 'processing')
"""

RECENT_JOBS = f"""
SELECT count(*) AS created,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(sum(successful_items), 0)::bigint AS items_succeeded,
       coalesce(sum(failed_items), 0)::bigint AS items_failed
FROM batch_job_queue
WHERE organization_id = $1 AND created_at > now() - interval '{WINDOW}'
"""

INVOICES_LAST_HOUR = """
SELECT count(*) FROM invoices WHERE organization_id = $1 AND created_at > now() - interval '1 hour'
"""

# The orders recent jobs worked on (cancelled and never-reached items excluded), and how many
# of them have their invoice now: made by one of those jobs, by a later one, or before (an
# order that failed as `already_invoiced` is invoiced all the same). An order that a job and
# its retry both processed counts once.
RECENT_ORDERS = f"""
WITH processed AS (
    SELECT DISTINCT item.order_id
    FROM batch_job_queue job
    JOIN batch_job_items item ON item.job_id = job.id AND item.status IN ('succeeded', 'failed')
    WHERE job.organization_id = $1 AND job.created_at > now() - interval '{WINDOW}'
)
SELECT count(*) AS orders_processed,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM invoices invoice
           WHERE invoice.organization_id = $1 AND invoice.sales_order_id = processed.order_id
       )) AS orders_invoiced
FROM processed
"""

# Failed orders of recent jobs by reason, the most frequent first, with the latest message.
# An order counts once, under the reason of its latest failure: one that failed in a job and
# again in its retry is one order, filed under why it failed last.
ERROR_PATTERNS = f"""
WITH latest_failure AS (
    SELECT DISTINCT ON (item.order_id) item.error_code, item.error_message, item.processed_at
    FROM batch_job_queue job
    JOIN batch_job_items item ON item.job_id = job.id AND item.status = 'failed'
    WHERE job.organization_id = $1 AND job.created_at > now() - interval '{WINDOW}'
    ORDER BY item.order_id, item.processed_at DESC NULLS LAST, job.created_at DESC
)
SELECT error_code AS code,
       count(*) AS count,
       max(processed_at) AS last_seen,
       (array_agg(error_message ORDER BY processed_at DESC NULLS LAST))[1] AS example
FROM latest_failure
GROUP BY error_code
ORDER BY count(*) DESC, error_code
LIMIT {MAX_ERROR_PATTERNS}
"""

# A processing job with a part whose lease ran out lost a worker; a long-pending one has none.
STUCK_JOBS = f"""
SELECT {JOB}, CASE WHEN status = 'processing' THEN 'lease_expired' ELSE 'waiting_for_worker' END AS reason
FROM batch_job_queue
WHERE organization_id = $1
  AND ((status = 'processing' AND EXISTS (
           SELECT 1 FROM batch_job_parts AS part
           WHERE part.job_id = batch_job_queue.id AND part.lease_owner IS NOT NULL
             AND part.lease_expires_at < now()))
       OR (status = 'pending' AND created_at < now() - make_interval(secs => $2)))
ORDER BY created_at
LIMIT {MAX_STUCK_JOBS}
"""

# Paged by the last entry's public id: the internal one, a global sequence, would tell an
# organization how busy the others are. A cursor naming no entry of this organization is no
# entry at all (the subquery is NULL, and nothing is below NULL): an empty page.
AUDIT_ENTRIES = """
SELECT entry.public_id AS id, entry.created_at, entry.action, entry.job_id, entry.detail,
       u.email AS user_email
FROM audit_log entry
LEFT JOIN users u ON u.id = entry.user_id
WHERE entry.organization_id = $1
  AND ($2::uuid IS NULL OR entry.id < (
      SELECT before.id FROM audit_log before WHERE before.public_id = $2 AND before.organization_id = $1
  ))
ORDER BY entry.id DESC
LIMIT $3
"""


async def operational_stats(connection: asyncpg.Connection, organization_id: UUID) -> OperationalStats:
    active = await connection.fetchrow(ACTIVE_JOBS, organization_id)
    recent = await connection.fetchrow(RECENT_JOBS, organization_id)
    orders = await connection.fetchrow(RECENT_ORDERS, organization_id)
    patterns = await connection.fetch(ERROR_PATTERNS, organization_id)
    stuck = await connection.fetch(STUCK_JOBS, organization_id, float(PENDING_TOO_LONG_SECONDS))
    return OperationalStats(
        pending_jobs=active["pending"],
        processing_jobs=active["processing"],
        oldest_pending_seconds=active["oldest_pending_seconds"],
        jobs_last_24h={name: int(value) for name, value in [*recent.items(), *orders.items()]},
        invoices_last_hour=await connection.fetchval(INVOICES_LAST_HOUR, organization_id),
        error_patterns=[ErrorPattern(**dict(row)) for row in patterns],
        stuck_jobs=[StuckJob(job=BatchJob.from_row(row), reason=row["reason"]) for row in stuck],
    )


async def audit_entries(
    connection: asyncpg.Connection, organization_id: UUID, *, before_id: UUID | None, limit: int
) -> list[AuditEntry]:
    """Newest first; ``before_id`` is the last entry of the previous page."""
    rows = await connection.fetch(AUDIT_ENTRIES, organization_id, before_id, limit)
    return [AuditEntry(**dict(row)) for row in rows]
