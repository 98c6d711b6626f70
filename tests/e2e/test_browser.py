"""The product in real Chromium: log in, invoice, watch live, cancel, reload, lose the socket."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Request, WebSocketRoute, expect

from invoicing.infra.database import Database
from tests.conftest import make_settings
from tests.support.browser import (
    Product,
    card,
    logged_in_page,
    running_product,
    start_batch_of_all_matching,
    wait_until_mid_job,
)
from tests.support.factories import create_mixed_orders, create_orders, create_organization
from tests.support.live_server import live_server
from tests.support.sockets import submit
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

# Record every count the card shows, as the page changes it: proof that it moved live.
WATCH_PROCESSED = """
() => {
  window.__processedSeen = [];
  new MutationObserver(() => {
    const field = document.querySelector('[data-job-id] [data-field="processed"]');
    const value = field && field.dataset.value;
    if (value && window.__processedSeen.at(-1) !== value) window.__processedSeen.push(value);
  }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
}
"""


async def test_a_user_invoices_300_orders_and_watches_them_live(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=300) as product:
        page = await logged_in_page(browser, product)
        await page.evaluate(WATCH_PROCESSED)
        await start_batch_of_all_matching(page, 300)
        job = card(page)
        await expect(job).to_have_attribute("data-status", "completed", timeout=60_000)
        assert await job.get_attribute("data-transport") == "websocket"
        await expect(job.locator('[data-field="processed"]')).to_have_attribute("data-value", "300")
        await expect(job.locator('[data-field="succeeded"]')).to_have_attribute("data-value", "300")
        await expect(job.locator('[data-field="failed"]')).to_have_attribute("data-value", "0")
        await expect(page.locator("#toasts").get_by_text("Done: 300 invoices created")).to_be_visible()
        await expect(page.locator("[data-invoices] li")).to_have_count(10)
        await expect(page.locator("[data-orders-empty]")).to_be_visible()
        seen = await page.evaluate("window.__processedSeen")
        assert len(seen) >= 3, f"the count should move in steps, saw {seen}"
        assert [int(v) for v in seen] == sorted(int(v) for v in seen), "never goes backwards"


async def test_a_user_cancels_a_big_job_midway(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=4000) as product:
        page = await logged_in_page(browser, product)
        await start_batch_of_all_matching(page, 4000)
        await wait_until_mid_job(page)
        page.once("dialog", lambda dialog: dialog.accept())
        await card(page).get_by_role("button", name="Cancel job").click()
        await expect(card(page)).to_have_attribute("data-status", "cancelled", timeout=30_000)
        processed = int(await card(page).locator('[data-field="processed"]').get_attribute("data-value") or 0)
        assert 0 < processed < 4000
        await expect(page.locator("#toasts").get_by_text("Cancelled after")).to_be_visible()


async def test_the_card_comes_back_live_after_a_reload(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=3000) as product:
        page = await logged_in_page(browser, product)
        await start_batch_of_all_matching(page, 3000)
        job_id = await card(page).get_attribute("data-job-id")
        await wait_until_mid_job(page)
        await page.reload()
        await expect(card(page)).to_have_attribute("data-job-id", job_id or "")
        await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
        await expect(card(page).locator('[data-field="processed"]')).to_have_attribute("data-value", "3000")


async def test_the_card_finishes_through_polling_when_websockets_are_blocked(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=1500) as product:
        page = await logged_in_page(browser, product)
        await page.route_web_socket("**/ws/**", lambda socket: socket.close())
        await start_batch_of_all_matching(page, 1500)
        await expect(card(page)).to_have_attribute("data-transport", "polling", timeout=15_000)
        await expect(page.get_by_text("Live updates paused")).to_be_visible()
        await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
        await expect(card(page).locator('[data-field="processed"]')).to_have_attribute("data-value", "1500")


async def test_a_page_whose_socket_is_refused_4429_polls_and_waits_long_before_trying_again(
    browser: Browser, database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url)
    organization = await create_organization(database, with_passwords=True)
    async with live_server(settings) as server:
        job = await submit(server, organization, await create_orders(database, organization, 3))
        # No worker: the job stays pending, so its page keeps watching it.
        page = await logged_in_page(browser, Product(server, settings, organization))
        attempts: list[str] = []
        job_reads: list[str] = []

        async def refuse(socket: WebSocketRoute) -> None:
            attempts.append(socket.url)
            error = {"code": "too_many_sockets", "message": "You already have 20 live connections open."}
            socket.send(json.dumps({"type": "error", "error": error}))
            await socket.close(code=4429, reason="too many sockets")

        def count_job_reads(request: Request) -> None:
            if request.url.endswith(f"/api/batch-jobs/{job['id']}"):
                job_reads.append(request.url)

        await page.goto("about:blank")  # the orders page's card watches the job too: leave it first
        await page.route_web_socket("**/ws/**", refuse)
        page.on("request", count_job_reads)
        await page.goto(f"/jobs/{job['id']}")
        await expect(page.locator("[data-job-page]")).to_have_attribute("data-transport", "polling")

        async def polled_for_four_seconds() -> bool:
            return len(job_reads) >= 4  # the page's first read, then a poll every 2 s

        await eventually(polled_for_four_seconds, timeout=30, what="the job page to poll")
    # Reconnecting after 1, 2, 4 s as after a dropped socket would have tried three times by now.
    assert len(attempts) == 1, attempts


async def test_an_admin_retries_the_failed_orders_and_sees_it_on_the_operations_page(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=20) as product:
        mixed = await create_mixed_orders(database, product.organization, valid=0)
        confirmed_but_invalid = sum(code != "order_not_confirmed" for code in mixed.invalid.values()) - 1
        total = 20 + confirmed_but_invalid
        page = await logged_in_page(browser, product)
        await start_batch_of_all_matching(page, total)
        await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
        first = page.locator(f'[data-job-id="{await card(page).get_attribute("data-job-id")}"]')

        await first.get_by_role("button", name="Retry failed orders").click()

        retry = page.locator(".job-card", has_text=f"Retrying {confirmed_but_invalid} orders")
        await expect(retry).to_have_attribute("data-status", "completed", timeout=60_000)
        await expect(retry.locator('[data-field="failed"]')).to_have_attribute(
            "data-value", str(confirmed_but_invalid)
        )
        await expect(first.get_by_role("button", name=re.compile("Retry"))).to_be_hidden()

        await page.get_by_role("link", name="Operations").click()
        audit = page.locator("[data-audit-body]")
        await expect(audit.locator("tr").first).to_contain_text("Created a job")
        await expect(audit).to_contain_text("Retried a job")
        # In words, and the order that failed in the job and again in its retry counts once.
        reason = page.locator("[data-code='missing_billing_info']")
        billing = page.locator("[data-patterns-body] tr", has=reason)
        await expect(billing).to_contain_text("Customer billing details missing")
        await expect(billing.locator("td[data-label='Orders']")).to_have_text("1")
        await expect(page.locator("[data-stat='success']")).to_contain_text("%")
