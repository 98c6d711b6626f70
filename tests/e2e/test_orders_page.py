"""The Orders page in real Chromium at month-end size: the list never goes blank while a large
job runs, errors offer Retry, held orders cannot be ticked and "all matching" leaves them out,
a refused batch is explained, filters narrow the list and the batch, selected totals per
currency, a phone's width with its sticky bar, and the keyboard's order."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect

from invoicing.infra.database import Database
from tests.support.browser import NO_SIDEWAYS_SCROLL, Product, logged_in_page, running_product
from tests.support.factories import create_orders

pytestmark = pytest.mark.slow

ROWS = "[data-orders-body] tr"
UNINVOICED = {"status": "confirmed", "invoiced": "false"}

# The fewest rows the list showed once it had shown some: proof that it never went blank.
WATCH_ROWS = """
() => {
  window.__fewestRows = null;
  const body = document.querySelector('[data-orders-body]');
  new MutationObserver(() => {
    const rows = body.querySelectorAll('tr').length;
    const fewest = window.__fewestRows;
    if (fewest !== null || rows > 0) window.__fewestRows = Math.min(fewest ?? rows, rows);
  }).observe(body, { childList: true });
}
"""


async def api(product: Product, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=product.server.http, headers=product.organization.admin.headers
    ) as c:
        return await c.request(method, path, **kwargs)


async def submit(product: Product, order_ids: list[UUID]) -> str:
    response = await api(product, "POST", "/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids]})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


class Gate:
    """Holds the order list's answers until opened: the in-flight state stays observable."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0

    async def handle(self, route: Route) -> None:
        if not self.open.is_set():
            self.held += 1
        await self.open.wait()
        await route.continue_()


async def test_a_large_running_job_never_blanks_the_list_and_its_orders_cannot_be_taken_twice(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        free = await create_orders(database, product.organization, 60, prefix="A")
        busy = await create_orders(database, product.organization, 3000, prefix="B")
        page = await logged_in_page(browser, product)
        await page.evaluate(WATCH_ROWS)
        await expect(page.locator("[data-orders-total]")).to_have_text("(3,060)")
        await page.locator("[data-select-page]").check()

        # A job takes three of the ticked orders (at its end, so it holds them for long).
        first_job = await submit(product, [*busy, *free[:3]])
        async with page.expect_response("**/api/batch-jobs") as answer:
            await page.get_by_role("button", name="Create 50 invoices").click()
        assert (await answer.value).status == 409
        held_message = page.locator("[data-held-message]")
        await expect(held_message).to_contain_text("3 selected orders are already in a running job")
        await expect(held_message.locator(f'a[href="/jobs/{first_job}"]')).to_be_visible()
        await expect(held_message).to_be_focused()

        # Refreshed: the three are "in job …", linked, and cannot be ticked.
        held_row = page.locator(f'{ROWS}[data-order-id="{free[0]}"]')
        await expect(held_row.get_by_role("link", name=re.compile("^In job"))).to_have_attribute(
            "href", f"/jobs/{first_job}"
        )
        await expect(held_row.get_by_role("checkbox")).to_be_disabled()
        await expect(page.get_by_role("button", name="Create 47 invoices")).to_be_enabled()

        # The page of rows answers slowly: the old rows stay, marked "Updating…".
        gate = Gate()
        await page.route("**/api/sales-orders?*", gate.handle)
        gate.open.clear()
        await page.get_by_role("button", name="Next").click()
        await expect(page.locator("[data-orders-status]")).to_have_text("Updating…")
        await expect(page.locator(ROWS)).to_have_count(50)
        await expect(held_row).to_be_visible()
        gate.open.set()
        await expect(page.locator("[data-orders-status]")).to_have_text("")
        await expect(page.locator("#orders-title")).to_be_focused()
        await expect(page.locator("[data-page-info]")).to_contain_text("51–100")
        for _ in range(3):
            await page.get_by_role("button", name="Previous").click()
            await expect(page.locator("[data-page-info]")).to_contain_text("1–50")
            await page.get_by_role("button", name="Next").click()
            await expect(page.locator("[data-page-info]")).to_contain_text("51–100")
        await page.reload()
        await page.evaluate(WATCH_ROWS)
        await page.get_by_role("button", name="Next").click()
        await expect(page.locator("[data-page-info]")).to_contain_text("51–100")
        assert (await page.evaluate("window.__fewestRows")) > 0, "the list went blank while loading"
        await page.get_by_role("button", name="Previous").click()
        await expect(page.locator("[data-page-info]")).to_contain_text("1–50")

        # Keyboard: after ticking "Select page", Tab reaches "Select all N matching".
        await page.locator("[data-select-page]").focus()
        await page.keyboard.press("Space")
        offer = page.locator("[data-select-banner-action]")
        await expect(offer).to_be_visible()
        await page.keyboard.press("Tab")
        await expect(offer).to_be_focused()
        await expect(offer).to_have_text(
            re.compile(r"^Select all 57 matching \([\d,]+ in running jobs are left out\)$")
        )
        assert await page.evaluate(
            "() => document.activeElement === document.querySelector('[data-select-banner-action]')"
        )

        # "All matching" leaves the held orders out and sends the filter, not ids.
        await page.keyboard.press("Enter")
        await expect(page.locator("[data-select-banner-text]")).to_contain_text(
            "in running jobs are left out"
        )
        assert await create_clicked(page, "Create 57 invoices") == {
            "filter": {"status": "confirmed", "invoiced": False},
            "priority": "normal",  # as the choice beside the button shows
        }
        new_card = page.locator(".job-card").filter(has_text="57")
        await expect(new_card.locator(".job-card__title")).to_be_focused()
        job = await api(product, "GET", f"/api/batch-jobs/{first_job}")
        assert job.json()["status"] in ("pending", "processing"), "the big job must outlive the checks"


async def add_customer(database: Database, product: Product, name: str, currency: str) -> UUID:
    customer_id = uuid4()
    async with database.transaction() as connection:
        await connection.execute(
            "INSERT INTO customers (id, organization_id, name, billing_name, billing_address, billing_email,"
            " currency) VALUES ($1, $2, $3, $3, 'Main St 1', 'billing@example.test', $4)",
            customer_id,
            product.organization.id,
            name,
            currency,
        )
    return customer_id


async def date_orders(database: Database, order_ids: list[UUID], day: str) -> None:
    async with database.transaction() as connection:
        await connection.execute(
            "UPDATE sales_orders SET order_date = $2::text::date WHERE id = ANY($1::uuid[])", order_ids, day
        )


def euros(amount: Decimal, sign: str = "€") -> str:
    return f"{sign}{amount:,.2f}"


async def euro_total(product: Product, **params: str) -> str:
    """The API's total of every matching uninvoiced order, all in euros, as the page writes it."""
    answer = await api(product, "GET", "/api/sales-orders/totals", params={**UNINVOICED, **params})
    (eur,) = answer.json()["currencies"]
    return euros(Decimal(eur["total"]))


async def create_clicked(page: Page, name: str) -> Any:
    """Clicks the Create button named ``name``; the batch request's JSON body."""
    async with page.expect_request(
        lambda r: r.url.endswith("/api/batch-jobs") and r.method == "POST"
    ) as sent:
        await page.get_by_role("button", name=name).click()
    return json.loads((await sent.value).post_data or "{}")


async def test_filters_totals_errors_and_a_phones_width(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        dollars = await add_customer(database, product, "Yankee Inc", "USD")
        january = await create_orders(database, product.organization, 60, prefix="B")
        february = await create_orders(
            database, product.organization, 20, prefix="A", currency="USD", customer_id=dollars
        )
        march = await create_orders(database, product.organization, 40, prefix="C")
        await date_orders(database, january, "2026-01-15")
        await date_orders(database, february, "2026-02-10")
        await date_orders(database, march, "2026-03-05")
        page = await logged_in_page(browser, product)
        await expect(page.locator(ROWS)).to_have_count(50)

        # The first answer is a 503: the API's message, and Retry brings the rows.
        failed_once: list[str] = []

        async def fail_once(route: Route) -> None:
            if failed_once:
                await route.continue_()
                return
            failed_once.append(route.request.url)
            body = {"error": {"code": "database_timeout", "message": "The database took too long to answer."}}
            await route.fulfill(status=503, json=body, headers={"Retry-After": "1"})

        await page.route(re.compile(r"/api/sales-orders\?(?!.*include_total).*"), fail_once)
        await page.reload()
        alert = page.locator("[data-orders-error]")
        await expect(alert).to_contain_text("The database took too long to answer.")
        await alert.get_by_role("button", name="Retry").click()
        await expect(alert).to_be_hidden()
        await expect(page.locator(ROWS)).to_have_count(50)
        await expect(page.locator("[data-orders-total]")).to_have_text("(120)")

        # Ticked rows: totals per currency, in minor units, equal to the API's totals.
        await page.locator(f'{ROWS}[data-order-id="{january[0]}"] input').check()
        await page.locator(f'{ROWS}[data-order-id="{january[1]}"] input').check()
        await page.locator(f'{ROWS}[data-order-id="{february[0]}"] input').check()
        one = await api(product, "GET", "/api/sales-orders", params={"limit": "1", "currency": "EUR"})
        each = Decimal(one.json()["items"][0]["total"])
        totals = page.locator("[data-selected-totals]")
        await expect(totals).to_have_text(f"{euros(each * 2)} · {euros(each, '$')}")
        await expect(page.locator("[data-selected-count]")).to_have_text("3 selected")

        # Filters: date range and currency narrow the list, reset the selection, live in the URL.
        await page.get_by_label("From date").fill("2026-02-01")
        await expect(page.locator("[data-orders-total]")).to_have_text("(60)")
        await expect(page.locator("[data-selected-count]")).to_have_text("No orders selected")
        await expect(page.get_by_label("From date")).to_be_focused()
        await page.get_by_label("Currency").select_option("EUR")
        await expect(page.locator("[data-orders-total]")).to_have_text("(40)")
        await expect(page).to_have_url(re.compile(r"order_date_from=2026-02-01.*currency=EUR"))
        await page.reload()
        await expect(page.get_by_label("Currency")).to_have_value("EUR")
        await expect(page.locator(ROWS)).to_have_count(40)
        await page.locator("[data-select-page]").check()
        await expect(totals).to_have_text(
            await euro_total(product, order_date_from="2026-02-01", currency="EUR")
        )
        assert len((await create_clicked(page, "Create 40 invoices"))["order_ids"]) == 40
        await page.screenshot(path="/tmp/orders-1280.png", full_page=True)

        await expect(page.locator(".job-card")).to_have_attribute("data-status", "completed", timeout=30_000)

        # "All matching" under a filter: "calculating…", then the server's totals; the same
        # filter goes with the batch.
        await page.get_by_label("From date").fill("")
        await page.get_by_label("Currency").select_option("")
        await page.get_by_label("Customer").select_option(label="Acme GmbH")
        await expect(page.locator("[data-orders-total]")).to_have_text("(60)")
        await page.locator("[data-select-page]").check()
        gate = Gate()
        gate.open.clear()
        await page.route("**/api/sales-orders/totals?*", gate.handle)
        await page.get_by_role("button", name="Select all 60 matching").click()
        await expect(totals).to_have_text("Total: calculating…")
        gate.open.set()
        acme = str(product.organization.customer_id)
        await expect(totals).to_have_text(await euro_total(product, customer_id=acme))
        assert await create_clicked(page, "Create 60 invoices") == {
            "filter": {"status": "confirmed", "invoiced": False, "customer_id": acme},
            "priority": "normal",
        }

        completed = page.locator('.job-card[data-status="completed"]')
        await expect(completed).to_have_count(2, timeout=30_000)

        # A phone: no sideways scroll, stacked rows with labels, the bar in view at the bottom.
        await page.get_by_role("button", name="Clear filters").click()
        await expect(page.get_by_label("From date")).to_be_focused()
        await expect(page.locator(ROWS)).to_have_count(20)
        await page.set_viewport_size({"width": 390, "height": 844})
        await expect(page.locator(ROWS).first).to_be_visible()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), "the Orders page scrolls sideways at 390 px"
        await page.locator(ROWS).nth(3).locator("input").focus()
        await page.keyboard.press("Space")
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        bar = page.locator("[data-selection-bar]")
        await expect(bar.get_by_role("button", name="Create 1 invoice")).to_be_in_viewport()
        box = await bar.bounding_box()
        assert box is not None
        assert box["height"] < 200, "the bar covers the list"
        assert box["y"] + box["height"] <= 844, "the bar is below the screen"
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.screenshot(path="/tmp/orders-390.png", full_page=False)
        await page.screenshot(path="/tmp/orders-390-full.png", full_page=True)
