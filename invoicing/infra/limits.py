"""Abuse limits: per-user counters in Redis (``Limiter``), which the limited use cases apply.

The counters live in Redis so that every server process shares them. They fail open: when
Redis cannot be reached a limit logs a warning and lets the request through, because
PostgreSQL is the truth for invoicing and a Redis outage must not stop customers from
invoicing (the same stance as the queue, which the sweep makes up for).

Job requests are counted twice: jobs created against ``JOB_CREATE_PER_MINUTE`` (a count is
reserved before the job is written and given back if none was), and refused requests
(malformed, over a limit, nothing to do) against the larger ``BAD_REQUESTS_PER_MINUTE``, so a
client that only sends garbage is slowed down without eating into its real quota.

Failed logins are counted with growing waits instead (``invoicing/domain/login_backoff.py``):
per client address and per account for browsers that never logged in to the account, per
device for those that did (``invoicing/accounts/devices.py``), so that nobody's failures hold back
another person's known browser.

The active-job cap is not counted here but in PostgreSQL (``invoicing/jobs/active_jobs.py``):
it is exact, checked inside the transaction that inserts the job, under a lock per
organization, so parallel submits cannot all count the same jobs and slip past it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from invoicing.domain.emails import normalized_email
from invoicing.domain.login_backoff import (
    FORGET_AFTER_SECONDS,
    Backoff,
    account_backoff,
    address_backoff,
    device_trust,
)
from invoicing.infra import redis_keys as keys
from invoicing.kernel.errors import InvoicingError, ServiceUnavailable, TooManyRequests
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings

logger = logging.getLogger(__name__)

JOB_CREATE_WINDOW_SECONDS = 60
REFUSED_REQUESTS_WINDOW_SECONDS = 60

#: Lua: ``now_ms``, the time in milliseconds by Redis's clock, so that server processes on hosts
#: whose clocks disagree still agree on when a wait or a lease ends.
REDIS_NOW_MS = """
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

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

# Counts a login attempt as failed before its password is checked, on counters whose wait grows
# with their failures. Each counter is a hash: `failures`, and `last_ms`, Redis's clock at the
# last attempt counted (one clock for every server process). Refuses, counting nothing, while
# the wait after any counter's last failure runs; otherwise counts on every counter at once, so
# parallel guesses cannot all be checked before the first failure is recorded. ARGV[1]: seconds
# a counter is kept once its wait is over; ARGV[2]: JSON, one schedule per key, in order:
# {"free": failures without a wait, "waits": seconds after free, free + 1, ... failures, the
# last one holding from there on}. Returns {allowed (0|1), seconds to wait when refused}.
_LOGIN_RESERVE_SCRIPT = (
    REDIS_NOW_MS
    + """
local keep = tonumber(ARGV[1])
local schedules = cjson.decode(ARGV[2])
local function wait_ms(schedule, failures)
    local beyond = failures - schedule.free
    if beyond < 0 then
        return 0
    end
    return 1000 * schedule.waits[math.min(beyond, #schedule.waits - 1) + 1]
end
local longest = 0
for i, key in ipairs(KEYS) do
    local state = redis.call('HMGET', key, 'failures', 'last_ms')
    local failures = tonumber(state[1] or '0')
    local last_ms = tonumber(state[2] or '0')
    longest = math.max(longest, last_ms + wait_ms(schedules[i], failures) - now_ms)
end
if longest > 0 then
    return {0, math.ceil(longest / 1000)}
end
for i, key in ipairs(KEYS) do
    local failures = redis.call('HINCRBY', key, 'failures', 1)
    redis.call('HSET', key, 'last_ms', string.format('%d', now_ms))
    redis.call('EXPIRE', key, keep + math.ceil(wait_ms(schedules[i], failures) / 1000))
end
return {1, 0}
"""
)

# Gives back a login attempt's count, never below zero. `last_ms` keeps the attempt's time (the
# value it replaced is gone, and with parallel attempts there is no one value to restore): a
# counter already past its free failures times its wait from that success, a little stricter
# than from its last failure.
_LOGIN_REFUND_SCRIPT = """
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('HGET', key, 'failures') or '0') > 0 then
        redis.call('HINCRBY', key, 'failures', -1)
    end
end
return 0
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
        allowed, wait = await run_script(redis, _HIT_SCRIPT, counters, str(limit), str(window_seconds))
    except (RedisError, OSError) as exc:
        logger.warning("rate limit not enforced, Redis is unavailable: %s", exc)
        return ALLOWED
    return RateDecision(allowed=bool(allowed), retry_after=int(wait), counted=bool(allowed))


async def refund(redis: Redis, counters: Sequence[str]) -> None:
    """Take back one count from each counter (a request that turned out not to count)."""
    try:
        await run_script(redis, _REFUND_SCRIPT, counters)
    except (RedisError, OSError) as exc:
        logger.warning("could not refund a rate limit count, Redis is unavailable: %s", exc)


async def run_script(redis: Redis, script: str, counters: Sequence[str], *args: str) -> list[int]:
    """Run the Lua ``script`` with ``counters`` as its KEYS and ``args`` as its ARGV; its reply."""
    # redis-py types eval for both its sync and async clients; this one is async.
    reply = redis.eval(script, len(counters), *counters, *args)
    return await cast("Awaitable[list[int]]", reply)


@dataclass(frozen=True, slots=True)
class LoginCounters:
    """The failure counters a login attempt may be counted on."""

    account: str
    address: str
    #: The known device's own counter, when the browser sent a valid device cookie for the email.
    device: str | None = None


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    allowed: bool
    retry_after: int  # seconds until a refused attempt may be made again; 0 when allowed
    #: The counters this attempt was counted on, to give back if the password is right (none
    #: when refused, or let through because Redis is down).
    counted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limiter:
    """The per-user counters of one server process, in the Redis every process shares.

    The edge builds one and hands it to the use cases that are limited (submitting and retrying
    a job, logging in): they apply it themselves, so no path to them can forget it.
    """

    redis: Redis
    settings: Settings

    @asynccontextmanager
    async def job_creation_quota(self, principal: Principal) -> AsyncIterator[None]:
        """One of the user's ``JOB_CREATE_PER_MINUTE`` jobs, for a block that creates one.

        TooManyRequests (``rate_limited``) when the user has none left. The count is taken before
        the block runs, so parallel requests cannot all pass a check that none of them has counted
        yet, and given back if the block raises (a refusal, an outage): only created jobs count.
        """
        counter = keys.job_creation_limit(self.settings.redis_prefix, principal.user_id)
        limit = self.settings.job_create_per_minute
        decision = await self._count_or_refuse(
            counter,
            limit=limit,
            window_seconds=JOB_CREATE_WINDOW_SECONDS,
            refusal=f"At most {limit} batch jobs per minute",
        )
        try:
            yield
        except BaseException:
            if decision.counted:
                await refund(self.redis, (counter,))
            raise

    @asynccontextmanager
    async def refusals_counted(self, principal: Principal) -> AsyncIterator[None]:
        """Count a job request against the user's ``BAD_REQUESTS_PER_MINUTE`` if the block refuses it.

        While the user is over that limit, every job request is refused at once (TooManyRequests
        ``rate_limited``), before its body is even read. A refusal is an ``InvoicingError`` other
        than ``ServiceUnavailable`` (an outage is not the client's doing). Like the job quota, the
        count is reserved first and given back when the request was not refused.
        """
        counter = keys.refused_job_requests_limit(self.settings.redis_prefix, principal.user_id)
        limit = self.settings.bad_requests_per_minute
        decision = await self._count_or_refuse(
            counter,
            limit=limit,
            window_seconds=REFUSED_REQUESTS_WINDOW_SECONDS,
            refusal=f"More than {limit} refused batch job requests in a minute",
        )
        refused = False
        try:
            yield
        except InvoicingError as error:
            refused = not isinstance(error, ServiceUnavailable)
            raise
        finally:
            if decision.counted and not refused:
                await refund(self.redis, (counter,))

    async def _count_or_refuse(
        self, counter: str, *, limit: int, window_seconds: int, refusal: str
    ) -> RateDecision:
        """Count one against ``counter``, or raise TooManyRequests (``rate_limited``) saying
        ``refusal`` and when to try again."""
        decision = await hit(self.redis, counter, limit=limit, window_seconds=window_seconds)
        if not decision.allowed:
            raise TooManyRequests(
                f"{refusal}; try again in {decision.retry_after} seconds.", retry_after=decision.retry_after
            )
        return decision

    def login_counters(self, email: str, address: str, device: str | None = None) -> LoginCounters:
        """The per-account and per-address counters of failed logins, and the known device's when
        ``device`` (the nonce of a device cookie valid for this email) is given.

        The email is normalized as login does, so case and spaces do not give extra attempts, and
        hashed, so Redis holds no email addresses. Unknown emails are counted exactly like known
        ones: the answers never tell whether an account exists.
        """
        digest = hashlib.sha256(normalized_email(email).encode()).hexdigest()
        prefix = self.settings.redis_prefix
        return LoginCounters(
            account=keys.login_failures_by_account(prefix, digest),
            address=keys.login_failures_by_address(prefix, address),
            device=None if device is None else keys.login_failures_by_device(prefix, device),
        )

    async def reserve_login_attempt(self, counters: LoginCounters) -> LoginAttempt:
        """Count an attempt as failed before checking the password; refund it if it succeeds.

        A known device is counted on its own counter only: failures that others cause against the
        account, or from its address, never hold it back. Past its free failures it is trusted no
        more for a while, and counted like an unknown device: on the account's and the address's
        counters, whose waits grow with their failures. Counting first means a burst of parallel
        guesses cannot all be checked before the first failure is recorded.
        """
        free = self.settings.login_failures_per_15_min
        if counters.device is not None:
            as_known_device = await self._reserve({counters.device: device_trust(free)})
            if as_known_device.allowed:
                return as_known_device
        return await self._reserve(
            {counters.account: account_backoff(free), counters.address: address_backoff(free)}
        )

    async def refund_login_attempt(self, attempt: LoginAttempt) -> None:
        """Give back what ``attempt`` counted: a login that succeeded is no failure."""
        if not attempt.counted:
            return
        try:
            await run_script(self.redis, _LOGIN_REFUND_SCRIPT, attempt.counted)
        except (RedisError, OSError) as exc:
            logger.warning("could not refund a login attempt, Redis is unavailable: %s", exc)

    async def _reserve(self, backoffs: Mapping[str, Backoff]) -> LoginAttempt:
        schedules = [
            {"free": backoff.free_failures, "waits": backoff.waits()} for backoff in backoffs.values()
        ]
        try:
            allowed, wait = await run_script(
                self.redis,
                _LOGIN_RESERVE_SCRIPT,
                list(backoffs),
                str(FORGET_AFTER_SECONDS),
                json.dumps(schedules),
            )
        except (RedisError, OSError) as exc:
            logger.warning("login limit not enforced, Redis is unavailable: %s", exc)
            return LoginAttempt(allowed=True, retry_after=0)
        return LoginAttempt(bool(allowed), int(wait), tuple(backoffs) if allowed else ())


def login_retry_message(retry_after: int) -> str:
    """What the login page says to a refused attempt: the wait in seconds under a minute, in
    minutes (rounded up) from there."""
    if retry_after < 60:
        seconds = max(1, retry_after)
        return f"Too many failed attempts; try again in {seconds} second{'' if seconds == 1 else 's'}."
    minutes = math.ceil(retry_after / 60)
    return f"Too many failed attempts; try again in {minutes} minute{'' if minutes == 1 else 's'}."
