"""Every page passes axe-core at desktop (1280 px) and phone (390 px) widths, in real Chromium.

Each page is checked as a person meets it: logged out, a member's and an admin's pages, the
Orders page with and without a job card, and the Settings page with a new token shown.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.axe import assert_no_axe_violations
from tests.support.browser import DESKTOP, PHONE, Product, card, logged_in_page, start_batch_of_all_matching

pytestmark = pytest.mark.slow


async def at_both_widths(page: Page, **allowed: frozenset[str]) -> None:
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await assert_no_axe_violations(page, **allowed)


async def test_the_login_page(browser: Browser, product: Product) -> None:
    context = await browser.new_context(base_url=product.server.http)
    page = await context.new_page()
    await page.goto("/login")
    await at_both_widths(page)
    await page.get_by_label("Email").fill(product.organization.admin.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await at_both_widths(page)
    await context.close()


async def test_the_orders_page(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await expect(page.locator("[data-orders-body] tr")).to_have_count(50)
    await at_both_widths(page)
    await page.context.close()


async def test_the_orders_page_with_a_job_card(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await start_batch_of_all_matching(page, 60)
    await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    await at_both_widths(page)
    await page.context.close()


async def test_the_jobs_page(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await page.goto("/jobs")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await at_both_widths(page)
    await page.context.close()


async def test_the_operations_page(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await page.goto("/operations")
    await expect(page.locator("[data-tiles]")).to_have_attribute("aria-busy", "false")
    await at_both_widths(page)
    await page.context.close()


async def test_the_settings_page_with_a_new_token(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await page.goto("/settings")
    await expect(page.locator(".tokens-table")).to_have_attribute("aria-busy", "false")
    await at_both_widths(page)
    await page.get_by_label("Name").fill("nightly export")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("[data-tokens-body] tr", has_text="nightly export")).to_be_visible()
    await expect(page.locator(".tokens-table")).to_have_attribute("aria-busy", "false")
    await at_both_widths(page)
    await page.context.close()


async def test_the_not_allowed_and_not_found_pages(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product, product.organization.member)
    response = await page.goto("/operations")
    assert response is not None
    assert response.status == 403
    await at_both_widths(page)
    response = await page.goto("/no-such-page")
    assert response is not None
    assert response.status == 404
    await at_both_widths(page)
    await page.context.close()


async def test_a_jobs_own_page(browser: Browser, product: Product) -> None:
    page = await logged_in_page(browser, product)
    await start_batch_of_all_matching(page, 60)
    await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    job_id = await card(page).get_attribute("data-job-id")
    await page.goto(f"/jobs/{job_id}")
    await expect(page.locator("[data-items-body] tr")).to_have_count(50)
    await expect(page.locator("[data-items-table]")).not_to_have_attribute("aria-busy", "true")
    await at_both_widths(page)
    await page.context.close()
