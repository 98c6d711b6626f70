"""What a keyboard, screen-reader or demanding user keeps while the page changes under them:
the focus when rows are rebuilt or a job ends under Cancel, readable contrast while rows are
refreshed, and a plain word about orders that will fail. The tests wait on conditions (routes
held by events, Playwright's expectations), never on time.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from playwright.async_api import Browser, Route, expect

from invoicing.infra.database import Database
from tests.support.axe import assert_no_axe_violations
from tests.support.browser import Product, logged_in_page, running_product
from tests.support.factories import create_orders

pytestmark = pytest.mark.slow

#: Orders of a job that is still running once a page has loaded and the user reached its Cancel
#: button (in chunks of 10): 400 finished first, once, on a loaded machine.
RUNNING_WHILE_A_PAGE_LOADS = 2000

ROWS = "[data-orders-body] tr"
COUNT_REQUEST = re.compile(r"/api/sales-orders\?.*include_total=true")
ROWS_REQUEST = re.compile(r"/api/sales-orders\?(?!.*include_total).*")

FOCUSED_ORDER = """() => {
  const a = document.activeElement;
  return a && a.matches('input[type=checkbox][data-order-id]') ? a.dataset.orderId : a && a.tagName;
}"""


class Held:
    """Holds matching requests until released: an in-flight state stays observable."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.arrived = asyncio.Event()

    async def handle(self, route: Route) -> None:
        self.arrived.set()
        await self.released.wait()
        await route.continue_()


async def submit(product: Product, order_ids: list[UUID]) -> str:
    async with httpx.AsyncClient(
        base_url=product.server.http, headers=product.organization.admin.headers
    ) as client:
        response = await client.post("/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids]})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_ticking_a_row_while_the_count_loads_keeps_the_keyboard_focus_on_that_row(
    browser: Browser, product: Product
) -> None:
    """Keyboard: after a filter change the rows arrive before the count. A clerk tabs to a row
    and ticks it; when the count answers, renderOrders() rebuilds every row and the focused
    checkbox is destroyed: focus falls to <body> (screen readers lose their place, the next
    Tab starts over). Same on every refresh (a job ending, a 409)."""
    page = await logged_in_page(browser, product)
    await expect(page.locator(ROWS)).to_have_count(50)
    await expect(page.locator("[data-orders-total]")).to_have_text("(60)")
    held = Held()
    await page.route(COUNT_REQUEST, held.handle)

    await page.get_by_label("To date").fill("2999-12-31")  # a filter change: rows, then a count
    await asyncio.wait_for(held.arrived.wait(), 10)
    await expect(page.locator("[data-orders-total]")).to_have_text("(counting…)")
    first = page.locator(f"{ROWS} input[type=checkbox]").first
    order_id = await first.get_attribute("data-order-id")
    await first.focus()
    await page.keyboard.press("Space")
    await expect(page.locator("[data-selected-count]")).to_have_text("1 selected")

    held.released.set()
    await expect(page.locator("[data-orders-total]")).to_have_text("(60)")
    assert await page.evaluate(FOCUSED_ORDER) == order_id, "focus left the ticked row when the count arrived"


async def test_a_job_ending_under_the_focused_cancel_button_keeps_focus_in_the_page(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    """Keyboard: on a running job's page a user rests on "Cancel job" (deciding). The job
    ends; the button is hidden and focus falls to <body>. The card on Orders does the same
    (cancelButton.hidden = finished)."""
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        orders = await create_orders(database, product.organization, RUNNING_WHILE_A_PAGE_LOADS)
        page = await logged_in_page(browser, product)
        job_id = await submit(product, orders)
        await page.goto(f"/jobs/{job_id}")
        cancel = page.get_by_role("button", name="Cancel job")
        await expect(cancel).to_be_visible()
        await cancel.focus()
        await expect(page.locator('[data-job-page] [data-field="status"]')).to_have_text(
            re.compile("Completed|Failed"), timeout=60_000
        )
        await expect(cancel).to_be_hidden()
        assert await page.evaluate("() => document.activeElement !== document.body"), (
            "focus fell to <body> when the job ended under the Cancel button"
        )


async def test_the_orders_card_ending_under_the_focused_cancel_button_keeps_focus(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    """The same on the Orders page's progress card."""
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        orders = await create_orders(database, product.organization, RUNNING_WHILE_A_PAGE_LOADS)
        page = await logged_in_page(browser, product)
        job_id = await submit(product, orders)
        await page.reload()
        card = page.locator(f'[data-job-id="{job_id}"]')
        cancel = card.get_by_role("button", name="Cancel job")
        await expect(cancel).to_be_visible()
        await cancel.focus()
        await expect(card.get_by_role("button", name="Dismiss")).to_be_visible(timeout=60_000)
        assert await page.evaluate("() => document.activeElement !== document.body"), (
            "focus fell to <body> when the card's job ended under its Cancel button"
        )


async def test_the_updating_state_keeps_readable_contrast(browser: Browser, product: Product) -> None:
    """axe in the "Updating…" state: the kept rows are dimmed to opacity 0.55
    (.table[aria-busy] tbody), below 4.5:1 — axe reports color-contrast (serious). The same
    rule dims the job page's rows while a filter or page loads (.job-items[aria-busy])."""
    page = await logged_in_page(browser, product)
    await expect(page.locator(ROWS)).to_have_count(50)
    held = Held()
    await page.route(ROWS_REQUEST, held.handle)
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("[data-orders-status]")).to_have_text("Updating…")
    try:
        await assert_no_axe_violations(page)
    finally:
        held.released.set()


async def test_a_selection_says_which_orders_will_fail_as_they_stand(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    """A clerk ticks "Select all N matching" where some orders have no invoiceable lines: the
    button still offers every order (their failures are listed on the job's page, by reason),
    and the bar says plainly that those will fail."""
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        await create_orders(database, product.organization, 60)
        async with database.transaction() as connection:  # two orders lose their lines
            await connection.execute(
                "DELETE FROM sales_order_lines WHERE sales_order_id IN"
                " (SELECT id FROM sales_orders WHERE organization_id = $1 ORDER BY number LIMIT 2)",
                product.organization.id,
            )
        page = await logged_in_page(browser, product)
        await expect(page.locator("[data-orders-total]")).to_have_text("(60)")
        await page.locator("[data-select-page]").check()
        await page.locator("[data-select-banner-action]").click()
        totals = page.locator("[data-selected-totals]")
        await expect(totals).to_contain_text("2 orders without a total: they will fail as they stand")
        await expect(page.locator("[data-create]")).to_have_text("Create 60 invoices")
