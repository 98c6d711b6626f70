"""The product for browser tests: a live server and a worker, and a logged-in Chromium page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.factories import TEST_PASSWORD, Organization, User, create_orders, create_organization
from tests.support.live_server import LiveServer, live_server
from tests.support.workers import WorkerProcess

#: The widths every page is checked at: a laptop and a phone.
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Product:
    server: LiveServer
    settings: Settings
    organization: Organization


@asynccontextmanager
async def running_product(
    database_url: str, redis_url: str, database: Database, tmp_path: Path, orders: int, *, worker: bool = True
) -> AsyncIterator[Product]:
    """Server and a worker process, with one organization whose users have passwords.

    ``worker=False``: no worker at all, so every job stays pending (nothing sweeps either)."""
    settings = make_settings(database_url, redis_url, CHUNK_SIZE="10")
    organization = await create_organization(database, with_passwords=True)
    await create_orders(database, organization, orders)
    process = WorkerProcess(settings, tmp_path) if worker else None
    try:
        async with live_server(settings) as server:
            yield Product(server, settings, organization)
    finally:
        if process is not None:
            process.stop()


async def logged_in_page(browser: Browser, product: Product, user: User | None = None) -> Page:
    """A fresh browser context (its own cookies) logged in as ``user``, by default the admin."""
    context = await browser.new_context(base_url=product.server.http, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("Email").fill((user or product.organization.admin).email)
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
    # The card, not the "Batch job started" toast: a small job's "Done" toast may replace it.
    await expect(card(page)).to_be_visible()


def card(page: Page) -> Any:
    return page.locator("[data-job-id]").first


async def wait_until_mid_job(page: Page) -> None:
    processed = card(page).locator('[data-field="processed"]')
    # A count above zero (a card not yet rendered has no value at all).
    await expect(processed).to_have_attribute("data-value", re.compile(r"^[1-9][0-9]*$"), timeout=30_000)


#: Nothing scrolls sideways: neither the window nor the page's own scroller (.app__scroll), nor
#: any element inside it wider than its box.
NO_SIDEWAYS_SCROLL = """() => [document.documentElement, document.querySelector(".app__scroll"),
  ...document.querySelectorAll(".table-wrap")]
  .filter(Boolean).every((node) => node.scrollWidth <= node.clientWidth)"""
