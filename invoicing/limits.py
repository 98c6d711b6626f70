"""Abuse limits: fixed-window counters in Redis, and the active-job cap read from PostgreSQL.

The counters live in Redis so that every server process shares them. They fail open: when
Redis cannot be reached a limit logs a warning and lets the request through, because
PostgreSQL is the truth for invoicing and a Redis outage must not stop customers from
invoicing (the same stance as the queue, which the sweep makes up for).

Job requests are counted twice: jobs created against ``JOB_CREATE_PER_MINUTE`` (a count is
reserved before the job is written and given back if none was), and refused requests
(malformed, over a limit, nothing to do) against the larger ``BAD_REQUESTS_PER_MINUTE``, so a
client that only sends garbage is slowed down without eating into its real quota.

The active-job cap is exact: it is checked inside the transaction that inserts the job, under
a lock per organization, so parallel submits cannot all count the same jobs and slip past it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast
from uuid import UUID

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from invoicing import keys
from invoicing.errors import InvoicingError, ServiceUnavailable, TooManyRequests
from invoicing.principal import Principal
from invoicing.settings import Settings

logger = logging.getLogger(__name__)

JOB_CREATE_WINDOW_SECONDS = 60
REFUSED_REQUESTS_WINDOW_SECONDS = 60
LOGIN_WINDOW_SECONDS = 15 * 60
# A hint only: active jobs end when they end; polling every few seconds is cheap.
ACTIVE_JOBS_RETRY_AFTER_SECONDS = 10

# Refuses (without counting) while any counter is at the limit; otherwise counts on all of
# them. Checking and counting in one script keeps parallel requests from all slipping in
# between a check and a count. Returns {allowed (0|1), seconds until the blocking window ends}.
_HIT_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= limit then
        local ttl = redis.call('TTL', key)
        if ttl < 0 then
            redis.call('EXPIRE', key, window)
            ttl = window
        end
        wait = math.max(wait, ttl, 1)
    end
end
if wait > 0 then
    return {0, wait}
end
for _, key in ipairs(KEYS) do
    redis.call('INCR', key)
    if redis.call('TTL', key) < 0 then
        redis.call('EXPIRE', key, window)
    end
end
return {1, 0}
"""

# Gives back one count, never below zero (a DECR on an expired key would leave -1 forever).
_REFUND_SCRIPT = """
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') > 0 then
        redis.call('DECR', key)
    end
end
return 0
"""

# Submits of one organization take turns on this lock, held until their transaction ends, so
# each counts the jobs the ones before it committed. Tried, never waited for: a submit that
# finds it taken gives its connection back and tries again (invoicing/batches.py). The two-key
# form has its own key space, apart from the single-key locks of migrations and the sweep; the
# first key names this use.
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


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int  # seconds until a refused caller may try again; 0 when allowed
    #: The request was counted (False when refused, or let through because Redis is down):
    #: only a counted request may be refunded.
    counted: bool = False


#: Let through uncounted: Redis cannot be reached.
ALLOWED = RateDecision(allowed=True, retry_after=0)


async def hit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> RateDecision:
    """Count one request against ``limit`` per window; a refused request is not counted."""
    return await hit_all(redis, (key,), limit=limit, window_seconds=window_seconds)


async def hit_all(redis: Redis, counters: Sequence[str], *, limit: int, window_seconds: int) -> RateDecision:
    """Like :func:`hit` over several counters at once: refused if any of them is at the limit."""
    try:
        allowed, wait = await _run(redis, _HIT_SCRIPT, counters, str(limit), str(window_seconds))
    except (RedisError, OSError) as exc:
        logger.warning("rate limit not enforced, Redis is unavailable: %s", exc)
        return ALLOWED
    return RateDecision(allowed=bool(allowed), retry_after=int(wait), counted=bool(allowed))


async def refund(redis: Redis, counters: Sequence[str]) -> None:
    """Take back one count from each counter (e.g. a login attempt that succeeded)."""
    try:
        await _run(redis, _REFUND_SCRIPT, counters)
    except (RedisError, OSError) as exc:
        logger.warning("could not refund a rate limit count, Redis is unavailable: %s", exc)


async def _run(redis: Redis, script: str, counters: Sequence[str], *args: str) -> list[int]:
    # redis-py types eval for both its sync and async clients; this one is async.
    reply = redis.eval(script, len(counters), *counters, *args)
    return await cast("Awaitable[list[int]]", reply)


async def _count_or_refuse(
    redis: Redis, counter: str, *, limit: int, window_seconds: int, refusal: str
) -> RateDecision:
    """Count one against ``counter``, or raise TooManyRequests (``rate_limited``) saying
    ``refusal`` and when to try again."""
    decision = await hit(redis, counter, limit=limit, window_seconds=window_seconds)
    if not decision.allowed:
        raise TooManyRequests(
            f"{refusal}; try again in {decision.retry_after} seconds.", retry_after=decision.retry_after
        )
    return decision


@asynccontextmanager
async def job_creation_quota(redis: Redis, settings: Settings, principal: Principal) -> AsyncIterator[None]:
    """One of the user's ``JOB_CREATE_PER_MINUTE`` jobs, for a block that creates one.

    TooManyRequests (``rate_limited``) when the user has none left. The count is taken before
    the block runs, so parallel requests cannot all pass a check that none of them has counted
    yet, and given back if the block raises (a refusal, an outage): only created jobs count.
    """
    counter = keys.job_creation_limit(settings.redis_prefix, principal.user_id)
    decision = await _count_or_refuse(
        redis,
        counter,
        limit=settings.job_create_per_minute,
        window_seconds=JOB_CREATE_WINDOW_SECONDS,
        refusal=f"At most {settings.job_create_per_minute} batch jobs per minute",
    )
    try:
        yield
    except BaseException:
        if decision.counted:
            await refund(redis, (counter,))
        raise


@asynccontextmanager
async def refusals_counted(redis: Redis, settings: Settings, principal: Principal) -> AsyncIterator[None]:
    """Count a job request against the user's ``BAD_REQUESTS_PER_MINUTE`` if the block refuses it.

    While the user is over that limit, every job request is refused at once (TooManyRequests
    ``rate_limited``), before its body is even read. A refusal is an ``InvoicingError`` other
    than ``ServiceUnavailable`` (an outage is not the client's doing). Like the job quota, the
    count is reserved first and given back when the request was not refused.
    """
    counter = keys.refused_job_requests_limit(settings.redis_prefix, principal.user_id)
    decision = await _count_or_refuse(
        redis,
        counter,
        limit=settings.bad_requests_per_minute,
        window_seconds=REFUSED_REQUESTS_WINDOW_SECONDS,
        refusal=f"More than {settings.bad_requests_per_minute} refused batch job requests in a minute",
    )
    refused = False
    try:
        yield
    except InvoicingError as error:
        refused = not isinstance(error, ServiceUnavailable)
        raise
    finally:
        if decision.counted and not refused:
            await refund(redis, (counter,))


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


def login_counters(settings: Settings, email: str, address: str) -> tuple[str, str]:
    """The per-account and per-address counters of failed logins.

    The email is normalized as login does, so case and spaces do not give extra attempts, and
    hashed, so Redis holds no email addresses. Unknown emails are counted exactly like known
    ones: the answers never tell whether an account exists.
    """
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return (
        keys.login_failures_by_account(settings.redis_prefix, digest),
        keys.login_failures_by_address(settings.redis_prefix, address),
    )


async def reserve_login_attempt(redis: Redis, settings: Settings, counters: Sequence[str]) -> RateDecision:
    """Count an attempt as failed before checking the password; refund it if it succeeds.

    Counting first means a burst of parallel guesses cannot all be checked before the first
    failure is recorded.
    """
    return await hit_all(
        redis, counters, limit=settings.login_failures_per_15_min, window_seconds=LOGIN_WINDOW_SECONDS
    )


def login_retry_message(retry_after: int) -> str:
    minutes = max(1, math.ceil(retry_after / 60))
    return f"Too many failed attempts; try again in {minutes} minute{'' if minutes == 1 else 's'}."
