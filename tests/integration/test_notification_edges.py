"""Notifications at their edges: an endpoint deleted while a job ends or while its call is
recorded, failures recorded at once, a redelivery while an attempt is in flight, a greylisting
mail server, a delivery run whose worker died, hosts DNS cannot carry. Each was once a bug."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from arq.constants import in_progress_key_prefix

from devtools.mailbox import Mailbox, SmtpServer
from invoicing.domain.notices import ENDPOINT_DISABLED, RetrySchedule
from invoicing.infra import redis_keys as keys
from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.kernel.settings import Settings
from invoicing.notifications import outbox
from invoicing.notifications import store as notification_store
from invoicing.notifications.delivery import Deliverer, Outcome, deliver_due
from invoicing.notifications.sweep import enqueue_due
from invoicing.services import application_database
from tests.conftest import make_settings
from tests.integration.test_api_jobs import submit
from tests.support.app import api_client, error_of
from tests.support.factories import Organization, create_orders
from tests.support.jobs import fetch_one
from tests.support.receivers import receiving
from tests.support.waiting import eventually
from tests.support.workers import drain_queue


@pytest_asyncio.fixture
async def app_database(settings: Settings) -> AsyncIterator[Database]:
    """The application's own pool (runtime role, sealed scopes), as the workers use it."""
    async with application_database(settings, pool_size=4) as database:
        yield database


async def register(client: httpx.AsyncClient, organization: Organization, url: str) -> dict[str, Any]:
    answer = await client.post("/api/webhooks", json={"url": url}, headers=organization.admin.headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def cancelled_job_with_a_webhook_delivery(
    client: httpx.AsyncClient, database: Database, organization: Organization, url: str
) -> tuple[dict[str, Any], UUID]:
    """A job cancelled while pending (no worker runs): its webhook delivery is pending, due now
    (and the only delivery: its starter wants no email)."""
    created = await register(client, organization, url)
    preference = await client.put(
        "/api/me/notifications", json={"email": "never"}, headers=organization.member.headers
    )
    assert preference.status_code == 200, preference.text
    orders = await create_orders(database, organization, 2)
    job = await submit(client, organization.member.headers, orders)
    cancel = await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)
    assert cancel.status_code == 200, cancel.text
    return created, UUID(created["item"]["id"])


async def sessions_waiting_on_a_lock(database: Database) -> int:
    async with database.connection() as connection:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


async def webhook_delivery(database: Database, webhook_id: UUID) -> Any:
    return await fetch_one(
        database,
        "SELECT id, status, attempts, last_error, next_attempt_at, next_attempt_at - now() AS due_in"
        " FROM notification_deliveries WHERE webhook_id = $1",
        webhook_id,
    )


# --- Bad input answered 500 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks..example.com/hook",  # an empty label
        "https://" + "a" * 64 + ".example.com/hook",  # a label longer than 63
    ],
)
async def test_a_url_whose_host_cannot_be_a_dns_name_is_a_400_not_a_500(
    database_url: str, redis_url: str, organization: Organization, url: str
) -> None:
    """parse_webhook_url accepts the host; _refuse_private_name then resolves it, and
    getaddrinfo's IDNA encoding raises UnicodeError (a ValueError, not the OSError that
    addresses.resolve catches): the request ends in a 500."""
    strict = make_settings(database_url, redis_url, WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
    async with api_client(strict) as client:
        try:
            answer = await client.post("/api/webhooks", json={"url": url}, headers=organization.admin.headers)
        except UnicodeError as exc:  # the in-process client re-raises what the app let escape
            pytest.fail(f"500: {exc!r} escaped the request")
        assert error_of(answer)[0] == 400
        assert (await client.get("/api/webhooks", headers=organization.admin.headers)).json()["items"] == []


# --- The trigger inside the transaction that finishes a job ------------------------------------


async def test_an_endpoint_deleted_while_a_job_is_being_cancelled_does_not_fail_the_cancel(
    database: Database, settings: Settings, organization: Organization
) -> None:
    """The trigger reads the endpoints (the delete is not committed yet, so it sees it) and
    inserts a delivery whose foreign key check waits for the deleting transaction; once that
    commits, the check fails: the transaction that finishes the job aborts (here a cancel answers
    500; a worker's last chunk fails the same way and is counted as a failed run)."""
    orders = await create_orders(database, organization, 2)
    async with api_client(settings) as client:
        created = await register(client, organization, "https://hooks.example.test/a")
        job = await submit(client, organization.member.headers, orders)
        async with database.transaction() as deleting:
            await deleting.execute("DELETE FROM webhook_endpoints WHERE id = $1", UUID(created["item"]["id"]))
            cancel = asyncio.create_task(
                client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers)
            )
            await eventually(
                lambda: sessions_waiting_on_a_lock(database),
                timeout=5,
                what="the cancel waiting on the delete",
            )
        try:
            answer = await cancel
        except Exception as exc:  # the in-process client re-raises what the app let escape
            pytest.fail(f"the cancel failed: {exc!r}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"


# --- Endpoint health -----------------------------------------------------------------------------


async def test_two_failures_recorded_at_once_email_the_admins_about_the_disabled_endpoint_once(
    database: Database, app_database: Database, settings: Settings, organization: Organization
) -> None:
    """One run records its (up to 8) outcomes concurrently. ENDPOINT_FAILED decides
    ``disabled_now`` from a self-join (``before``) whose row is not re-read when the statement
    waits for a concurrent update of the endpoint: both failures see ``before.enabled`` true,
    and each writes a webhook_endpoint.disabled event, so the admins get two emails."""
    async with api_client(settings) as client:
        created = await register(client, organization, "https://hooks.example.test/a")
    webhook_id = UUID(created["item"]["id"])
    async with database.connection() as connection:
        await connection.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours' WHERE id = $1",
            webhook_id,
        )
    failure = Outcome("retry", status_code=500, error="http_status: the endpoint answered 500")
    async with Deliverer(app_database, settings) as deliverer:

        async def second_failure() -> None:
            async with app_database.scoped(organization.id) as connection:
                await deliverer._endpoint_health(connection, organization.id, webhook_id, failure)

        async with app_database.scoped(organization.id) as first:
            await deliverer._endpoint_health(first, organization.id, webhook_id, failure)
            second = asyncio.create_task(second_failure())
            await eventually(
                lambda: sessions_waiting_on_a_lock(database), timeout=5, what="the second failure waiting"
            )
        await second
    events = await fetch_one(
        database, "SELECT count(*) FROM notification_events WHERE type = $1", ENDPOINT_DISABLED
    )
    assert events["count"] == 1


async def test_an_endpoint_that_failed_every_attempt_of_its_delivery_is_disabled_when_it_gives_up(
    database: Database, app_database: Database, settings: Settings, organization: Organization
) -> None:
    """With the defaults the last of the 12 attempts comes about 20.4 hours after the first
    (73,285 s without jitter; 25 % more at most), but ENDPOINT_FAILED disables only on a
    failure 24 hours after ``failing_since``: an endpoint that is down for good and had one
    event is never disabled and its admins never hear of it; the delivery just ends ``failed``.
    Here: the last attempt of a delivery whose every attempt failed since its first one."""
    schedule = RetrySchedule(settings.webhook_retry_base_seconds, settings.webhook_max_attempts)
    assert (schedule.base_seconds, schedule.max_attempts) == (10.0, 12), "the defaults"
    span = sum(schedule.delay_after(attempt, 0.0) or 0.0 for attempt in range(1, schedule.max_attempts))
    with receiving([500]) as receiver:
        async with api_client(settings) as client:
            _, webhook_id = await cancelled_job_with_a_webhook_delivery(
                client, database, organization, receiver.url
            )
        async with database.connection() as connection:
            await connection.execute(
                "UPDATE webhook_endpoints SET failing_since = now() - make_interval(secs => $2)"
                " WHERE id = $1",
                webhook_id,
                span,
            )
            await connection.execute(
                "UPDATE notification_deliveries SET attempts = $2 - 1 WHERE webhook_id = $1",
                webhook_id,
                schedule.max_attempts,
            )
        await deliver_due(app_database, settings, organization.id)
        assert len(receiver.received()) == 1
    delivery = await webhook_delivery(database, webhook_id)
    assert delivery["status"] == "failed"
    endpoint = await fetch_one(
        database, "SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1", webhook_id
    )
    assert (endpoint["enabled"], endpoint["disabled_reason"]) == (False, "failing")


# --- Redelivery while an attempt is in flight -------------------------------------------------


async def test_an_attempt_that_ends_after_a_redelivery_does_not_touch_the_new_claim(
    database: Database, app_database: Database, settings: Settings, organization: Organization
) -> None:
    """Outcomes are guarded by the attempt count, and a redelivery sets it back to 0: the next
    claim has attempts = 1 again, exactly what the attempt still in flight claimed. That stale
    attempt's outcome then lands on the new claim (ARCHITECTURE: "a redelivery meanwhile
    wins"): here it moves the claimed row's next attempt to now, so another worker claims and
    sends it again while the new claim's send is still in flight."""
    async with api_client(settings) as client:
        _, webhook_id = await cancelled_job_with_a_webhook_delivery(
            client, database, organization, "https://hooks.example.test/a"
        )
    lease = 60.0
    async with app_database.scoped(organization.id) as connection:
        [in_flight] = await outbox.claim_due(connection, organization.id, limit=8, lease_seconds=lease)
    async with app_database.scoped(organization.id) as connection:
        assert await notification_store.redeliver(connection, organization.id, in_flight.id) is not None
    async with app_database.scoped(organization.id) as connection:
        [new_claim] = await outbox.claim_due(connection, organization.id, limit=8, lease_seconds=lease)
    assert new_claim.attempts == in_flight.attempts == 1
    # The first attempt times out now, after the redelivery.
    async with app_database.scoped(organization.id) as connection:
        await outbox.record(
            connection, organization.id, in_flight, status="pending", error="timeout: stale", retry_in=0.0
        )
    delivery = await webhook_delivery(database, webhook_id)
    assert delivery["last_error"] is None
    async with app_database.scoped(organization.id) as connection:
        again = await outbox.claim_due(connection, organization.id, limit=8, lease_seconds=lease)
    assert again == [], "claimed twice while the redelivered send is still in flight"


# --- Email ---------------------------------------------------------------------------------------


class Greylisting(Mailbox):
    """Answers the first RCPT with a temporary refusal (greylisting), then accepts."""

    refusals = 0

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refusals == 0:
            self.refusals += 1
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_temporary_refusal_of_the_recipient_is_retried_not_failed_for_good(
    database: Database, database_url: str, redis_url: str, organization: Organization
) -> None:
    """aiosmtplib raises SMTPRecipientsRefused (not an SMTPResponseException) when every
    recipient is refused, whatever the code: mailer.send turns a 4xx at RCPT (greylisting,
    452 too many recipients, 450 mailbox busy) into EmailRefused, and the email is ``failed``
    at its first attempt."""
    box = Greylisting()
    server = SmtpServer(box).start()
    try:
        settings = make_settings(
            database_url, redis_url, SMTP_URL=server.url, WEBHOOK_RETRY_BASE_SECONDS="0.05"
        )
        orders = await create_orders(database, organization, 2)
        async with api_client(settings) as client:
            job = await submit(client, organization.member.headers, orders)
        await drain_queue(settings)
        row = await fetch_one(
            database,
            "SELECT d.status, d.last_error FROM notification_deliveries d"
            " JOIN notification_events e ON e.id = d.event_id WHERE e.job_id = $1 AND d.channel = 'email'",
            job["id"],
        )
        assert row["status"] != "failed", row["last_error"]
        await drain_queue(settings)
        assert len(box.messages) == 1
    finally:
        server.stop()


# --- The sweep's cue ------------------------------------------------------------------------------


async def test_a_delivery_run_killed_with_its_worker_does_not_stop_the_sweep_for_a_day(
    database: Database,
    app_database: Database,
    settings: Settings,
    organization: Organization,
    queue: JobQueue,
) -> None:
    """Every sweep queues the organization's run under one fixed arq id, ``notify:{org}:sweep``.
    A worker killed while running it leaves arq's message and its in-progress key, which lives
    as long as the worker's longest function timeout (JOB_TIMEOUT_SECONDS, 24 h) + 10 s: no
    other worker starts that message, and arq refuses to queue the same id again. Until then
    the organization's retries go out only if one of its jobs happens to finish (a new cue)."""
    async with api_client(settings) as client:
        _, webhook_id = await cancelled_job_with_a_webhook_delivery(
            client, database, organization, "https://hooks.example.test/a"
        )
    # What `kill -9` leaves of a worker that had started the sweep's run (arq's start_jobs).
    assert await queue.enqueue_notifications(organization.id, "sweep")
    arq_id = keys.arq_notifications_id(organization.id, "sweep")
    await queue.redis.psetex(in_progress_key_prefix + arq_id, (24 * 3600 + 10) * 1000, b"1")
    try:
        delivery = await webhook_delivery(database, webhook_id)
        assert delivery["status"] == "pending"
        assert delivery["due_in"].total_seconds() <= 0
        queued = await enqueue_due(app_database, queue)
        assert queued >= 1, "a delivery is due and nothing will send it for a day"
    finally:
        await queue.redis.delete(in_progress_key_prefix + arq_id, f"arq:job:{arq_id}")
        await queue.redis.zrem(settings.queue_name, arq_id)


# --- A URL accepted at registration that can never be called ------------------------------------


async def test_a_url_with_non_ascii_characters_is_refused_or_called(
    database: Database, settings: Settings, organization: Organization
) -> None:
    """parse_webhook_url accepts any printable character, but httpcore takes ASCII URLs only
    (TypeError "url strings may not include unicode characters"): the endpoint is registered
    and every call fails as ``internal_error`` (logged with a traceback each time) until it is
    disabled. Either refuse such a URL (400) or send it IDNA/percent-encoded."""
    with receiving() as receiver:
        async with api_client(settings) as client:
            answer = await client.post(
                "/api/webhooks", json={"url": receiver.url + "/caf\u00e9"}, headers=organization.admin.headers
            )
            if answer.status_code == 400:
                return
            assert answer.status_code == 201, answer.text
            orders = await create_orders(database, organization, 1)
            await submit(client, organization.member.headers, orders)
        await drain_queue(settings)
        assert len(receiver.received()) == 1, (
            await webhook_delivery(database, UUID(answer.json()["item"]["id"]))
        )["last_error"]


# --- Lock order between recording an outcome and deleting its endpoint --------------------------


async def test_deleting_an_endpoint_while_a_worker_records_a_call_to_it_does_not_deadlock(
    database: Database, app_database: Database, settings: Settings, organization: Organization
) -> None:
    """Deliverer._record updates the delivery row, then (same transaction) the endpoint row
    (ENDPOINT_FAILED / ENDPOINT_SUCCEEDED). DELETE /api/webhooks/{id} locks the endpoint row,
    then its ON DELETE CASCADE locks the delivery rows: opposite orders. PostgreSQL breaks the
    deadlock by aborting one of them: the admin's delete answers 500 (a deadlock is not one of
    the driver errors answered 503), or the worker's record fails and its run with it.

    To meet deterministically, a third transaction holds the delivery row while the record and
    then the delete queue behind it; once it lets go, the record takes the row first."""
    async with api_client(settings) as client:
        _, webhook_id = await cancelled_job_with_a_webhook_delivery(
            client, database, organization, "https://hooks.example.test/a"
        )
        async with app_database.scoped(organization.id) as connection:
            [claimed] = await outbox.claim_due(connection, organization.id, limit=8, lease_seconds=60)
        failure = Outcome("retry", status_code=500, error="http_status: the endpoint answered 500")
        async with Deliverer(app_database, settings) as deliverer:
            async with database.transaction() as holding:
                await holding.execute(
                    "SELECT 1 FROM notification_deliveries WHERE id = $1 FOR UPDATE", claimed.id
                )
                record = asyncio.create_task(deliverer._record(organization.id, claimed, failure))
                await eventually(
                    lambda: _at_least(database, 1), timeout=5, what="the record waiting for the delivery row"
                )
                delete = asyncio.create_task(
                    client.delete(f"/api/webhooks/{webhook_id}", headers=organization.admin.headers)
                )
                await eventually(lambda: _at_least(database, 2), timeout=5, what="the delete waiting too")
            recorded, answer = await asyncio.gather(record, delete, return_exceptions=True)
    assert not isinstance(recorded, BaseException), f"the worker's record failed: {recorded!r}"
    assert not isinstance(answer, BaseException), f"the delete failed: {answer!r}"
    assert answer.status_code == 204, answer.text


async def _at_least(database: Database, waiting: int) -> bool:
    return await sessions_waiting_on_a_lock(database) >= waiting
