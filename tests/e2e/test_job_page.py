"""A job's own page in real Chromium: facts, every order in words, filters, paging, the retry
chain both ways, cancel, links from the card and the history, isolation and a phone's width."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from invoicing.infra.database import Database
from tests.support.browser import NO_SIDEWAYS_SCROLL, Product, logged_in_page, running_product
from tests.support.factories import Organization, create_mixed_orders, create_orders, create_organization
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def submit(product: Product, order_ids: list[UUID], organization: Organization | None = None) -> str:
    """A batch submitted over the API (as the organization's admin); its job id."""
    headers = (organization or product.organization).admin.headers
    async with httpx.AsyncClient(base_url=product.server.http, headers=headers) as client:
        response = await client.post("/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids]})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def finished(product: Product, job_id: str, organization: Organization | None = None) -> dict[str, Any]:
    headers = (organization or product.organization).admin.headers

    async def probe() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=product.server.http, headers=headers) as client:
            job: dict[str, Any] = (await client.get(f"/api/batch-jobs/{job_id}")).json()
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return await eventually(probe, timeout=60, what=f"job {job_id} to finish")


def fact(page: Page, name: str) -> Any:
    return page.locator(f'[data-job-page] [data-field="{name}"]')


async def test_a_finished_jobs_page_shows_every_order_in_words_filters_pages_and_retries_once(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        mixed = await create_mixed_orders(database, product.organization, valid=55)
        failed = len(mixed.invalid)
        job = await finished(product, await submit(product, mixed.all_ids))
        page = await logged_in_page(browser, product)

        await page.goto(f"/jobs/{job['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoicing {55 + failed} orders")
        await expect(fact(page, "status")).to_have_text("Completed")
        await expect(fact(page, "created_by_name")).to_have_text("Admin")
        await expect(fact(page, "successful_items")).to_have_attribute("data-value", "55")
        await expect(fact(page, "failed_items")).to_have_attribute("data-value", str(failed))
        await expect(fact(page, "cancelled_items")).to_have_attribute("data-value", "0")
        await expect(fact(page, "active_workers")).to_have_text("—")  # no worker on a finished job
        sensible = re.compile(r"^(under 0\.1 s|\d+(\.\d)? s|\d+ min.*)$")
        await expect(fact(page, "duration")).to_have_text(sensible)
        await expect(fact(page, "duration")).not_to_have_text("0.0 s")
        rows = page.locator("[data-items-body] tr")
        await expect(rows).to_have_count(50)
        await page.get_by_role("button", name="Next").click()
        await expect(rows).to_have_count(55 + failed - 50)
        await expect(page.locator("[data-items-page]")).to_have_text("Page 2")

        await page.get_by_label("Show").select_option("failed")
        await expect(rows).to_have_count(failed)
        await expect(page.locator("[data-items-body]")).to_contain_text("Customer billing details missing")
        await expect(page.locator("[data-items-body]")).to_contain_text("Order not confirmed")
        await expect(page.get_by_role("button", name="Next")).to_be_disabled()
        await page.screenshot(path="/tmp/shots/job-1280.png", full_page=True)

        await page.set_viewport_size({"width": 390, "height": 844})
        await page.get_by_label("Show").select_option("")
        await expect(rows).to_have_count(50)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), "the job page scrolls sideways at 390 px"
        await page.screenshot(path="/tmp/shots/job-390.png", full_page=True)
        await page.set_viewport_size({"width": 1280, "height": 900})

        await page.get_by_role("button", name="Retry failed orders").click()
        retried_as = page.locator("[data-chain-retried-as] a")
        await expect(retried_as).to_be_focused()
        await expect(page.get_by_role("button", name=re.compile("^Retry"))).to_be_hidden()
        await retried_as.click()
        # The id that names no order is left out: nothing could invoice it.
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Retrying {failed - 1} orders")
        await expect(page.locator("[data-chain-retry-of] a")).to_have_attribute("href", f"/jobs/{job['id']}")
        await expect(fact(page, "status")).to_have_text("Completed", timeout=60_000)
        await expect(fact(page, "failed_items")).to_have_attribute("data-value", str(failed - 1))

        await page.locator("[data-chain-retry-of] a").click()
        await expect(page).to_have_url(f"{product.server.http}/jobs/{job['id']}")
        await page.reload()
        await expect(page.locator("[data-chain-retried-as] a")).to_be_visible()
        await expect(page.get_by_role("button", name=re.compile("^Retry"))).to_be_hidden()

        await page.goto("/jobs")
        original = page.locator(f'[data-history-body] tr[data-job-id="{job["id"]}"]')
        await expect(original).to_contain_text("Retried as")
        await expect(original.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
        await expect(page.locator("[data-history-body]")).to_contain_text("Retry of")


async def test_cancelling_from_the_job_page_shows_the_cancelled_orders_and_keeps_focus(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=5000) as product:
        async with database.connection() as connection:
            rows = await connection.fetch("SELECT id FROM sales_orders ORDER BY number")
        order_ids = [row["id"] for row in rows]
        job_id = await submit(product, order_ids)
        page = await logged_in_page(browser, product)
        await page.goto(f"/jobs/{job_id}")
        # Mid-job: some orders invoiced (before the page has rendered, no value is set at all).
        started = re.compile(r"^[1-9][0-9]*$")
        await expect(fact(page, "successful_items")).to_have_attribute("data-value", started, timeout=30_000)
        await expect(fact(page, "active_workers")).to_have_text(re.compile(r"^[0-9]+$"))
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Cancel job").click()

        await expect(fact(page, "status")).to_have_text("Cancelled", timeout=30_000)
        await expect(page.get_by_role("heading", level=1)).to_be_focused()
        cancelled = int(await fact(page, "cancelled_items").get_attribute("data-value") or 0)
        assert 0 < cancelled < 5000
        await page.get_by_label("Show").select_option("cancelled")
        rows = page.locator("[data-items-body] tr")
        await expect(rows).to_have_count(50)
        await expect(rows.first.locator("td").nth(2)).to_have_text("Cancelled")
        await expect(page.get_by_role("button", name="Next")).to_be_enabled()


async def test_a_finished_card_stays_while_read_and_links_to_the_page_and_foreign_jobs_are_404(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        mixed = await create_mixed_orders(database, product.organization, valid=3)
        page = await logged_in_page(browser, product)
        await page.clock.install()
        await page.goto("/jobs")
        await expect(page.locator("[data-active-empty]")).to_be_visible()
        job_id = await submit(product, mixed.all_ids)
        card = page.locator(f'.job-card[data-job-id="{job_id}"]')
        await expect(card).to_have_attribute("data-status", "completed", timeout=60_000)
        await card.locator("summary").click()
        await expect(card.locator(".failures__item")).to_have_count(len(mixed.invalid))
        await expect(card.locator(".failures__list")).to_contain_text("Order not confirmed")

        await page.clock.fast_forward(60_000)  # well past the 8 s finished cards used to stay
        await expect(card).to_be_visible()
        await expect(card.locator("details")).to_have_attribute("open", "")

        await card.get_by_role("link", name="Job details").click()
        await expect(page).to_have_url(f"{product.server.http}/jobs/{job_id}")
        await expect(fact(page, "status")).to_have_text("Completed")

        other = await create_organization(database)
        foreign = await submit(product, await create_orders(database, other, 1), organization=other)
        for path in (f"/jobs/{foreign}", "/jobs/not-a-uuid", "/jobs/00000000-0000-4000-8000-000000000000"):
            response = await page.goto(path)
            assert response is not None
            assert response.status == 404, path
            await expect(page.get_by_role("heading", level=1)).to_have_text("No such job")


async def test_the_operations_page_links_each_job_to_its_page(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=0) as product:
        job_id = await submit(product, await create_orders(database, product.organization, 3))
        await finished(product, job_id)
        page = await logged_in_page(browser, product)
        await page.goto("/operations")
        created = page.locator("[data-audit-body] tr", has_text="Created a job")
        await created.locator(f'[data-job-link="{job_id}"]').click()
        await expect(page).to_have_url(f"{product.server.http}/jobs/{job_id}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Invoicing 3 orders")
