"""The Redis side: enqueueing jobs on arq and publishing progress events.

Redis is only the trigger and the event bus. Every call here is best effort: when Redis is
down it logs and returns, and the sweep (which reads PostgreSQL) makes up for it later.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from invoicing.infra import redis_keys as keys
from invoicing.kernel.settings import Settings

logger = logging.getLogger(__name__)


def connect_redis(url: str, *, timeout: float = 2.0) -> ArqRedis:
    """A lazily connecting client: creating it never fails, even with Redis down."""
    pool = ConnectionPool.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=15
    )
    return ArqRedis(connection_pool=pool)


class JobQueue:
    """Enqueue batch jobs and publish their events on one Redis connection pool."""

    def __init__(self, redis: ArqRedis, settings: Settings) -> None:
        self.redis = redis
        self.queue_name = settings.queue_name
        self.notification_queue_name = keys.notification_queue(settings.queue_name)
        self.prefix = settings.redis_prefix

    async def enqueue(self, job_id: UUID, generation: int, *, delay: float = 0.0) -> bool:
        """True if arq accepted a new job; False if it was already queued or Redis is down.

        With ``delay``, no worker starts it before that many seconds (a backoff).
        """
        return await self._enqueue(
            keys.PROCESS_BATCH_JOB,
            job_id,
            keys.arq_job_id(job_id, generation),
            self.queue_name,
            delay=delay,
            failure=("could not enqueue job %s (the sweep will): %s", logging.WARNING),
        )

    async def enqueue_cue(self, job_id: UUID, generation: int, claim: int) -> bool:
        """Ask one more free worker slot to join the job (a part of it is free). Best effort:
        a slot that finishes its part chooses again anyway, and the sweep sends what is missing."""
        return await self._enqueue(
            keys.PROCESS_BATCH_JOB,
            job_id,
            keys.arq_cue_id(job_id, generation, claim),
            self.queue_name,
            failure=("could not send a cue for job %s: %s", logging.DEBUG),
        )

    async def enqueue_notifications(self, organization_id: UUID, cause: str) -> bool:
        """Ask a worker to send the organization's due notifications now. Best effort: the
        sweep finds whatever is due and not sent."""
        return await self._enqueue(
            keys.DELIVER_NOTIFICATIONS,
            organization_id,
            keys.arq_notifications_id(organization_id, cause),
            self.notification_queue_name,
            failure=("could not ask for organization %s's notifications: %s", logging.DEBUG),
        )

    async def _enqueue(
        self,
        function: str,
        argument: UUID,
        arq_id: str,
        queue_name: str,
        *,
        failure: tuple[str, int],
        delay: float = 0.0,
    ) -> bool:
        """True if arq accepted a new message; False if one of that id is queued (arq's dedupe)
        or Redis is down (logged with ``failure``'s message and level)."""
        try:
            queued = await self.redis.enqueue_job(
                function, str(argument), _job_id=arq_id, _queue_name=queue_name, _defer_by=delay or None
            )
        except (RedisError, OSError) as exc:
            message, level = failure
            logger.log(level, message, argument, exc)
            return False
        return queued is not None

    async def is_waiting(self, job_id: UUID, generation: int) -> bool | None:
        """Whether arq holds this generation's message and no worker has started it (queued
        or deferred). False when it is missing (Redis lost it) or started, which for a job
        nobody claimed means its worker died before claiming it. None if Redis is down."""
        arq_id = keys.arq_job_id(job_id, generation)
        try:
            queued = await self.redis.exists(keys.arq_message(arq_id))
            started = await self.redis.exists(keys.arq_in_progress(arq_id))
        except (RedisError, OSError) as exc:
            logger.warning("could not check the queue for job %s: %s", job_id, exc)
            return None
        return bool(queued) and not started

    async def publish(self, organization_id: UUID, message: str) -> None:
        """Send an event to the organization's subscribers (``invoicing.jobs.events`` says what)."""
        try:
            await self.redis.publish(keys.events_channel(self.prefix, organization_id), message)
        except (RedisError, OSError) as exc:
            logger.debug("could not publish an event of organization %s: %s", organization_id, exc)

    async def ping(self, within: float = 2.0) -> bool:
        """Redis answers within ``within`` seconds (a frozen server otherwise costs a socket timeout)."""
        try:
            async with asyncio.timeout(within):
                return bool(await self.redis.ping())
        except (RedisError, OSError):  # TimeoutError is an OSError
            return False

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
