"""One Redis pub/sub connection per server process, fanned out to every socket it serves.

Each subscriber keeps only the newest event per job (a bounded "latest state" mailbox), so a
client that never reads cannot grow the server's memory or slow anyone else down. When the
Redis connection drops, the hub reconnects with backoff and then asks every subscriber to
re-read its snapshot from PostgreSQL: pub/sub drops whatever was published meanwhile.

Events are coalesced per job, once for all its watchers, by a token bucket: 10 fan-outs a
second on average, with a burst of ``FANOUT_BURST`` so that events arriving about every
100 ms, with jitter, go out at once instead of waiting for a fixed slot. What is held back
is replaced by anything newer, so a held event is never older than the gap to the next
one, and a finished job's event always goes out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from invoicing.infra import redis_keys as keys

logger = logging.getLogger(__name__)

Event = dict[str, Any]

FANOUT_RATE = 10.0
FANOUT_BURST = 3.0


class Delivery:
    """An event parsed once, with its wire text kept to send to every socket as is."""

    __slots__ = ("event", "text")

    def __init__(self, event: Event, text: str) -> None:
        self.event = event
        self.text = text

    @property
    def seq(self) -> int:
        return int(self.event.get("seq", 0))


class Subscription:
    """What one socket watches: one job, or every job of an organization."""

    def __init__(self, organization_id: str, job_id: str | None) -> None:
        self.organization_id = organization_id
        self.job_id = job_id
        self._latest: dict[str, Delivery] = {}
        self._resync = False
        self._wakeup = asyncio.Event()

    def offer(self, delivery: Delivery) -> None:
        job_id = delivery.event.get("job_id")
        if not isinstance(job_id, str) or (self.job_id is not None and job_id != self.job_id):
            return
        current = self._latest.get(job_id)
        if current is None or delivery.seq > current.seq:
            self._latest[job_id] = delivery
            self._wakeup.set()

    @property
    def pending(self) -> int:
        """Jobs with news not yet read: never more than the jobs watched."""
        return len(self._latest)

    def request_resync(self) -> None:
        self._resync = True
        self._wakeup.set()

    async def next(self) -> tuple[list[Delivery], bool]:
        """Wait for news: the newest event of each job that changed, and whether to re-snapshot."""
        await self._wakeup.wait()
        self._wakeup.clear()
        events = sorted(self._latest.values(), key=lambda delivery: delivery.seq)
        self._latest.clear()
        resync, self._resync = self._resync, False
        return events, resync


class EventHub:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self._redis_url = redis_url
        self._pattern = keys.events_pattern(prefix)
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # job id → (tokens, as of when)
        self._held: dict[str, Delivery] = {}
        self.connected = asyncio.Event()
        self.connections_made = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(
        self, organization_id: UUID, job_id: UUID | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(str(organization_id), None if job_id is None else str(job_id))
        self._subscriptions.setdefault(subscription.organization_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            watchers = self._subscriptions.get(subscription.organization_id, set())
            watchers.discard(subscription)
            if not watchers:
                self._subscriptions.pop(subscription.organization_id, None)

    @property
    def subscriber_count(self) -> int:
        return sum(len(watchers) for watchers in self._subscriptions.values())

    def dispatch(self, raw: bytes | str) -> None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            event = json.loads(text)
        except ValueError:
            logger.warning("dropped a malformed event")
            return
        if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
            return
        self._throttle(Delivery(event, text))

    def _throttle(self, delivery: Delivery) -> None:
        job_id = str(delivery.event.get("job_id"))
        held = self._held.get(job_id)
        if held is not None and held.seq >= delivery.seq:
            return
        if delivery.event.get("type") == "finished":
            self._held.pop(job_id, None)
            self._buckets.pop(job_id, None)
            self._fan_out(delivery)
            return
        now = asyncio.get_running_loop().time()
        tokens, as_of = self._buckets.get(job_id, (FANOUT_BURST, now))
        tokens = min(FANOUT_BURST, tokens + (now - as_of) * FANOUT_RATE)
        if held is None and tokens >= 1:
            self._buckets[job_id] = (tokens - 1, now)
            self._fan_out(delivery)
            return
        if held is None:
            asyncio.get_running_loop().call_later((1 - tokens) / FANOUT_RATE, self._release, job_id)
        self._buckets[job_id] = (tokens, now)
        self._held[job_id] = delivery

    def _release(self, job_id: str) -> None:
        delivery = self._held.pop(job_id, None)
        if delivery is None:
            return
        now = asyncio.get_running_loop().time()
        tokens, as_of = self._buckets.get(job_id, (1.0, now))
        tokens = min(FANOUT_BURST, tokens + (now - as_of) * FANOUT_RATE)
        self._buckets[job_id] = (max(0.0, tokens - 1), now)
        self._fan_out(delivery)

    def _fan_out(self, delivery: Delivery) -> None:
        for subscription in tuple(self._subscriptions.get(str(delivery.event.get("organization_id")), ())):
            subscription.offer(delivery)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            client = Redis.from_url(
                self._redis_url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=5
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(self._pattern)
                    self._on_connected()
                    backoff = 0.1
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if message is not None and message["type"] == "pmessage":
                            self.dispatch(message["data"])
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    logger.warning("event hub lost Redis (%s); reconnecting", exc)
                self.connected.clear()
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _on_connected(self) -> None:
        self.connections_made += 1
        self.connected.set()
        if self.connections_made > 1:
            logger.info("event hub reconnected to Redis; re-sending snapshots")
            for watchers in self._subscriptions.values():
                for subscription in watchers:
                    subscription.request_resync()
