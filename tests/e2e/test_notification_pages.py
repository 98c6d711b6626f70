"""The Settings page's email choice and the Webhooks page, in real Chromium: an administrator
adds, edits, disables, enables, rotates and deletes an endpoint, sends it test events and reads
and redelivers its deliveries; a member is kept out; both pages pass axe-core and fit a laptop
and a phone.

The server runs alone, with no worker: deliveries stay as the test wrote them, and the
endpoints' URLs (on 127.0.0.1, which WEBHOOK_ALLOW_PRIVATE_NETWORKS allows) are never called.
Only the test-event test starts a worker, which calls a real receiver on loopback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Dialog, Locator, Page, Request, expect

from devtools.embedded import free_port
from invoicing.domain.notices import SIGNATURE_HEADER, verify_signature
from invoicing.infra.database import Database
from invoicing.notifications.webhook_secrets import webhook_secret
from tests.conftest import make_settings
from tests.support.axe import assert_no_axe_violations
from tests.support.browser import DESKTOP, NO_SIDEWAYS_SCROLL, PHONE, Product, logged_in_page
from tests.support.factories import User, create_organization
from tests.support.live_server import live_server
from tests.support.receivers import receiving
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = pytest.mark.slow

HOSTILE = '<img src=x onerror="window.__xss = 1">Evil & Co <script>window.__xss = 2</script>'
SECRET_WARNING = "Copy this secret now: it will not be shown again."
SECRET = re.compile(r"^whsec_[A-Za-z0-9_-]{43}$")
REDELIVER = re.compile(r"^Redeliver ")
#: Deliveries written for one endpoint: more than the page's 20, so there is a second page.
DELIVERIES = 25
EVENTS = ["batch_job.completed", "batch_job.failed", "batch_job.cancelled"]
#: A common laptop's width, besides the suite's DESKTOP.
LAPTOP = {"width": 1366, "height": 900}


@pytest_asyncio.fixture
async def product(database_url: str, redis_url: str, database: Database) -> AsyncIterator[Product]:
    """The server, letting webhooks call 127.0.0.1 over http, and one organization."""
    settings = make_settings(database_url, redis_url, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    organization = await create_organization(database, with_passwords=True)
    async with live_server(settings) as server:
        yield Product(server, settings, organization)


@pytest.fixture
def workers(tmp_path: Path, database_url: str) -> Iterator[Workers]:
    """Worker processes a test starts, stopped at its end (before its database is dropped)."""
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


def hook_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"


async def call(product: Product, method: str, path: str, user: User | None = None, **kwargs: Any) -> Any:
    """The API as the admin (or ``user``): the JSON answer, after checking it succeeded."""
    headers = (user or product.organization.admin).headers
    async with httpx.AsyncClient(base_url=product.server.http, headers=headers) as client:
        response = await client.request(method, path, **kwargs)
    assert response.is_success, response.text
    return response.json()


async def add_endpoint(product: Product, url: str, description: str = "") -> dict[str, Any]:
    created = await call(product, "POST", "/api/webhooks", json={"url": url, "description": description})
    item: dict[str, Any] = created["item"]
    return item


async def write_deliveries(database: Database, organization_id: UUID, webhook_id: str) -> None:
    """``DELIVERIES`` calls an hour old and newer, one a minute, newest first: failed (HTTP 500
    and an error with markup), pending (a refused connection, tried again later), then
    delivered ones."""
    start = datetime.now(UTC) - timedelta(hours=1)
    events = ("batch_job.completed", "batch_job.failed", "batch_job.cancelled")
    async with database.transaction() as connection:
        for position in range(DELIVERIES):
            created = start + timedelta(minutes=position)
            age = DELIVERIES - 1 - position  # 0: the newest
            event_id = await connection.fetchval(
                "INSERT INTO notification_events (organization_id, type, created_at)"
                " VALUES ($1, $2, $3) RETURNING id",
                organization_id,
                events[position % 3],
                created,
            )
            status, code, error = {
                0: ("failed", 500, HOSTILE),
                1: ("pending", None, "connection refused"),
            }.get(age, ("delivered", 204, None))
            await connection.execute(
                "INSERT INTO notification_deliveries (organization_id, event_id, channel, webhook_id, status,"
                " attempts, last_status_code, last_error, next_attempt_at, delivered_at, created_at)"
                " VALUES ($1, $2, 'webhook', $3, $4, $5, $6, $7, $8, $9, $10)",
                organization_id,
                event_id,
                UUID(webhook_id),
                status,
                12 if status == "failed" else 1,
                code,
                error,
                datetime.now(UTC) + timedelta(minutes=10),
                created if status == "delivered" else None,
                created,
            )


def answer_dialog(page: Page, *, accept: bool) -> asyncio.Event:
    """Answers the next confirm(); the event is set once it has been answered."""
    answered = asyncio.Event()

    async def answer(dialog: Dialog) -> None:
        await (dialog.accept() if accept else dialog.dismiss())
        answered.set()

    page.once("dialog", answer)
    return answered


def endpoint_card(page: Page) -> Locator:
    return page.locator("[data-webhook-id]")


async def assert_no_markup_ran(page: Page) -> None:
    assert await page.evaluate("window.__xss") is None, "no markup from data ever ran"
    assert await page.locator("main img, main script").count() == 0


async def test_an_admin_adds_disables_enables_rotates_and_deletes_an_endpoint(
    browser: Browser, product: Product
) -> None:
    page = await logged_in_page(browser, product)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    nav = page.get_by_role("navigation", name="Main")
    await nav.get_by_role("link", name="Webhooks").click()
    await expect(page).to_have_url(f"{product.server.http}/webhooks")
    await expect(nav.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")
    await expect(page.locator("[data-webhooks-empty]")).to_contain_text("Invoicing-Signature")

    form = page.locator("[data-add-form]")
    for event in ("batch_job.completed", "batch_job.failed", "batch_job.cancelled"):
        await expect(form.get_by_role("checkbox", name=event)).to_be_checked()
    url_field = form.get_by_label("URL")
    await url_field.fill("ftp://example.com/hook")
    await form.get_by_role("button", name="Add endpoint").click()
    await expect(form.get_by_role("alert")).to_contain_text("https://")  # the server's invalid_url
    await expect(url_field).to_have_attribute("aria-invalid", "true")
    await expect(url_field).to_be_focused()

    url = hook_url()
    await url_field.fill(url)
    await form.get_by_label("Description").fill(HOSTILE)
    await form.get_by_role("checkbox", name="batch_job.cancelled").uncheck()
    await form.get_by_role("button", name="Add endpoint").click()

    # The secret, once: selected in a marked box, copied with one button.
    card = endpoint_card(page)
    await expect(card.get_by_role("group", name="New signing secret")).to_contain_text(SECRET_WARNING)
    secret_field = card.get_by_role("textbox", name="Signing secret")
    await expect(secret_field).to_have_value(SECRET)
    await expect(secret_field).to_be_focused()
    secret = await secret_field.input_value()
    await card.get_by_role("button", name="Copy").click()
    await expect(page.locator("#toasts")).to_contain_text("Secret copied")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await expect(form.get_by_role("alert")).to_be_hidden()
    await expect(url_field).to_have_value("")
    await expect(form.get_by_role("checkbox", name="batch_job.cancelled")).to_be_checked()

    await expect(card.get_by_role("heading", name=url)).to_be_visible()
    await expect(card.locator(".webhook__head .badge")).to_have_text("Enabled")
    await expect(card.locator(".webhook__description")).to_have_text(HOSTILE)
    await expect(card.locator(".webhook__event")).to_have_text(["batch_job.completed", "batch_job.failed"])
    await card.get_by_role("button", name="Done").click()
    await expect(card.get_by_role("group", name="New signing secret")).to_have_count(0)
    await expect(card.get_by_role("button", name=f"Rotate secret of webhook {url}")).to_be_focused()

    await page.reload()
    await expect(card.get_by_role("heading", name=url)).to_be_visible()
    await expect(card.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    assert secret not in await page.content()
    [stored] = (await call(product, "GET", "/api/webhooks"))["items"]
    assert (stored["url"], stored["description"]) == (url, HOSTILE)
    assert stored["events"] == ["batch_job.completed", "batch_job.failed"]

    await card.get_by_role("button", name=f"Disable webhook {url}").click()
    await expect(card.locator(".webhook__head .badge")).to_have_text("Disabled by an administrator")
    await expect(card.get_by_role("button", name=f"Enable webhook {url}")).to_be_focused()
    [stored] = (await call(product, "GET", "/api/webhooks"))["items"]
    assert (stored["enabled"], stored["disabled_reason"]) == (False, "admin")
    await card.get_by_role("button", name=f"Enable webhook {url}").click()
    await expect(card.locator(".webhook__head .badge")).to_have_text("Enabled")
    await expect(card.get_by_role("button", name=f"Disable webhook {url}")).to_be_focused()
    [stored] = (await call(product, "GET", "/api/webhooks"))["items"]
    assert stored["enabled"] is True

    # Rotating asks first; said no, nothing changes.
    rotate = card.get_by_role("button", name=f"Rotate secret of webhook {url}")
    answered = answer_dialog(page, accept=False)
    await rotate.click()
    await asyncio.wait_for(answered.wait(), 10)
    await expect(card.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    answer_dialog(page, accept=True)
    await rotate.click()
    await expect(card.get_by_role("group", name="New signing secret")).to_contain_text(
        "The old secret no longer works."
    )
    await expect(card.get_by_role("textbox", name="Signing secret")).to_have_value(SECRET)
    assert await card.get_by_role("textbox", name="Signing secret").input_value() != secret

    answer_dialog(page, accept=True)
    await card.get_by_role("button", name=f"Delete webhook {url}").click()
    await expect(card).to_have_count(0)
    await expect(page.locator("[data-webhooks-empty]")).to_be_visible()
    await expect(page.get_by_role("heading", name="Endpoints")).to_be_focused()
    assert (await call(product, "GET", "/api/webhooks"))["items"] == []
    await assert_no_markup_ran(page)


async def test_an_admin_edits_an_endpoint_in_its_card_and_its_secret_stays(
    browser: Browser, product: Product, database: Database
) -> None:
    url = hook_url()
    created = await call(product, "POST", "/api/webhooks", json={"url": url, "description": "Accounting"})
    webhook_id = created["item"]["id"]
    async with database.connection() as connection:
        await connection.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '2 hours' WHERE id = $1",
            UUID(webhook_id),
        )
    [before] = (await call(product, "GET", "/api/webhooks"))["items"]
    page = await logged_in_page(browser, product)
    patches: list[Request] = []
    page.on("request", lambda request: patches.append(request) if request.method == "PATCH" else None)
    await page.goto("/webhooks")
    card = endpoint_card(page)
    edit = card.get_by_role("button", name=f"Edit webhook {url}")
    await expect(edit).to_have_attribute("aria-expanded", "false")

    # The form is filled from the endpoint; Cancel, and Escape, drop what was typed.
    await edit.click()
    form = card.get_by_role("form", name=f"Edit endpoint {url}")
    url_field = form.get_by_role("textbox", name="URL")
    description = form.get_by_role("textbox", name="Description")
    await expect(url_field).to_be_focused()
    await expect(edit).to_have_attribute("aria-expanded", "true")
    await expect(url_field).to_have_value(url)
    await expect(description).to_have_value("Accounting")
    for event in EVENTS:
        await expect(form.get_by_role("checkbox", name=event)).to_be_checked()
    await url_field.fill(hook_url())
    await description.fill("Changed")
    await form.get_by_role("checkbox", name="batch_job.failed").uncheck()
    await form.get_by_role("button", name="Cancel").click()
    await expect(form).to_have_count(0)
    await expect(edit).to_be_focused()
    await expect(edit).to_have_attribute("aria-expanded", "false")
    await expect(card.get_by_role("heading", name=url)).to_be_visible()
    await expect(card.locator(".webhook__description")).to_have_text("Accounting")
    await expect(card.locator(".webhook__event")).to_have_text(EVENTS)
    await edit.click()
    await expect(url_field).to_have_value(url)
    await expect(description).to_have_value("Accounting")
    await expect(form.get_by_role("checkbox", name="batch_job.failed")).to_be_checked()
    await description.fill("Changed")
    await page.keyboard.press("Escape")
    await expect(form).to_have_count(0)
    await expect(edit).to_be_focused()
    # Saved unchanged: nothing is sent.
    await edit.click()
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_have_count(0)
    await expect(edit).to_be_focused()
    await expect(page.locator("#toasts")).to_contain_text("Nothing changed")
    assert patches == []
    assert (await call(product, "GET", "/api/webhooks"))["items"] == [before]

    # What the server refuses is said under its field, which is marked and focused.
    await edit.click()
    await url_field.fill("ftp://example.com/hook")
    await description.fill(HOSTILE)
    await form.get_by_role("button", name="Save").click()
    refused = "A webhook URL must start with https:// or http://."
    url_box = form.locator(".field").filter(has=page.get_by_role("textbox", name="URL"))
    await expect(url_box.get_by_role("alert")).to_have_text(refused)
    await expect(url_field).to_have_accessible_description(refused)
    await expect(url_field).to_have_attribute("aria-invalid", "true")
    await expect(url_field).to_be_focused()
    await expect(form.get_by_role("alert")).to_have_count(1)
    assert [request.post_data_json for request in patches] == [
        {"url": "ftp://example.com/hook", "description": HOSTILE}
    ]
    assert (await call(product, "GET", "/api/webhooks"))["items"] == [before]
    for event in EVENTS:
        await form.get_by_role("checkbox", name=event).uncheck()
    await form.get_by_role("button", name="Save").click()
    await expect(form.get_by_role("alert")).to_have_text("Choose at least one event.")
    await expect(form.get_by_role("checkbox", name="batch_job.completed")).to_be_focused()
    await expect(url_field).not_to_have_attribute("aria-invalid", "true")
    assert len(patches) == 1

    # Only what changed is sent: the same URL is not. The markup is shown as text.
    await url_field.fill(url)
    for event in EVENTS[:2]:
        await form.get_by_role("checkbox", name=event).check()
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_have_count(0)
    await expect(edit).to_be_focused()
    await expect(page.locator("#toasts")).to_contain_text("Saved")
    await expect(card.locator(".webhook__description")).to_have_text(HOSTILE)
    await expect(card.locator(".webhook__event")).to_have_text(EVENTS[:2])
    await expect(card).to_contain_text("Failing since")  # the same destination: still failing
    assert patches[-1].post_data_json == {"description": HOSTILE, "events": EVENTS[:2]}
    [stored] = (await call(product, "GET", "/api/webhooks"))["items"]
    assert (stored["url"], stored["description"], stored["events"]) == (url, HOSTILE, EVENTS[:2])

    # A new URL: the card and its buttons' names follow; its failure clock starts afresh.
    new_url = hook_url()
    await edit.click()
    await url_field.fill(new_url)
    await form.get_by_role("button", name="Save").click()
    await expect(card.get_by_role("heading", name=new_url)).to_be_visible()
    await expect(card.get_by_role("button", name=f"Edit webhook {new_url}")).to_be_focused()
    await expect(card.locator("summary")).to_contain_text(f"Deliveries to {new_url}")
    await expect(card).not_to_contain_text("Failing since")
    assert patches[-1].post_data_json == {"url": new_url}
    [stored] = (await call(product, "GET", "/api/webhooks"))["items"]
    assert (stored["url"], stored["description"], stored["events"]) == (new_url, HOSTILE, EVENTS[:2])
    assert stored["failing_since"] is None

    # The secret is the one given when the endpoint was added: no new one is shown or made.
    await expect(card.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    async with database.connection() as connection:
        salt = await connection.fetchval(
            "SELECT secret_salt FROM webhook_endpoints WHERE id = $1", UUID(webhook_id)
        )
    assert webhook_secret(product.settings.secret_key, UUID(webhook_id), salt) == created["secret"]
    await assert_no_markup_ran(page)


async def test_an_endpoints_deliveries_come_page_by_page_and_are_redelivered(
    browser: Browser, product: Product, database: Database
) -> None:
    url = hook_url()
    webhook = await add_endpoint(product, url)
    await write_deliveries(database, product.organization.id, webhook["id"])
    page = await logged_in_page(browser, product)
    await page.goto("/webhooks")
    card = endpoint_card(page)
    await card.locator("summary", has_text="Deliveries").click()

    rows = card.locator(".deliveries-table tbody tr")
    await expect(rows).to_have_count(20)
    newest, pending, delivered = rows.nth(0), rows.nth(1), rows.nth(2)
    await expect(newest.locator(".badge")).to_have_text("Failed")
    await expect(newest).to_contain_text("HTTP 500")
    await expect(newest).to_contain_text(HOSTILE)
    await expect(pending.locator(".badge")).to_have_text("Pending")
    await expect(pending).to_contain_text("Next attempt")
    await expect(pending).to_contain_text("connection refused")
    await expect(delivered.locator(".badge")).to_have_text("Delivered")
    await expect(delivered).to_contain_text("HTTP 204")

    more = card.get_by_role("button", name="Load more")
    await more.click()
    await expect(rows).to_have_count(DELIVERIES)
    await expect(more).to_be_hidden()
    await expect(rows.nth(20).get_by_role("button", name=REDELIVER)).to_be_focused()

    await newest.get_by_role("button", name=REDELIVER).click()
    await expect(newest).to_have_attribute("data-status", "pending")
    await expect(newest.locator(".badge")).to_have_text("Pending")
    await expect(newest.get_by_role("button", name=REDELIVER)).to_be_focused()
    delivery_id = await newest.get_attribute("data-delivery-id")
    assert delivery_id is not None
    async with database.connection() as connection:
        row = await connection.fetchrow(
            "SELECT status, attempts FROM notification_deliveries WHERE id = $1", UUID(delivery_id)
        )
    assert (row["status"], row["attempts"]) == ("pending", 0)

    # A disabled endpoint gets nothing: the server's reason is shown, the row stays as it was.
    await card.get_by_role("button", name=f"Disable webhook {url}").click()
    await expect(card.locator(".webhook__head .badge")).to_have_text("Disabled by an administrator")
    await delivered.get_by_role("button", name=REDELIVER).click()
    await expect(card.get_by_role("alert")).to_have_text("The endpoint is disabled: enable it first.")
    await expect(delivered).to_have_attribute("data-status", "delivered")

    await page.set_viewport_size(PHONE)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    box = await delivered.get_by_role("button", name=REDELIVER).bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"], "Redeliver is reachable without scrolling sideways"
    await assert_no_markup_ran(page)


#: What the page's polite announcer said, in order (read as window.__announced).
RECORD_ANNOUNCEMENTS = """
window.__announced = [];
document.addEventListener("DOMContentLoaded", () => {
  const region = document.getElementById("announcer");
  new MutationObserver(() => {
    if (region.textContent) window.__announced.push(region.textContent);
  }).observe(region, { childList: true, characterData: true, subtree: true });
});
"""
#: When (the page's Date.now()) each poll of a test call's result was sent (window.__polls),
#: and how many answers were read (window.__answered): once it has grown, the loop that read
#: it has gone on to its next wait.
RECORD_POLLS = """
window.__polls = [];
window.__answered = 0;
const originalFetch = window.fetch;
window.fetch = async (...args) => {
  const polled = String(args[0]).endsWith("/deliveries?limit=5");
  if (polled) window.__polls.push(Date.now());
  const response = await originalFetch(...args);
  if (polled) {
    const read = response.json.bind(response);
    response.json = async () => {
      try {
        return await read();
      } finally {
        window.__answered += 1;
      }
    };
  }
  return response;
};
"""
WAITING = "Test event sent: waiting for the receiver's answer…"


def card_of(page: Page, webhook_id: str) -> Locator:
    return page.locator(f'[data-webhook-id="{webhook_id}"]')


async def polls(page: Page) -> list[float]:
    sent: list[float] = await page.evaluate("window.__polls")
    return sent


async def next_poll(page: Page) -> None:
    """A second of the page's (paused) clock, then its poll's answer read."""
    answered = await page.evaluate("window.__answered")
    await page.clock.run_for(1000)
    await eventually(lambda: page.evaluate(f"window.__answered > {answered}"), timeout=10, what="a poll")


async def test_a_test_event_is_sent_and_how_its_call_went_shows_in_the_card(
    browser: Browser, product: Product, workers: Workers
) -> None:
    workers.start(product.settings)
    with receiving([500]) as receiver, workers.explaining_failures():
        created = await call(
            product, "POST", "/api/webhooks", json={"url": receiver.url, "description": "Accounting system"}
        )
        webhook = created["item"]
        stale = await add_endpoint(product, hook_url())  # disabled behind the page's back
        off = await add_endpoint(product, hook_url())  # disabled before the page is loaded
        await call(product, "POST", f"/api/webhooks/{off['id']}/disable")
        page = await logged_in_page(browser, product)
        await page.add_init_script(RECORD_ANNOUNCEMENTS)
        await page.set_viewport_size(LAPTOP)
        await page.goto("/webhooks")

        # A disabled endpoint gets no test call: no button.
        off_card = card_of(page, off["id"])
        await expect(off_card.get_by_role("button", name=f"Enable webhook {off['url']}")).to_be_visible()
        await expect(off_card.get_by_role("button", name=re.compile("^Send test event"))).to_have_count(0)

        card = card_of(page, webhook["id"])
        await card.locator("summary", has_text="Deliveries").click()
        await expect(card.locator(".deliveries")).to_contain_text("No calls yet")
        send = card.get_by_role("button", name=f"Send test event to {receiver.url}")
        await expect(send).to_have_text("Send test event")
        line = card.locator(".webhook__ping")
        await expect(line).to_be_hidden()

        # The receiver answers 500 the first time: the card says so; a test call tells how the
        # receiver answers, not the endpoint's health (no failure clock started).
        await send.click()
        failed = re.compile(r"^Test call failed: HTTP 500 — http_status: the endpoint answered 500$")
        await expect(line).to_have_text(failed, timeout=20_000)
        await expect(line).to_have_class(re.compile(r"\bwebhook__ping--failed\b"))
        await expect(send).to_have_accessible_description(failed)
        rows = card.locator(".deliveries-table tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator("td").first).to_have_text("Test (webhook.ping)")
        await expect(rows.first.locator(".badge")).to_have_text("Failed")
        await expect(rows.first).to_contain_text("HTTP 500")
        await expect(card.locator(".webhook__note")).to_be_hidden()
        await eventually(
            lambda: page.evaluate("window.__announced.length >= 2"), timeout=10, what="the result said"
        )
        assert await page.evaluate("window.__announced") == [
            f"Test event sent to {receiver.url}.",
            "Test call failed: HTTP 500 — http_status: the endpoint answered 500",
        ]
        for viewport in (LAPTOP, PHONE):
            await page.set_viewport_size(viewport)
            await assert_no_axe_violations(page)
            assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"/webhooks scrolls sideways at {viewport}"
            box = await send.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= viewport["width"], "the button is reachable without scrolling"
        await page.set_viewport_size(LAPTOP)

        # Then 200: delivered.
        await send.click()
        await expect(line).to_have_text("Test call delivered: HTTP 200", timeout=20_000)
        await expect(line).to_have_class(re.compile(r"\bwebhook__ping--delivered\b"))
        await expect(rows).to_have_count(2)
        await expect(rows.first.locator(".badge")).to_have_text("Delivered")
        await expect(rows.first).to_contain_text("HTTP 200")
        await expect(rows.nth(1).locator(".badge")).to_have_text("Failed")
        await expect(card.locator(".webhook__note")).to_be_hidden()
        await expect(send).to_be_focused()

        # Disabled since the page was loaded: the server's reason, then the card as it is now.
        stale_card = card_of(page, stale["id"])
        await call(product, "POST", f"/api/webhooks/{stale['id']}/disable")
        await stale_card.get_by_role("button", name=f"Send test event to {stale['url']}").click()
        await expect(stale_card.locator(".webhook__ping")).to_have_text(
            "Test event not sent: The endpoint is disabled: enable it first."
        )
        await expect(stale_card.locator(".webhook__head .badge")).to_have_text("Disabled by an administrator")
        await expect(stale_card.get_by_role("button", name=re.compile("^Send test event"))).to_have_count(0)
        await expect(stale_card.get_by_role("button", name=f"Enable webhook {stale['url']}")).to_be_focused()

    calls = receiver.received()
    assert len(calls) == 2
    for received in calls:
        event = json.loads(received.body)
        assert event["type"] == "webhook.ping"
        assert event["data"]["webhook"]["url"] == receiver.url
        assert verify_signature(
            created["secret"], received.headers[SIGNATURE_HEADER], received.body, now=int(time.time())
        )
    await assert_no_markup_ran(page)


async def test_a_test_calls_result_is_waited_for_by_one_loop_that_stops_with_its_card_or_page(
    browser: Browser, product: Product
) -> None:
    """No worker: the test calls stay pending. The page's clock is paused, each second of it
    given by the test, so every poll the page sends is counted."""
    url = hook_url()
    webhook = await add_endpoint(product, url)
    page = await logged_in_page(browser, product)
    await page.add_init_script(RECORD_POLLS)
    await page.clock.install()
    await page.goto("/webhooks")
    await page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=2))
    card = card_of(page, webhook["id"])
    await card.locator("summary", has_text="Deliveries").click()
    await expect(card.locator(".deliveries")).to_contain_text("No calls yet")
    send = card.get_by_role("button", name=f"Send test event to {url}")
    line = card.locator(".webhook__ping")
    rows = card.locator(".deliveries-table tbody tr")

    # Sent: said politely, shown as waiting, the pending call on top of the open deliveries.
    await send.click()
    await expect(line).to_have_text(WAITING)
    await expect(line).to_have_class(re.compile(r"\bwebhook__ping--pending\b"))
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-status", "pending")
    await expect(rows.first.locator("td").first).to_have_text("Test (webhook.ping)")
    await page.clock.run_for(100)
    await expect(page.locator("#announcer")).to_have_text(f"Test event sent to {url}.")
    assert await polls(page) == []

    # One poll a second; a second test call is waited for by the same loop.
    await next_poll(page)
    await next_poll(page)
    await send.click()
    await expect(rows).to_have_count(2)
    for _ in range(3):
        await next_poll(page)
    sent = await polls(page)
    assert len(sent) == 5
    assert all(later - earlier >= 1000 for earlier, later in itertools.pairwise(sent)), sent

    # A hidden page is not polled; shown again, the wait goes on (its 15 s afresh).
    hide = """(state) => {
      Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    }"""
    await page.evaluate(hide, "hidden")
    await page.clock.run_for(5000)
    assert len(await polls(page)) == 5
    await page.evaluate(hide, "visible")
    await next_poll(page)
    assert len(await polls(page)) == 6
    await expect(line).to_have_text(WAITING)

    # 15 s without an answer: said, and the polls end.
    await page.clock.run_for(15_000)
    no_result = "No result yet: the test call is still pending. Its result will show in Deliveries."
    await expect(line).to_have_text(no_result)
    await page.clock.run_for(100)
    await expect(page.locator("#announcer")).to_have_text(no_result)
    counted = len(await polls(page))
    await page.clock.run_for(5000)
    assert len(await polls(page)) == counted

    # A card deleted while it waits: its polls end with it.
    await send.click()
    await expect(line).to_have_text(WAITING)
    await expect(rows).to_have_count(3)
    await next_poll(page)
    answer_dialog(page, accept=True)
    await card.get_by_role("button", name=f"Delete webhook {url}").click()
    await expect(card).to_have_count(0)
    counted = len(await polls(page))
    await page.clock.run_for(5000)
    assert len(await polls(page)) == counted


async def test_a_member_has_no_webhooks_link_and_gets_the_not_allowed_page(
    browser: Browser, product: Product
) -> None:
    page = await logged_in_page(browser, product, product.organization.member)
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    await expect(nav.get_by_role("link", name="Webhooks")).to_have_count(0)
    response = await page.goto("/webhooks")
    assert response is not None
    assert response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("Administrators only")
    assert await page.locator("script[src='/static/webhooks.js']").count() == 0
    await expect(nav.get_by_role("link", name="Webhooks")).to_have_count(0)


async def test_the_email_choice_is_saved_and_comes_back_after_a_reload(
    browser: Browser, product: Product
) -> None:
    member = product.organization.member
    page = await logged_in_page(browser, product, member)
    await page.goto("/settings")
    choices = page.get_by_role("group", name="Email me when a batch I started ends")
    await expect(choices).to_be_enabled()
    await expect(choices.get_by_role("radio", name="Always")).to_be_checked()

    await choices.get_by_role("radio", name="Only when something failed").check()
    await page.get_by_role("button", name="Save", exact=True).click()
    status = page.locator("[data-notify-status]")
    await expect(status).to_have_text("Saved")
    await expect(status).to_have_attribute("aria-live", "polite")
    assert await call(product, "GET", "/api/me/notifications", member) == {"email": "failures"}
    await choices.get_by_role("radio", name="Never").check()
    await expect(status).to_have_text("")  # changed, not saved yet

    await page.reload()
    await expect(choices).to_be_enabled()
    await expect(choices.get_by_role("radio", name="Only when something failed")).to_be_checked()

    # What the API refuses is said, and nothing is claimed saved.
    never = choices.get_by_role("radio", name="Never")
    await never.evaluate("(input) => { input.value = 'sometimes'; }")
    await never.check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.locator("[data-notify-form]").get_by_role("alert")).to_contain_text(
        "Not saved: The field 'email' must be one of always, failures, never."
    )
    await expect(status).to_have_text("")
    assert await call(product, "GET", "/api/me/notifications", member) == {"email": "failures"}


async def test_both_pages_pass_axe_and_fit_a_phone(
    browser: Browser, product: Product, database: Database
) -> None:
    url = hook_url()
    webhook = await add_endpoint(product, url, "Accounting system")
    await write_deliveries(database, product.organization.id, webhook["id"])
    failing, given_up = (
        await add_endpoint(product, hook_url()),
        await add_endpoint(product, hook_url(), HOSTILE),
    )
    async with database.connection() as connection:
        await connection.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '2 hours' WHERE id = $1",
            UUID(failing["id"]),
        )
        await connection.execute(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'failing',"
            " failing_since = now() - interval '1 day' WHERE id = $1",
            UUID(given_up["id"]),
        )
    page = await logged_in_page(browser, product)
    await page.goto("/webhooks")
    cards = endpoint_card(page)
    await expect(cards).to_have_count(3)
    await expect(cards.nth(1)).to_contain_text("Failing since")
    await expect(cards.nth(2).locator(".webhook__head .badge")).to_have_text(
        "Disabled after a day of failures"
    )
    await expect(cards.nth(2)).to_contain_text("Every call failed from")

    first = cards.nth(0)
    answer_dialog(page, accept=True)
    await first.get_by_role("button", name=f"Rotate secret of webhook {url}").click()
    await expect(first.get_by_role("textbox", name="Signing secret")).to_have_value(SECRET)
    await first.locator("summary", has_text="Deliveries").click()
    await expect(first.locator(".deliveries-table tbody tr")).to_have_count(20)
    await expect(first.locator(".deliveries-table")).to_have_attribute("aria-busy", "false")
    # Two edit forms open, one with the server's error under its URL.
    await cards.nth(1).get_by_role("button", name=re.compile("^Edit webhook ")).click()
    last = cards.nth(2)
    await last.get_by_role("button", name=re.compile("^Edit webhook ")).click()
    await last.get_by_role("textbox", name="URL").fill("ftp://example.com/" + "long-path/" * 30)
    await last.get_by_role("button", name="Save").click()
    await expect(last.get_by_role("alert")).to_contain_text("must start with")
    for viewport in (LAPTOP, DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await assert_no_axe_violations(page)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"/webhooks scrolls sideways at {viewport}"
        save = await last.get_by_role("button", name="Save").bounding_box()
        assert save is not None
        assert save["x"] + save["width"] <= viewport["width"], "Save is reachable without scrolling sideways"

    await page.goto("/settings")
    await expect(page.get_by_role("group", name="Email me when a batch I started ends")).to_be_enabled()
    await page.get_by_role("radio", name="Never").check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.locator("[data-notify-status]")).to_have_text("Saved")
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await assert_no_axe_violations(page)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"/settings scrolls sideways at {viewport}"
    await assert_no_markup_ran(page)
