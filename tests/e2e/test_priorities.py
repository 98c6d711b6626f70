"""Job priorities in real Chromium: an admin picks one on the Orders page and changes a waiting
job's on its page; a member never sees Urgent; the card, the jobs list and the Operations page
say which priority a job has, at a laptop's and a phone's width."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, Request, Route, expect

from invoicing.admin.operations import PENDING_TOO_LONG_SECONDS
from invoicing.infra.database import Database
from tests.support.axe import assert_no_axe_violations
from tests.support.browser import (
    DESKTOP,
    NO_SIDEWAYS_SCROLL,
    PHONE,
    Product,
    card,
    logged_in_page,
    running_product,
    start_batch_of_all_matching,
)

pytestmark = pytest.mark.slow
ORDERS = 5


@pytest_asyncio.fixture
async def idle(
    database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> AsyncIterator[Product]:
    """The product with no worker at all: every job waits, so its priority can still change."""
    async with running_product(database_url, redis_url, database, tmp_path, ORDERS, worker=False) as product:
        yield product


def priority_of(page: Page) -> Locator:
    """The first job card's priority."""
    return card(page).locator('[data-field="priority"]')


def fact(page: Page, name: str) -> Locator:
    """One of the facts of a job's page."""
    return page.locator(f'[data-job-page] [data-field="{name}"]')


def creates_a_job(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith("/api/batch-jobs")


async def fits_and_passes_axe_at_both_widths(page: Page, what: str) -> None:
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"{what} scrolls sideways at {viewport['width']} px"
        await assert_no_axe_violations(page)
    await page.set_viewport_size(DESKTOP)


async def choices(page: Page) -> list[str]:
    options: list[str] = await page.get_by_label("Priority").locator("option").all_inner_texts()
    return options


async def test_an_admin_starts_an_urgent_batch_and_every_list_says_so(
    browser: Browser, product: Product
) -> None:
    page = await logged_in_page(browser, product)
    assert await choices(page) == ["Urgent", "Normal", "Low"]
    await expect(page.get_by_label("Priority")).to_have_value("normal")
    await page.get_by_label("Priority").select_option("urgent")
    async with page.expect_request(creates_a_job) as submitted:
        await start_batch_of_all_matching(page, 60)
    assert (await submitted.value).post_data_json["priority"] == "urgent"
    # Urgent is asked for anew each time: the next batch would be normal.
    await expect(page.get_by_label("Priority")).to_have_value("normal")
    # Read as "Priority: Urgent"; seen as "Urgent".
    await expect(priority_of(page)).to_have_text("Priority: Urgent")
    await expect(priority_of(page).locator(".visually-hidden")).to_have_text("Priority: ")
    await expect(card(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    job_id = await card(page).get_attribute("data-job-id")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL), "the Orders page scrolls sideways at 390 px"

    await page.goto("/jobs")
    row = page.locator(f'[data-history-body] tr[data-job-id="{job_id}"]')
    await expect(row.locator('[data-field="priority"]')).to_have_text("Urgent")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL), "the Jobs page scrolls sideways at 390 px"

    await page.goto(f"/jobs/{job_id}")
    await expect(fact(page, "priority")).to_have_text("Urgent")
    # Finished: nothing left to move ahead.
    await expect(page.locator("[data-priority-form]")).to_be_hidden()

    await page.goto("/operations")
    created = page.locator("[data-audit-body] tr", has_text="Created a job")
    await expect(created).to_contain_text("60 orders, urgent priority")


async def test_a_member_has_no_urgent_and_an_admin_moves_a_waiting_job_ahead(
    browser: Browser, database: Database, idle: Product
) -> None:
    member = await logged_in_page(browser, idle, idle.organization.member)
    assert await choices(member) == ["Normal", "Low"]
    await member.get_by_label("Priority").select_option("low")
    await start_batch_of_all_matching(member, ORDERS)
    await expect(card(member)).to_have_attribute("data-status", "pending")
    await expect(priority_of(member)).to_have_text("Priority: Low")
    job_id = await card(member).get_attribute("data-job-id")
    await member.goto(f"/jobs/{job_id}")
    await expect(fact(member, "priority")).to_have_text("Low")
    await expect(member.locator("[data-priority-form]")).to_have_count(0)
    await member.goto("/orders")
    await expect(priority_of(member)).to_have_text("Priority: Low")

    admin = await logged_in_page(browser, idle)
    await admin.goto(f"/jobs/{job_id}")
    await expect(fact(admin, "priority")).to_have_text("Low")
    await expect(admin.get_by_label("Priority")).to_have_value("low")
    await expect(admin.locator("[data-job-page]")).to_have_attribute("data-transport", "websocket")
    await admin.get_by_label("Priority").select_option("urgent")
    await admin.get_by_role("button", name="Change priority").click()
    await expect(admin.locator("#toasts")).to_contain_text("Priority changed to urgent.")
    await expect(fact(admin, "priority")).to_have_text("Urgent")
    await expect(admin.get_by_role("button", name="Change priority")).to_be_focused()
    await fits_and_passes_axe_at_both_widths(admin, "a waiting job's page")
    # The member's card heard it live.
    await expect(priority_of(member)).to_have_text("Priority: Urgent")
    await fits_and_passes_axe_at_both_widths(member, "the Orders page with an urgent card")

    # A job waiting this long is stuck: the Operations page lists it, with its priority.
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE batch_job_queue SET created_at = created_at - $2::interval WHERE id = $1",
            job_id,
            timedelta(seconds=2 * PENDING_TOO_LONG_SECONDS),
        )
    await admin.goto("/operations")
    stuck = admin.locator(f'[data-stuck-list] li[data-job-id="{job_id}"]')
    await expect(stuck).to_contain_text("Priority: Urgent")
    changed = admin.locator("[data-audit-body] tr", has_text="Changed a job's priority")
    await expect(changed).to_contain_text("to urgent priority")
    created = admin.locator("[data-audit-body] tr", has_text="Created a job")
    await expect(created).to_contain_text(f"{ORDERS} orders, low priority")
    await fits_and_passes_axe_at_both_widths(admin, "the Operations page with a stuck urgent job")


async def test_changing_the_priority_of_a_job_that_just_ended_says_so_and_keeps_focus(
    browser: Browser, database: Database, idle: Product
) -> None:
    page = await logged_in_page(browser, idle)
    await start_batch_of_all_matching(page, ORDERS)
    job_id = await card(page).get_attribute("data-job-id")
    await page.goto(f"/jobs/{job_id}")
    await expect(page.get_by_label("Priority")).to_have_value("normal")
    # Live already, so that what follows reaches it through no snapshot either.
    await expect(page.locator("[data-job-page]")).to_have_attribute("data-transport", "websocket")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL), "the job page scrolls sideways at 390 px"
    # It ends behind the page's back (no event goes out; its seq moves, as with every change):
    # the page learns it from the 409.
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE batch_job_queue SET status = 'cancelled', cancelled_items = total_items,"
            " completed_at = now(), progress_seq = progress_seq + 1 WHERE id = $1",
            job_id,
        )
    await page.get_by_label("Priority").select_option("low")
    await page.get_by_role("button", name="Change priority").click()
    await expect(page.locator("#toasts")).to_contain_text("The job had already finished")
    await expect(fact(page, "status")).to_have_text("Cancelled")
    await expect(page.locator("[data-priority-form]")).to_be_hidden()
    await expect(page.get_by_role("heading", level=1)).to_be_focused()
    await expect(fact(page, "priority")).to_have_text("Normal")


async def test_a_priority_picked_before_the_page_script_ran_is_the_one_asked_for(
    browser: Browser, idle: Product
) -> None:
    page = await logged_in_page(browser, idle)
    await start_batch_of_all_matching(page, ORDERS)
    job_id = await card(page).get_attribute("data-job-id")
    script_may_load = asyncio.Event()

    async def held(route: Route) -> None:
        await script_may_load.wait()
        await route.continue_()

    await page.route("**/static/job-page.js", held)
    await page.goto(f"/jobs/{job_id}", wait_until="commit")
    await page.get_by_label("Priority").select_option("low")
    await expect(page.get_by_role("button", name="Change priority")).to_be_disabled()
    script_may_load.set()
    await page.get_by_role("button", name="Change priority").click()
    await expect(page.locator("#toasts")).to_contain_text("Priority changed to low.")
    await expect(fact(page, "priority")).to_have_text("Low")


async def test_an_admin_who_lost_the_role_is_told_why_the_urgent_batch_was_refused(
    browser: Browser, database: Database, idle: Product
) -> None:
    page = await logged_in_page(browser, idle)
    await page.get_by_label("Priority").select_option("urgent")
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE memberships SET role = 'member' WHERE user_id = $1", idle.organization.admin.id
        )
    await expect(page.locator("[data-orders-body] tr")).to_have_count(ORDERS)
    await page.locator("[data-select-page]").check()
    await page.get_by_role("button", name=f"Create {ORDERS} invoices").click()
    await expect(page.locator("#toasts")).to_contain_text(
        "Could not start the batch: Only administrators of the organization can do this."
    )
    await expect(page.locator("[data-job-id]")).to_have_count(0)
    await expect(page.get_by_role("button", name=f"Create {ORDERS} invoices")).to_be_enabled()
    # What the server refused is no longer offered: the choice is back on Normal, focused.
    choice = page.get_by_label("Priority")
    await expect(choice).to_have_value("normal")
    await expect(choice).to_be_focused()
    await expect(choice.locator('option[value="urgent"]')).to_have_count(0)
