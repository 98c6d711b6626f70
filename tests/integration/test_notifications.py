"""Notices of finished batches: one email to whoever started it (as they chose), one signed call
to each subscribed webhook endpoint, decided in the transaction that finished the job and sent by
the workers, against a real SMTP server and a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from devtools.mailbox import Mailbox, SmtpServer
from invoicing.domain.notices import SIGNATURE_HEADER, verify_signature
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from invoicing.notifications.webhook_secrets import webhook_secret
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.integration.test_api_jobs import submit
from tests.support.app import api_client, error_of
from tests.support.factories import (
    TEST_PASSWORD,
    Organization,
    create_mixed_orders,
    create_orders,
    create_organization,
)
from tests.support.jobs import fetch_one
from tests.support.receivers import receiving
from tests.support.waiting import eventually
from tests.support.workers import Workers, drain_queue


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, SmtpServer]]:
    box = Mailbox()
    server = SmtpServer(box).start()
    yield box, server
    server.stop()


@pytest.fixture
def mail_settings(database_url: str, redis_url: str, mailbox: tuple[Mailbox, SmtpServer]) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        SMTP_URL=mailbox[1].url,
        BASE_URL="https://invoicing.example.test",
        WEBHOOK_RETRY_BASE_SECONDS="0.05",
        SWEEP_INTERVAL_SECONDS="0.2",
    )


async def deliveries(database: Database, job_id: str) -> list[Any]:
    async with database.connection() as connection:
        return list(
            await connection.fetch(
                """
                SELECT d.channel, d.status, d.attempts, d.user_id, d.last_error, e.type, e.id AS event_id
                FROM notification_deliveries d JOIN notification_events e ON e.id = d.event_id
                WHERE e.job_id = $1 ORDER BY d.channel
                """,
                job_id,
            )
        )


async def run_job(
    client: httpx.AsyncClient, settings: Settings, headers: dict[str, str], orders: list[Any]
) -> str:
    job = await submit(client, headers, orders)
    await drain_queue(settings)
    return str(job["id"])


# --- Email ------------------------------------------------------------------------------------


async def test_the_starter_gets_exactly_one_email_with_counts_failures_and_a_link(
    database: Database, mail_settings: Settings, mailbox: tuple[Mailbox, SmtpServer]
) -> None:
    organization = await create_organization(database, "Müller & <Söhne>")
    mixed = await create_mixed_orders(database, organization, valid=5)
    async with api_client(mail_settings) as client:
        job_id = await run_job(client, mail_settings, organization.member.headers, mixed.all_ids)

    box = mailbox[0]
    await eventually(lambda: _async(len(box.messages) == 1), what="the email")
    [message] = box.messages
    total, failed = len(mixed.all_ids), len(mixed.invalid)
    assert message["To"] == organization.member.email
    assert message["Subject"] == f"{total} orders: {total - failed} invoices created, {failed} failed"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = f"https://invoicing.example.test/jobs/{job_id}"
    assert link in text
    assert link in html
    for code in set(mixed.invalid.values()):
        assert code in text
    assert "<Söhne>" in text
    assert "&lt;Söhne&gt;" in html
    assert "<Söhne>" not in html
    [row] = await deliveries(database, job_id)
    assert (row["channel"], row["status"], row["attempts"]) == ("email", "delivered", 1)
    # The sweep finds nothing more to send: still one email.
    await drain_queue(mail_settings)
    assert len(box.messages) == 1


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize(
    ("preference", "with_failures", "emailed"),
    [
        ("always", False, True),
        ("failures", False, False),
        ("failures", True, True),
        ("never", True, False),
    ],
)
async def test_the_email_follows_the_starters_preference(
    database: Database,
    mail_settings: Settings,
    organization: Organization,
    preference: str,
    with_failures: bool,
    emailed: bool,
) -> None:
    user = organization.member
    if with_failures:
        orders = (await create_mixed_orders(database, organization, valid=2)).all_ids
    else:
        orders = await create_orders(database, organization, 3)
    async with api_client(mail_settings) as client:
        answer = await client.put("/api/me/notifications", json={"email": preference}, headers=user.headers)
        assert answer.json() == {"email": preference}
        assert (await client.get("/api/me/notifications", headers=user.headers)).json() == {
            "email": preference
        }
        # Another member's choice is their own.
        other = await client.get("/api/me/notifications", headers=organization.admin.headers)
        assert other.json() == {"email": "always"}
        job_id = await run_job(client, mail_settings, user.headers, orders)
    rows = await deliveries(database, job_id)
    assert [row["channel"] for row in rows] == (["email"] if emailed else [])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "sometimes"}, "invalid_preference"),
        ({}, "missing_field"),
        ({"email": "always", "sms": True}, "unknown_field"),
        ([], "invalid_body"),
    ],
)
async def test_a_bad_preference_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, organization: Organization, body: Any, code: str
) -> None:
    headers = organization.member.headers
    answer = await client.put("/api/me/notifications", json=body, headers=headers)
    assert error_of(answer) == (400, code)
    assert (await client.get("/api/me/notifications", headers=headers)).json() == {"email": "always"}


async def test_without_smtp_the_email_is_recorded_as_skipped_not_lost(
    database: Database, settings: Settings, organization: Organization
) -> None:
    orders = await create_orders(database, organization, 2)
    async with api_client(settings) as client:
        job_id = await run_job(client, settings, organization.member.headers, orders)
    [row] = await deliveries(database, job_id)
    assert (row["status"], row["last_error"].split(":")[0]) == ("skipped", "smtp_not_configured")


# --- Webhooks ---------------------------------------------------------------------------------


async def register(
    client: httpx.AsyncClient, organization: Organization, url: str, **fields: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/webhooks", json={"url": url, **fields}, headers=organization.admin.headers
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    created: dict[str, Any] = answer.json()
    return created


@pytest.mark.slow
async def test_a_failing_receiver_gets_the_event_on_the_fourth_attempt_signed_with_the_same_id(
    database: Database, mail_settings: Settings, organization: Organization, workers: Workers
) -> None:
    orders = await create_orders(database, organization, 3)
    with receiving([500, 503, 302]) as receiver:
        async with api_client(mail_settings) as client:
            created = await register(client, organization, receiver.url, events=["batch_job.completed"])
            job = await submit(client, organization.member.headers, orders)
            workers.start(mail_settings)
            with workers.explaining_failures():
                calls = await eventually(
                    lambda: _async(receiver.received() if len(receiver.received()) >= 4 else None),
                    what="four calls",
                )
                listed = await eventually(
                    lambda: _delivered(client, organization, created["item"]["id"]), what="delivered"
                )
    bodies = [call.body for call in calls]
    event_ids = {orjson_id(body) for body in bodies}
    assert len(calls) == 4
    assert len(event_ids) == 1
    last = calls[-1]
    assert verify_signature(
        created["secret"], last.headers[SIGNATURE_HEADER], last.body, now=int(time.time())
    )
    assert not verify_signature(
        "whsec_wrong", last.headers[SIGNATURE_HEADER], last.body, now=int(time.time())
    )
    event = httpx.Response(200, content=last.body).json()
    assert event["type"] == "batch_job.completed"
    assert event["data"]["job"]["id"] == job["id"]
    assert event["data"]["job"]["status"] == "completed"
    assert listed["attempts"] == 4
    assert listed["last_status_code"] == 200
    assert listed["event_id"] == event["id"] == next(iter(event_ids))


async def _delivered(client: httpx.AsyncClient, organization: Organization, webhook_id: str) -> Any:
    answer = await client.get(f"/api/webhooks/{webhook_id}/deliveries", headers=organization.admin.headers)
    items = answer.json()["items"]
    return items[0] if items and items[0]["status"] == "delivered" else None


def orjson_id(body: bytes) -> str:
    return str(httpx.Response(200, content=body).json()["id"])


async def test_an_endpoint_gets_only_the_events_it_subscribed_to(
    database: Database, settings: Settings, organization: Organization
) -> None:
    orders = await create_orders(database, organization, 2)
    with receiving() as receiver:
        async with api_client(settings) as client:
            await register(client, organization, receiver.url, events=["batch_job.failed"])
            everything = await register(client, organization, receiver.url + "/all")
            job_id = await run_job(client, settings, organization.member.headers, orders)
    rows = [row for row in await deliveries(database, job_id) if row["channel"] == "webhook"]
    assert len(rows) == 1
    assert rows[0]["status"] == "delivered"
    assert [call.path for call in receiver.received()] == ["/hooks/all"]
    assert everything["item"]["events"] == ["batch_job.completed", "batch_job.failed", "batch_job.cancelled"]


async def test_a_cancelled_job_is_one_event_and_redelivery_sends_the_same_event_again(
    database: Database, settings: Settings, organization: Organization
) -> None:
    orders = await create_orders(database, organization, 2)
    with receiving() as receiver:
        async with api_client(settings) as client:
            created = await register(client, organization, receiver.url)
            job = await submit(client, organization.member.headers, orders)
            cancel = await client.post(
                f"/api/batch-jobs/{job['id']}/cancel", headers=organization.member.headers
            )
            assert cancel.status_code == 200, cancel.text
            await drain_queue(settings)
            [first] = receiver.received()
            webhook_id = created["item"]["id"]
            listed = (
                await client.get(f"/api/webhooks/{webhook_id}/deliveries", headers=organization.admin.headers)
            ).json()
            [delivery] = listed["items"]
            again = await client.post(
                f"/api/webhook-deliveries/{delivery['id']}/redeliver", headers=organization.admin.headers
            )
            assert again.status_code == 202
            assert again.json()["status"] == "pending"
            await drain_queue(settings)
    first_event = httpx.Response(200, content=first.body).json()
    assert first_event["type"] == "batch_job.cancelled"
    calls = receiver.received()
    assert len(calls) == 2
    assert orjson_id(calls[1].body) == first_event["id"]
    events = await fetch_one(
        database, "SELECT count(*) FROM notification_events WHERE job_id = $1", job["id"]
    )
    assert events["count"] == 1


async def test_secrets_are_shown_once_rotated_and_never_listed(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    headers = organization.admin.headers
    created = await register(client, organization, "https://hooks.example.test/a", description="ERP")
    webhook_id = created["item"]["id"]
    assert created["secret"].startswith("whsec_")
    listed = await client.get("/api/webhooks", headers=headers)
    assert created["secret"] not in listed.text
    assert "secret" not in listed.text
    assert listed.json()["items"] == [created["item"]]
    rotated = await client.post(f"/api/webhooks/{webhook_id}/rotate-secret", headers=headers)
    assert rotated.headers["cache-control"] == "no-store"
    assert rotated.json()["secret"] != created["secret"]
    disabled = (await client.post(f"/api/webhooks/{webhook_id}/disable", headers=headers)).json()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "admin")
    enabled = (await client.post(f"/api/webhooks/{webhook_id}/enable", headers=headers)).json()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    assert (await client.delete(f"/api/webhooks/{webhook_id}", headers=headers)).status_code == 204
    assert error_of(await client.delete(f"/api/webhooks/{webhook_id}", headers=headers)) == (
        404,
        "webhook_not_found",
    )


async def test_members_get_admin_required_and_other_organizations_ids_answer_like_missing_ones(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    other = await create_organization(database)
    theirs = await register(client, other, "https://hooks.example.test/theirs")
    their_id = theirs["item"]["id"]
    member = organization.member.headers
    assert error_of(await client.get("/api/webhooks", headers=member)) == (403, "admin_required")
    assert error_of(
        await client.post("/api/webhooks", json={"url": "https://x.example.test"}, headers=member)
    ) == (403, "admin_required")
    admin = organization.admin.headers
    missing = "00000000-0000-4000-8000-000000000000"
    for webhook_id in (their_id, missing, "not-a-uuid"):
        for method, path in (
            ("POST", f"/api/webhooks/{webhook_id}/rotate-secret"),
            ("POST", f"/api/webhooks/{webhook_id}/disable"),
            ("POST", f"/api/webhooks/{webhook_id}/enable"),
            ("DELETE", f"/api/webhooks/{webhook_id}"),
            ("GET", f"/api/webhooks/{webhook_id}/deliveries"),
        ):
            answer = await client.request(method, path, headers=admin)
            assert error_of(answer) == (404, "webhook_not_found"), (method, path)
        answer = await client.post(f"/api/webhook-deliveries/{webhook_id}/redeliver", headers=admin)
        assert error_of(answer) == (404, "webhook_delivery_not_found")
    # Theirs is untouched.
    assert (await client.get("/api/webhooks", headers=other.admin.headers)).json()["items"] == [
        theirs["item"]
    ]


# --- Server-side request forgery -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hook", "webhook_url_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", "webhook_url_not_allowed"),
        ("https://[::1]:8443/hook", "webhook_url_not_allowed"),
        ("https://10.0.0.7/hook", "webhook_url_not_allowed"),
        ("https://localhost/hook", "webhook_url_not_allowed"),
        ("http://hooks.example.test/hook", "invalid_url"),
        ("https://user:pass@hooks.example.test/", "invalid_url"),
        ("ftp://hooks.example.test/", "invalid_url"),
    ],
)
async def test_private_addresses_are_refused_at_registration(
    database_url: str, redis_url: str, organization: Organization, url: str, code: str
) -> None:
    strict = make_settings(database_url, redis_url, WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
    async with api_client(strict) as client:
        answer = await client.post("/api/webhooks", json={"url": url}, headers=organization.admin.headers)
        assert error_of(answer) == (400, code)
        assert (await client.get("/api/webhooks", headers=organization.admin.headers)).json()["items"] == []


@pytest.mark.parametrize("host", ["localhost", "169.254.169.254", "[::ffff:127.0.0.1]"])
async def test_an_address_not_public_is_refused_when_the_call_is_made(
    database: Database, database_url: str, redis_url: str, organization: Organization, host: str
) -> None:
    """Registered while allowed (or while its name resolved elsewhere): the address the host
    resolves to when the call is made is what counts, and no connection is made to it."""
    lenient = make_settings(database_url, redis_url)
    strict = lenient.with_overrides(webhook_allow_private_networks=False)
    orders = await create_orders(database, organization, 1)
    with receiving() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        async with api_client(lenient) as client:
            await register(client, organization, f"https://{host}:{port}/hooks")
            job = await submit(client, organization.member.headers, orders)
        await drain_queue(strict)
        assert receiver.received() == []
    [row] = [row for row in await deliveries(database, job["id"]) if row["channel"] == "webhook"]
    assert row["status"] == "pending"
    assert row["last_error"].startswith("address_not_allowed")


# --- Crashes and failing endpoints -------------------------------------------------------------


@pytest.mark.slow
async def test_a_worker_killed_after_the_job_committed_still_leads_to_exactly_one_email(
    database: Database, database_url: str, redis_url: str, organization: Organization, workers: Workers
) -> None:
    """The job's end and its outbox row commit together: the worker dies while the email is
    on the wire (the server has the message but never acknowledged it); another worker sends it
    once its claim lapses, and the person gets one email."""
    stalled, box = StallingMailbox(), Mailbox()
    stalling_server, server = SmtpServer(stalled).start(), SmtpServer(box).start()
    try:
        first = make_settings(database_url, redis_url, SMTP_URL=stalling_server.url, LEASE_SECONDS="2")
        second = make_settings(database_url, redis_url, SMTP_URL=server.url, LEASE_SECONDS="2")
        second = second.with_overrides(queue_name=first.queue_name, redis_prefix=first.redis_prefix)
        orders = await create_orders(database, organization, 30)
        async with api_client(first) as client:
            job = await submit(client, organization.member.headers, orders)
        [dying] = workers.start(first)
        with workers.explaining_failures():
            await eventually(lambda: _async(stalled.arrived), what="the email on the wire")
            dying.kill()
            workers.start(second.with_overrides(sweep_interval_seconds=0.2))
            await eventually(lambda: _async(len(box.messages) == 1), timeout=60, what="the email, resent")
            rows = await eventually(lambda: _settled(database, job["id"]), what="delivered")
        assert rows[0]["attempts"] == 2
        assert len(box.messages) == 1
        assert box.messages[0]["To"] == organization.member.email
    finally:
        stalling_server.stop()
        server.stop()


async def _settled(database: Database, job_id: str) -> Any:
    rows = await deliveries(database, job_id)
    return rows if rows and rows[0]["status"] == "delivered" else None


class StallingMailbox(Mailbox):
    """Takes the message and does not answer until the test is over (the client, a worker
    killed meanwhile, never hears back); then refuses it, so nothing counts as sent."""

    arrived = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.arrived = True
        # An event nobody sets: the server's stop at teardown cancels the wait.
        await asyncio.Event().wait()
        return "451 never"


async def test_an_endpoint_failing_for_a_day_is_disabled_and_its_admins_are_emailed(
    database: Database,
    mail_settings: Settings,
    organization: Organization,
    mailbox: tuple[Mailbox, SmtpServer],
) -> None:
    orders = await create_orders(database, organization, 1)
    with receiving([500]) as receiver:
        async with api_client(mail_settings) as client:
            created = await register(client, organization, receiver.url)
            webhook_id = created["item"]["id"]
            async with database.connection() as connection:
                await connection.execute(
                    "UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours' WHERE id = $1",
                    webhook_id,
                )
            await client.put(
                "/api/me/notifications", json={"email": "never"}, headers=organization.member.headers
            )
            await run_job(client, mail_settings, organization.member.headers, orders)
            [item] = (await client.get("/api/webhooks", headers=organization.admin.headers)).json()["items"]
    assert (item["enabled"], item["disabled_reason"]) == (False, "failing")
    box = mailbox[0]
    await eventually(lambda: _async(len(box.messages) == 1), what="the admins' email")
    assert box.messages[0]["To"] == organization.admin.email
    assert receiver.url in box.messages[0].get_body(("plain",)).get_content()


# --- The development mailbox ---------------------------------------------------------------------


async def test_the_dev_mailbox_shows_a_signed_in_user_their_own_mail_only(
    database_url: str, redis_url: str, database: Database, tmp_path: Any
) -> None:
    organization = await create_organization(database, with_passwords=True)
    folder = tmp_path / "mailbox"
    box = Mailbox(folder)
    server = SmtpServer(box).start()
    try:
        settings = make_settings(database_url, redis_url, SMTP_URL=server.url, DEV_MAILBOX_DIR=str(folder))
        orders = await create_orders(database, organization, 2)
        async with api_client(settings) as client:
            await run_job(client, settings, organization.admin.headers, orders)  # the admin's mail
            await run_job(
                client, settings, organization.member.headers, await create_orders(database, organization, 1)
            )
            await eventually(lambda: _async(len(list(folder.glob("*.eml"))) == 2), what="two emails")
            assert (await client.get("/dev/mailbox")).status_code == 303  # signed out
            signed_in = await client.post(
                "/login",
                data={"email": organization.member.email, "password": TEST_PASSWORD},
                headers={"Origin": "http://testserver"},
            )
            assert signed_in.status_code == 303
            page = await client.get("/dev/mailbox")
            assert page.status_code == 200
            assert "1 order: 1 invoice created" in page.text
            assert "2 orders" not in page.text
            theirs, mine = sorted(
                folder.glob("*.eml"), key=lambda p: organization.member.email in p.read_text()
            )
            html = await client.get(f"/dev/mailbox/{mine.stem}.html")
            assert html.status_code == 200
            assert "default-src 'none'" in html.headers["content-security-policy"]
            assert (await client.get(f"/dev/mailbox/{theirs.stem}.html")).status_code == 404
    finally:
        server.stop()


async def test_the_dev_mailbox_is_not_routed_outside_dev(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dev/mailbox")).status_code == 404


async def test_an_endpoint_is_edited_in_place_keeping_its_secret(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    headers = organization.admin.headers
    created = await register(client, organization, "https://hooks.example.test/a", description="ERP")
    webhook_id = created["item"]["id"]
    async with database.connection() as connection:
        await connection.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '1 hour' WHERE id = $1", webhook_id
        )
    path = f"/api/webhooks/{webhook_id}"
    edited = await client.patch(
        path, json={"description": " Ledger ", "events": ["batch_job.failed"]}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    item = edited.json()
    assert (item["description"], item["events"], item["url"]) == (
        "Ledger",
        ["batch_job.failed"],
        created["item"]["url"],
    )
    assert item["failing_since"] is not None  # the same destination: still failing
    moved = (await client.patch(path, json={"url": "https://hooks.example.test/b"}, headers=headers)).json()
    assert (moved["url"], moved["failing_since"]) == ("https://hooks.example.test/b", None)
    for body, code in (
        ({}, "missing_field"),
        ({"url": "ftp://x"}, "invalid_url"),
        ({"events": []}, "invalid_events"),
        ({"secret": "x"}, "unknown_field"),
    ):
        assert error_of(await client.patch(path, json=body, headers=headers)) == (400, code)
    assert (await client.get("/api/webhooks", headers=headers)).json()["items"] == [moved]
    assert error_of(
        await client.patch(path, json={"description": "x"}, headers=organization.member.headers)
    ) == (
        403,
        "admin_required",
    )
    salt = await fetch_one(database, "SELECT secret_salt FROM webhook_endpoints WHERE id = $1", webhook_id)
    assert webhook_secret(TEST_SECRET_KEY, UUID(webhook_id), salt["secret_salt"]) == created["secret"]


async def test_a_ping_is_one_signed_test_call_never_retried(
    database: Database, settings: Settings, organization: Organization
) -> None:
    headers = organization.admin.headers
    with receiving([500]) as receiver:
        async with api_client(settings) as client:
            created = await register(client, organization, receiver.url, events=["batch_job.failed"])
            path = f"/api/webhooks/{created['item']['id']}"
            first = await client.post(f"{path}/ping", headers=headers)
            assert first.status_code == 202, first.text
            assert (first.json()["event_type"], first.json()["status"]) == ("webhook.ping", "pending")
            await drain_queue(settings)
            second = await client.post(f"{path}/ping", headers=headers)
            await drain_queue(settings)
            listed = (await client.get(f"{path}/deliveries", headers=headers)).json()["items"]
            await client.post(f"{path}/disable", headers=headers)
            assert error_of(await client.post(f"{path}/ping", headers=headers)) == (409, "webhook_disabled")
    by_id = {item["id"]: item for item in listed}
    assert (by_id[first.json()["id"]]["status"], by_id[first.json()["id"]]["attempts"]) == ("failed", 1)
    assert (by_id[second.json()["id"]]["status"], by_id[second.json()["id"]]["last_status_code"]) == (
        "delivered",
        200,
    )
    calls = receiver.received()
    assert len(calls) == 2
    event = httpx.Response(200, content=calls[1].body).json()
    assert event["type"] == "webhook.ping"
    assert event["data"]["webhook"]["url"] == receiver.url
    assert verify_signature(
        created["secret"], calls[1].headers[SIGNATURE_HEADER], calls[1].body, now=int(time.time())
    )


async def test_test_calls_are_limited_per_endpoint_and_leave_its_health_alone(
    database: Database, settings: Settings, organization: Organization
) -> None:
    headers = organization.admin.headers
    with receiving([500]) as receiver:
        async with api_client(settings) as client:
            created = await register(client, organization, receiver.url)
            path = f"/api/webhooks/{created['item']['id']}/ping"
            assert (await client.post(path, headers=headers)).status_code == 202
            await drain_queue(settings)
            [item] = (await client.get("/api/webhooks", headers=headers)).json()["items"]
            assert (item["enabled"], item["failing_since"]) == (True, None)
            for _ in range(4):
                assert (await client.post(path, headers=headers)).status_code == 202
            refused = await client.post(path, headers=headers)
    assert error_of(refused) == (429, "rate_limited")
    assert refused.headers["retry-after"] == "60"
