"""Sending what the outbox holds: a worker claims an organization's due deliveries, sends each
with no transaction open (an email over SMTP, a signed webhook call over HTTP), then records how
it went: delivered, tried again later with backoff, failed for good, or skipped."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import UUID

import httpcore
import orjson

from invoicing.accounts import store as accounts
from invoicing.domain.notices import (
    DISABLE_AFTER_SECONDS,
    ENDPOINT_DISABLED,
    SIGNATURE_HEADER,
    RetrySchedule,
    signature_header,
)
from invoicing.infra.database import Database
from invoicing.jobs import store as jobs
from invoicing.kernel.json_values import iso_time
from invoicing.kernel.settings import Settings
from invoicing.notifications import outbox
from invoicing.notifications.addresses import AddressRefused, CheckedNetwork
from invoicing.notifications.mailer import EmailRefused, SmtpServer, build_message, send
from invoicing.notifications.notice_content import email_for
from invoicing.notifications.outbox import Claimed
from invoicing.notifications.webhook_secrets import webhook_secret

logger = logging.getLogger(__name__)

#: A webhook call gets this long to answer (connect, send, first byte); no redirect is followed.
WEBHOOK_TIMEOUT_SECONDS = 10.0
#: An email has this long to be sent (each SMTP command has 10 seconds).
EMAIL_DEADLINE_SECONDS = 20.0
#: Deliveries sent at once, and at most in one run (the sweep sends another run for the rest).
CLAIM_BATCH = 4
DELIVERIES_PER_RUN = 100
USER_AGENT = "batch-invoicing-webhooks/1"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's CAs, loaded once per process (not for every run)."""
    return ssl.create_default_context()


@dataclass(frozen=True, slots=True)
class Outcome:
    #: delivered, retry (if attempts are left), failed or skipped.
    status: str
    status_code: int | None = None
    error: str | None = None
    #: Whether this tells anything about the endpoint's health (a call was attempted).
    called: bool = True


class Deliverer:
    """One run's senders: an HTTP connection pool that connects only to checked addresses."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        # A claimed delivery is not claimed again before its send's deadline and a lease have
        # passed: a dead worker's comes back then, a live one has recorded it long before.
        self.claim_lease = EMAIL_DEADLINE_SECONDS + settings.lease_seconds
        self.schedule = RetrySchedule(settings.webhook_retry_base_seconds, settings.webhook_max_attempts)
        self.smtp = None if settings.smtp_url is None else SmtpServer.from_url(settings.smtp_url)
        self.http = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(),
            network_backend=CheckedNetwork(allow_private_networks=settings.webhook_allow_private_networks),
            max_connections=CLAIM_BATCH,
            retries=0,
        )

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.http.aclose()

    async def run(self, organization_id: UUID) -> int:
        """Send the organization's due deliveries (up to ``DELIVERIES_PER_RUN``); how many."""
        done = 0
        async with self.database.scoped(organization_id) as connection:
            await outbox.give_up_crashed(connection, organization_id, self.schedule.max_attempts)
        while done < DELIVERIES_PER_RUN:
            async with self.database.scoped(organization_id) as connection:
                claimed = await outbox.claim_due(
                    connection, organization_id, limit=CLAIM_BATCH, lease_seconds=self.claim_lease
                )
            if not claimed:
                break
            results = await asyncio.gather(
                *(self._deliver(organization_id, delivery) for delivery in claimed), return_exceptions=True
            )
            for delivery, result in zip(claimed, results, strict=True):
                if isinstance(result, BaseException):
                    # Its outcome was not recorded: the row is due again when its claim lapses.
                    logger.error("delivery %s: recording its outcome failed (%r)", delivery.id, result)
            done += len(claimed)
        return done

    async def _deliver(self, organization_id: UUID, delivery: Claimed) -> None:
        try:
            data = await self._event_data(organization_id, delivery)
            if delivery.channel == "webhook":
                outcome = await self._call_webhook(organization_id, delivery, data)
            else:
                outcome = await self._send_email(organization_id, delivery, data)
        except Exception:
            logger.exception("delivery %s failed unexpectedly; it is tried again", delivery.id)
            outcome = Outcome("retry", error="internal_error")
        await self._record(organization_id, delivery, outcome)

    async def _event_data(self, organization_id: UUID, delivery: Claimed) -> dict[str, Any]:
        """The event's data as first rendered: a job's JSON as it was when its notices went out."""
        if delivery.data is not None:
            return delivery.data
        assert delivery.job_id is not None, "only job events are written without their data"
        async with self.database.scoped(organization_id) as connection:
            job = await jobs.get_job(connection, organization_id, delivery.job_id)
            return await outbox.fix_event_data(
                connection, organization_id, delivery.event_id, {"job": job.to_json()}
            )

    async def _call_webhook(self, organization_id: UUID, delivery: Claimed, data: dict[str, Any]) -> Outcome:
        assert delivery.webhook_id is not None
        async with self.database.scoped(organization_id) as connection:
            endpoint = await connection.fetchrow(outbox.READ_ENDPOINT, organization_id, delivery.webhook_id)
        if endpoint is None or not endpoint["enabled"]:
            return Outcome("failed", error="endpoint_disabled: the endpoint is disabled", called=False)
        if endpoint["url"].startswith("http:") and not self.settings.webhook_allow_private_networks:
            return Outcome("failed", error="address_not_allowed: http:// is not allowed here", called=False)
        if not self.settings.secret_key:
            return Outcome("failed", error="secret_key_required: SECRET_KEY is not set", called=False)
        body = orjson.dumps(
            {
                "id": str(delivery.event_id),
                "type": delivery.event_type,
                "created_at": iso_time(delivery.event_created_at),
                "data": data,
            }
        )
        secret = webhook_secret(self.settings.secret_key, delivery.webhook_id, endpoint["secret_salt"])
        headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode()),
            (SIGNATURE_HEADER.encode(), signature_header(secret, int(time.time()), body).encode()),
            (b"Invoicing-Event-Id", str(delivery.event_id).encode()),
        ]
        return await self._post(endpoint["url"], headers, body)

    async def _post(self, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Outcome:
        timeouts = {
            "connect": WEBHOOK_TIMEOUT_SECONDS,
            "read": WEBHOOK_TIMEOUT_SECONDS,
            "write": WEBHOOK_TIMEOUT_SECONDS,
            "pool": WEBHOOK_TIMEOUT_SECONDS,
        }
        try:
            async with asyncio.timeout(WEBHOOK_TIMEOUT_SECONDS):
                async with self.http.stream(
                    "POST", url, headers=headers, content=body, extensions={"timeout": timeouts}
                ) as response:
                    status = response.status
        except AddressRefused as refused:
            return Outcome("retry", error=f"{refused.reason}: {refused}"[:300])
        except (TimeoutError, httpcore.TimeoutException):
            return Outcome("retry", error="timeout: no answer within 10 seconds")
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
            return Outcome("retry", error=f"connection_failed: {type(exc).__name__} {exc}"[:300])
        if 200 <= status < 300:
            return Outcome("delivered", status_code=status)
        # Redirects are not followed: a 3xx is a failure like any other answer but 2xx.
        return Outcome("retry", status_code=status, error=f"http_status: the endpoint answered {status}")

    async def _send_email(self, organization_id: UUID, delivery: Claimed, data: dict[str, Any]) -> Outcome:
        assert delivery.user_id is not None
        if self.smtp is None:
            return Outcome("skipped", error="smtp_not_configured: SMTP_URL is not set")
        async with self.database.scoped(organization_id) as connection:
            recipient = await connection.fetchval(outbox.READ_RECIPIENT, organization_id, delivery.user_id)
            if recipient is None:
                return Outcome("skipped", error="not_a_member: the recipient left the organization")
            organization_name = await accounts.organization_name(connection, organization_id)
            failures = []
            if delivery.job_id is not None:
                failures = await outbox.failure_groups(connection, organization_id, delivery.job_id)
        content = email_for(delivery.event_type, data, failures, self.settings.base_url, organization_name)
        message = build_message(content, sender=self.settings.mail_from, recipient=recipient)
        try:
            async with asyncio.timeout(EMAIL_DEADLINE_SECONDS):
                await send(self.smtp, message)
        except EmailRefused as refused:
            return Outcome("failed", error=f"smtp_refused: {refused}"[:300])
        except Exception as exc:  # connection, timeout, a 4xx answer: later may work
            return Outcome("retry", error=f"smtp_unavailable: {type(exc).__name__} {exc}"[:300])
        return Outcome("delivered")

    async def _record(self, organization_id: UUID, delivery: Claimed, outcome: Outcome) -> None:
        status, retry_in = outcome.status, None
        if status == "retry":
            # A test call answers now or never: an admin is looking at its result.
            retry_in = (
                None
                if delivery.is_test_call
                else self.schedule.delay_after(delivery.attempts, random.random())
            )
            status = "failed" if retry_in is None else "pending"
        # A test call tells its admin how the receiver answers, not the endpoint's health.
        health = delivery.webhook_id is not None and outcome.called and not delivery.is_test_call
        async with self.database.scoped(organization_id) as connection:
            if health:
                await connection.execute(outbox.LOCK_ENDPOINT, organization_id, delivery.webhook_id)
            await outbox.record(
                connection,
                organization_id,
                delivery,
                status=status,
                status_code=outcome.status_code,
                error=outcome.error,
                retry_in=retry_in,
            )
            if health:
                assert delivery.webhook_id is not None
                await self._endpoint_health(
                    connection,
                    organization_id,
                    delivery.webhook_id,
                    outcome,
                    gave_up=status == "failed",
                )

    async def _endpoint_health(
        self,
        connection: Any,
        organization_id: UUID,
        webhook_id: UUID,
        outcome: Outcome,
        *,
        gave_up: bool = False,
    ) -> None:
        """The endpoint's failure clock: stopped by a success, started by a failure; a day of
        failures, or a delivery that failed its every attempt, disables it and tells its admins."""
        if outcome.status == "delivered":
            await connection.execute(outbox.ENDPOINT_SUCCEEDED, organization_id, webhook_id)
            return
        await connection.execute(outbox.ENDPOINT_FAILED, organization_id, webhook_id)
        row = await connection.fetchrow(
            outbox.DISABLE_FAILING, organization_id, webhook_id, DISABLE_AFTER_SECONDS, gave_up
        )
        if row is not None:
            logger.warning("webhook endpoint %s disabled: its calls kept failing", webhook_id)
            data = {
                "webhook": {
                    "id": str(webhook_id),
                    "url": row["url"],
                    "description": row["description"],
                    "failing_since": iso_time(row["failing_since"]),
                }
            }
            await connection.execute(
                outbox.ENDPOINT_DISABLED_EVENT,
                organization_id,
                data,
                ENDPOINT_DISABLED,
            )


async def deliver_due(database: Database, settings: Settings, organization_id: UUID) -> int:
    """Send the organization's due notifications; how many were tried."""
    async with Deliverer(database, settings) as deliverer:
        return await deliverer.run(organization_id)
