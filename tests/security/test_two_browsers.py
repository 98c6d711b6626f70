"""Two organizations in two browsers: every id of one, tried from the other's session.

The hand check of issue 4 as a repeatable test: an admin of the victim organization invoices
orders (some fail) and makes an API token; an admin of another organization, logged in in a
second browser, tries each of those ids through the pages, the API with the session cookie
(from the site, so the origin check passes) and the WebSocket, and sees only what a missing
id shows. The victim's data is unchanged afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.async_api import Browser, Page, expect

from invoicing.infra.database import Database
from tests.support.browser import card, logged_in_page, running_product, start_batch_of_all_matching
from tests.support.factories import create_mixed_orders, create_organization
from tests.support.isolation import probes

pytestmark = pytest.mark.slow

# fetch() from the page: the browser sends the session cookie and its own Origin.
CALL = """
async ([method, path, body]) => {
  const response = await fetch(path, {
    method,
    headers: body === null ? {} : { "Content-Type": "application/json" },
    body: body === null ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}
"""

# The first message of a job socket and how it closes.
SOCKET = """
(path) => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${location.host}${path}`);
  const seen = [];
  socket.onmessage = (event) => seen.push(JSON.parse(event.data));
  socket.onclose = (event) => resolve({ messages: seen, code: event.code });
  setTimeout(() => { socket.close(); resolve({ messages: seen, code: "open" }); }, 10000);
})
"""


async def call(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(CALL, [method, path, body])
    return result


async def victims_ids(owner: Page) -> dict[str, str]:
    job = (await call(owner, "GET", "/api/batch-jobs"))["body"]["items"][0]
    items = (await call(owner, "GET", f"/api/batch-jobs/{job['id']}/items?limit=500"))["body"]["items"]
    invoice = (await call(owner, "GET", "/api/invoices"))["body"]["items"][0]
    token = (await call(owner, "POST", "/api/tokens", {"name": "victim's script"}))["body"]["item"]
    return {
        "job": job["id"],
        "order": next(item["order_id"] for item in items if item["status"] == "succeeded"),
        "failed_order": next(item["order_id"] for item in items if item["status"] == "failed"),
        "invoice": invoice["id"],
        "token": token["id"],
    }


def attempts(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [*probes(ids), ("POST", f"/api/sales-orders/{ids['failed_order']}/invoice")]


async def test_an_admin_of_another_organization_finds_nothing_by_any_id(
    browser: Browser, database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> None:
    async with running_product(database_url, redis_url, database, tmp_path, orders=10) as product:
        await create_mixed_orders(database, product.organization, valid=0)
        owner = await logged_in_page(browser, product)
        await start_batch_of_all_matching(owner, 15)
        await expect(card(owner)).to_have_attribute("data-status", "completed", timeout=60_000)
        ids = await victims_ids(owner)
        before = (await call(owner, "GET", f"/api/batch-jobs/{ids['job']}"))["body"]
        other = await create_organization(database, with_passwords=True)
        intruder = await logged_in_page(browser, product, other.admin)
        missing = {key: str(uuid4()) for key in ids}

        for (method, path), (_, missing_path) in zip(attempts(ids), attempts(missing), strict=True):
            foreign, absent = await call(intruder, method, path), await call(intruder, method, missing_path)
            assert foreign["status"] == 404, (path, foreign)
            assert foreign == absent, path

        listings = ["/api/batch-jobs", f"/api/invoices?job_id={ids['job']}", "/api/admin/audit-log"]
        for path in listings:
            assert (await call(intruder, "GET", path))["body"]["items"] == [], path
        socket = await intruder.evaluate(SOCKET, f"/ws/batch-jobs/{ids['job']}")
        assert socket["code"] == 4404
        assert [m["error"]["code"] for m in socket["messages"]] == ["job_not_found"]

        stolen = await call(intruder, "POST", "/api/batch-jobs", {"order_ids": [ids["order"]]})
        assert stolen["status"] == 202
        await expect(card(intruder)).to_have_count(0)  # the orders page shows no victim's job
        await intruder.goto("/jobs")
        history = intruder.locator("[data-history-body] tr")
        await expect(history).to_have_count(1)
        await expect(history).to_have_attribute("data-status", "completed", timeout=30_000)
        await expect(intruder.locator("body")).not_to_contain_text(ids["job"][:8])
        stolen_items = await call(intruder, "GET", f"/api/batch-jobs/{stolen['body']['id']}/items")
        items = stolen_items["body"]["items"]
        assert [(i["order_number"], i["error"]["code"]) for i in items] == [(None, "order_not_found")]

        after = (await call(owner, "GET", f"/api/batch-jobs/{ids['job']}"))["body"]
        assert after == before, "the victim's job is untouched"
        tokens = (await call(owner, "GET", "/api/tokens"))["body"]["items"]
        assert [t["revoked_at"] for t in tokens if t["id"] == ids["token"]] == [None]
