"""Customer and order text with markup is shown as text in every page, toast and card (Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from invoicing.infra.database import Database
from tests.support.browser import card, logged_in_page, running_product, start_batch_of_all_matching
from tests.support.factories import create_orders

pytestmark = pytest.mark.slow

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
