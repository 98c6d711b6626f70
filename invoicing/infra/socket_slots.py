"""Open WebSockets per user and per organization, counted in Redis by every server process.

Each socket holds a leased slot in two sorted sets, its user's and its organization's (member:
a random socket id, score: when the slot lapses, by Redis's clock). It renews the slot while
it is open and gives it back when it closes; the slots of a server process that died simply
lapse. Like the other limits (``invoicing/infra/limits.py``) this fails open: when Redis cannot be
reached a socket is admitted, because live progress is a convenience over PostgreSQL's truth
and pages fall back to polling anyway.
"""

from __future__ import annotations

import logging
import math
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from invoicing.infra import redis_keys as keys
from invoicing.infra.limits import REDIS_NOW_MS, run_script
from invoicing.kernel.errors import TooManyRequests
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings

logger = logging.getLogger(__name__)

# KEYS: the user's and the organization's sets of open sockets (score: when the slot lapses).
# ARGV: socket id, lease in ms, the user's cap, the organization's cap. Drops lapsed slots, then
# refuses while either set is full ({1}: the user's, {2}: the organization's), else adds the
# socket to both ({0}). One script, so parallel handshakes cannot all pass the same count.
_TAKE_SOCKET_SLOT_SCRIPT = (
    REDIS_NOW_MS
    + """
for index, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
    if redis.call('ZCARD', key) >= tonumber(ARGV[2 + index]) then
        return {index}
    end
end
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, now_ms + tonumber(ARGV[2]), ARGV[1])
    redis.call('PEXPIRE', key, ARGV[2])
end
return {0}
"""
)

# Pushes the socket's lapse time out by a lease; adds it back if it had lapsed or Redis lost
# it (a restart, or a socket admitted while Redis was down), even past a cap: it is open.
_RENEW_SOCKET_SLOT_SCRIPT = (
    REDIS_NOW_MS
    + """
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, now_ms + tonumber(ARGV[2]), ARGV[1])
    redis.call('PEXPIRE', key, ARGV[2])
end
return {}
"""
)

_RELEASE_SOCKET_SLOT_SCRIPT = """
for _, key in ipairs(KEYS) do
    redis.call('ZREM', key, ARGV[1])
end
return {}
"""


class SocketSlot:
    """One open WebSocket, counted against ``WS_MAX_SOCKETS_PER_USER`` and
    ``WS_MAX_SOCKETS_PER_ORG`` in Redis, shared by every server process.

    The slot lapses ``lease_seconds`` after it was taken or last renewed, so the sockets of a
    server process that died stop counting by then. With Redis unreachable the socket is
    admitted (a warning), and renewing or releasing it does nothing.
    """

    def __init__(
        self, redis: Redis, settings: Settings, principal: Principal, *, lease_seconds: float
    ) -> None:
        self._redis = redis
        self._sets = (
            keys.sockets_of_user(settings.redis_prefix, principal.user_id),
            keys.sockets_of_organization(settings.redis_prefix, principal.organization_id),
        )
        self._caps = (settings.ws_max_sockets_per_user, settings.ws_max_sockets_per_org)
        self._lease_seconds = lease_seconds
        self._lease_ms = str(max(1, round(lease_seconds * 1000)))
        self.id = secrets.token_hex(8)

    async def take(self) -> None:
        """Count this socket, or raise TooManyRequests (``too_many_sockets``) when its user or
        its organization already has as many open as allowed (nothing is counted then)."""
        user_cap, organization_cap = self._caps
        try:
            (full,) = await run_script(
                self._redis, _TAKE_SOCKET_SLOT_SCRIPT, self._sets, self.id, self._lease_ms,
                str(user_cap), str(organization_cap),
            )  # fmt: skip
        except (RedisError, OSError) as exc:
            logger.warning("socket limit not enforced, Redis is unavailable: %s", exc)
            return
        if full:
            refusal = (
                f"You already have {user_cap} live connections open; close a tab or window that"
                " shows jobs, or wait for one to close."
                if full == 1
                else f"Your organization already has {organization_cap} live connections open;"
                " try again later."
            )
            # A hint: slots free up as sockets close, a dead process's within a lease.
            retry_after = math.ceil(self._lease_seconds)
            raise TooManyRequests(refusal, retry_after=retry_after, code="too_many_sockets")

    async def renew(self) -> None:
        """Keep the slot for another lease; call well within each lease while the socket is open."""
        await self._best_effort(_RENEW_SOCKET_SLOT_SCRIPT, "renew")

    async def release(self) -> None:
        """Give the slot back (the socket closed)."""
        await self._best_effort(_RELEASE_SOCKET_SLOT_SCRIPT, "release")

    async def _best_effort(self, script: str, what: str) -> None:
        try:
            await run_script(self._redis, script, self._sets, self.id, self._lease_ms)
        except (RedisError, OSError) as exc:
            # DEBUG: every open socket renews every few seconds, and an outage would flood the
            # log; a slot not renewed or not released lapses on its own.
            logger.debug("could not %s a socket slot, Redis is unavailable: %s", what, exc)
