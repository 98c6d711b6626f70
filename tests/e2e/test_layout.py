"""Layout in real Chromium at 1280 and 390 px: toasts cover nothing, tables fit a phone, focus
goes somewhere sensible after an action."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from invoicing.infra.database import Database
from tests.support.browser import DESKTOP, PHONE, Product, card, logged_in_page
from tests.support.factories import create_mixed_orders

pytestmark = pytest.mark.slow


# Three messages in a row, as a busy page sends them.
THREE_TOASTS = """async () => {
  const { toast } = await import("/static/ui.js");
  toast("First message");
  toast("Second message", "error");
  toast("Third message", "success");
}"""

# Buttons and links in sight whose middle is covered by something that is not part of them.
COVERED_CONTROLS = """() => [...document.querySelectorAll("main button, main a, main input")]
  .filter((node) => node.checkVisibility())
  .filter((node) => {
    const box = node.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
    const top = document.elementFromPoint(x, y);
    const scroller = document.querySelector(".app__scroll");
    const clipped = y > scroller.getBoundingClientRect().bottom;  // scrolled out of the page's area
    // Rows scrolled under a sticky toolbar are out of sight, not covered (focus scrolls them
    // clear of it: scroll-padding).
    const sticky = top?.closest("[data-selection-bar]");
    const underToolbar = sticky && getComputedStyle(sticky).position === "sticky" && !sticky.contains(node);
    return !clipped && !underToolbar && !(top === node || node.contains(top) || top?.contains(node));
  })
  .map((node) => node.outerHTML.slice(0, 80))"""


async def covered_controls(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(COVERED_CONTROLS)
    return found


async def test_toasts_collapse_into_one_that_covers_no_button(
    browser: Browser, product: Product, database: Database
) -> None:
    await create_mixed_orders(database, product.organization, valid=0)
    page = await logged_in_page(browser, product)
    await expect(page.locator("[data-orders-body] tr")).to_have_count(50)
    await page.locator("[data-select-page]").check()
    await page.locator("[data-select-banner-action]").click()
    await page.get_by_role("button", name=re.compile(r"Create \d+ invoices")).click()
    await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(card(page).get_by_role("button", name="Retry")).to_be_visible()
    # The list refreshes once the job has finished: measured while its rows are rebuilt, a row
    # would be "covered" by its own replacement.
    await expect(page.locator("[data-orders-body] input[aria-label*='in a running job']")).to_have_count(0)

    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await page.evaluate(THREE_TOASTS)
        await expect(page.locator("#toasts .toast")).to_have_count(1)
        await expect(page.locator("#toasts")).to_have_text("Third message×")
        for position in ("top", "bottom"):
            await page.locator(".app__scroll").evaluate(
                f"(node) => node.scrollTo(0, {'0' if position == 'top' else 'node.scrollHeight'})"
            )
            assert await covered_controls(page) == [], f"covered at {viewport} scrolled to the {position}"

    await page.get_by_role("button", name="Dismiss notification").click()
    await expect(page.locator("#toasts .toast")).to_have_count(0)
    await expect(page.locator("#main")).to_be_focused()


# What of a card's content reaches past its border (right edge), by tag and class.
PAST_THE_CARD = """(card) => {
  const edge = card.getBoundingClientRect().right;
  return [...card.querySelectorAll("*")]
    .filter((node) => node.checkVisibility() && node.getBoundingClientRect().right > edge + 0.5)
    .map((node) => `${node.tagName}.${node.className}`);
}"""


async def test_a_finished_card_with_all_its_actions_fits_a_phone(
    browser: Browser, product: Product, database: Database
) -> None:
    # "Job details", "Retry failed orders" and "Dismiss" side by side are wider than a phone's card.
    await create_mixed_orders(database, product.organization, valid=1)
    page = await logged_in_page(browser, product)
    await page.set_viewport_size(PHONE)
    await expect(page.locator("[data-orders-body] tr")).to_have_count(50)
    await page.locator("[data-select-page]").check()
    await page.locator("[data-select-banner-action]").click()  # every matching order, the broken ones too
    await page.get_by_role("button", name=re.compile(r"Create \d+ invoices")).click()
    await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(card(page).get_by_role("button", name="Retry failed orders")).to_be_visible()
    await expect(card(page).get_by_role("button", name="Dismiss")).to_be_visible()

    assert await card(page).evaluate(PAST_THE_CARD) == []
    assert await card(page).evaluate("(node) => node.scrollWidth <= node.clientWidth")


async def test_the_tokens_table_fits_a_phone_and_revoking_keeps_focus(
    browser: Browser, product: Product
) -> None:
    page = await logged_in_page(browser, product)
    await page.set_viewport_size(PHONE)
    await page.goto("/settings")
    revoke = page.get_by_role("button", name="Revoke token").first
    await expect(revoke).to_be_visible()

    box = await revoke.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"], "Revoke must be reachable without scrolling sideways"
    wrap = page.locator(".tokens-table").locator("xpath=..")
    assert await wrap.evaluate("(node) => node.scrollWidth <= node.clientWidth")

    page.once("dialog", lambda dialog: dialog.accept())
    await revoke.click()
    await expect(page.get_by_text("Revoked", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Your API tokens")).to_be_focused()


async def test_the_operations_tables_fit_a_phone(
    browser: Browser, product: Product, database: Database
) -> None:
    mixed = await create_mixed_orders(database, product.organization, valid=1)
    async with httpx.AsyncClient(
        base_url=product.server.http, headers=product.organization.admin.headers
    ) as api:
        response = await api.post("/api/batch-jobs", json={"order_ids": [str(i) for i in mixed.all_ids]})
        assert response.status_code == 202, response.text
    page = await logged_in_page(browser, product)
    await page.set_viewport_size(PHONE)
    await page.goto("/operations")
    await expect(page.locator("[data-audit-body] tr").first).to_be_visible()
    await expect(page.locator("[data-patterns-body] tr").first).to_be_visible(timeout=30_000)
    for table in (".patterns-table", ".audit-table"):
        wrap = page.locator(table).locator("xpath=..")
        assert await wrap.evaluate("(node) => node.scrollWidth <= node.clientWidth"), table
