"""The product in real Chromium: log in, invoice, watch live, cancel, reload, lose the socket."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from invoicing.settings import Settings
from invoicing.storage.database import Database
from tests.conftest import make_settings
from tests.support.factories import (
    TEST_PASSWORD,
    Organization,
    create_mixed_orders,
    create_orders,
    create_organization,
)
from tests.support.live_server import LiveServer, live_server
from tests.support.workers import WorkerProcess

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


@dataclass
class Product:
    server: LiveServer
    settings: Settings
    organization: Organization


@asynccontextmanager
async def running_product(
    database_url: str, redis_url: str, database: Database, tmp_path: Path, orders: int
) -> AsyncIterator[Product]:
    """Server and a worker process, with one organization whose users have passwords."""
    settings = make_settings(database_url, redis_url, CHUNK_SIZE="10")
    organization = await create_organization(database, with_passwords=True)
    await create_orders(database, organization, orders)
    worker = WorkerProcess(settings, tmp_path)
    try:
        async with live_server(settings) as server:
            yield Product(server, settings, organization)
    finally:
        worker.stop()


async def logged_in_page(browser: Browser, product: Product) -> Page:
    context = await browser.new_context(base_url=product.server.http, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("Email").fill(product.organization.admin.email)
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{product.server.http}/orders")
    return page


async def start_batch_of_all_matching(page: Page, count: int) -> None:
    await expect(page.locator("[data-orders-total]")).to_contain_text(f"{count:,}")
    await expect(page.locator("[data-orders-body] tr")).to_have_count(min(count, 50))
    await page.locator("[data-select-page]").check()
    if count > 50:  # more than one page: choose "Select all N matching"
        await page.locator("[data-select-banner-action]").click()
    create = page.get_by_role("button", name=f"Create {count:,} invoices")
    await create.click()
    await expect(page.get_by_text("Batch job started")).to_be_visible()


def card(page: Page) -> Any:
    return page.locator("[data-job-id]").first


async def wait_until_mid_job(page: Page) -> None:
    processed = card(page).locator('[data-field="processed"]')
    await expect(processed).not_to_have_attribute("data-value", "0", timeout=30_000)


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


HOSTILE = '<img src=x onerror="window.__xss = 1">Evil & Co <script>window.__xss = 2</script>'


async def test_customer_and_order_text_with_markup_is_shown_as_text(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        organization = product.organization
        async with database.connection() as connection:
            await connection.execute(
                "UPDATE customers SET name = $1, billing_name = $1 WHERE organization_id = $2",
                HOSTILE,
                organization.id,
            )
        await create_orders(database, organization, 1, prefix="<b>SO</b>")
        await create_orders(database, organization, 1, prefix="<i>NL</i>", lines=())
        page = await logged_in_page(browser, product)
        await expect(page.locator("[data-orders-body]")).to_contain_text(HOSTILE)
        await start_batch_of_all_matching(page, 2)
        await expect(card(page)).to_have_attribute("data-status", "completed", timeout=30_000)
        await card(page).locator("details summary").click()
        await expect(card(page).locator(".failures__item")).to_contain_text("<i>NL</i>")
        await expect(page.locator("[data-invoices]")).to_contain_text("Evil & Co")
        assert await page.evaluate("window.__xss") is None, "no markup from data ever ran"
        assert await page.locator("main img, main script, main b, main i").count() == 0


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

        await first.get_by_role("button", name=f"Retry {confirmed_but_invalid} orders").click()

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
        await expect(page.locator("[data-patterns-body]")).to_contain_text("missing_billing_info")
        await expect(page.locator("[data-stat='success']")).to_contain_text("%")
