"""The order list at its edges: totals at the limits of what PostgreSQL stores, what the totals
endpoint counts, and plans that stay index scans and hashes when the statistics are stale
(bulk writes, many organizations, running jobs)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx

from invoicing.domain.order_filters import OrderFilter
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from invoicing.orders import store as orders
from tests.support.app import api_client
from tests.support.factories import Line, Organization, create_orders

MONTH_END = OrderFilter(status="confirmed", invoiced=False)
#: numeric(18, 4)'s largest value: a quantity and a unit price PostgreSQL accepts.
LARGEST = Decimal("99999999999999.9999")


# --- Totals: one order PostgreSQL accepts must not take the list down --------------------------


async def test_an_order_with_an_astronomical_total_does_not_break_the_list_or_the_totals(
    settings: Settings, database: Database, organization: Organization
) -> None:
    """Lines at numeric(18, 4)'s limits make a total of 29 integer digits, past the default
    decimal context (28): no invoice could hold it (``amount_out_of_range``), so it has no
    total, and the list and the totals still answer."""
    await create_orders(database, organization, 2)
    line = Line(quantity=LARGEST, unit_price=LARGEST, tax_rate_percent=Decimal(100))
    await create_orders(database, organization, 1, lines=(line,), prefix="HUGE")
    async with api_client(settings) as client:
        for path in ("/api/sales-orders", "/api/sales-orders/totals"):
            try:
                response = await client.get(
                    path,
                    params={"status": "confirmed", "invoiced": "false"},
                    headers=organization.member.headers,
                )
            except Exception as error:  # the in-process transport re-raises what a server sends as 500
                raise AssertionError(f"{path} failed: {error!r}") from error
            assert response.status_code == 200, (path, response.text)


# --- Totals: what the endpoint says it counts ------------------------------------------------------


async def test_totals_without_parameters_count_what_a_filter_batch_without_fields_would_take(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    """/api/sales-orders/totals is "what a batch of every matching order would invoice now": a
    field left out means what it means in a batch's filter (confirmed, not invoiced), so drafts,
    cancelled and invoiced orders are not summed."""
    await create_orders(database, organization, 2)
    await create_orders(database, organization, 3, status="draft", prefix="DRAFT")
    headers = organization.member.headers
    totals = (await client.get("/api/sales-orders/totals", headers=headers)).json()
    batch = await client.post("/api/batch-jobs", json={"filter": {}}, headers=headers)
    assert batch.status_code == 202, batch.text
    assert totals["orders"] == batch.json()["total_items"], totals


# --- Plans with stale statistics (claim 1: fast at any size with RLS on) -------------------------


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


async def _explain(
    database: Database, organization_id: UUID, query: str, *values: Any
) -> tuple[int, float, list[Any]]:
    """EXPLAIN ANALYZE as the application role (row-level security on): the rows read only to be
    thrown away by a filter or join filter (over all loops), the time, and the scans."""
    async with database.scoped(organization_id) as connection:
        raw = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *values)
    plan = json.loads(raw)[0]
    nodes = _nodes(plan["Plan"])
    wasted = sum(
        round(
            (node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Join Filter", 0))
            * node.get("Actual Loops", 1)
        )
        for node in nodes
    )
    scans = [
        (node["Node Type"], node["Relation Name"], node.get("Index Name"), node.get("Actual Loops"))
        for node in nodes
        if "Relation Name" in node
    ]
    return wasted, plan["Execution Time"], scans


async def _month_end_with_running_jobs(
    settings: Settings, database: Database, organization: Organization, orders_count: int, held: int
) -> list[UUID]:
    """``orders_count`` month-end orders written in bulk (no ANALYZE since), ``held`` of them in a
    running job (no worker runs, so its items stay pending)."""
    order_ids = await create_orders(database, organization, orders_count)
    async with api_client(settings) as client:
        response = await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(order_id) for order_id in order_ids[:held]]},
            headers=organization.admin.headers,
        )
    assert response.status_code == 202, response.text
    return order_ids


async def test_counting_held_orders_looks_each_item_up_by_key_after_bulk_writes(
    settings: Settings, database: Database, organization: Organization
) -> None:
    """The count behind "Select all N matching" (every ``include_total=true``). Driven from the
    running jobs' pending items, without statistics the planner looked each item's order up in
    ``sales_orders_to_invoice_idx`` by organization (its predicate matches, ``id`` is only its
    third column), so every item walked the organization's whole month-end index: on 100,000
    orders with 20,000 pending items that was 91 s. It must read the month-end index once and
    the running jobs' pending items once (a hashed subplan), with stale statistics too."""
    await _month_end_with_running_jobs(settings, database, organization, 12_000, 3_000)
    conditions, values = orders._conditions(organization.id, MONTH_END)
    query = orders.COUNT_ORDERS.format(conditions=" AND ".join(conditions), held_cap=2_000_000)
    async with database.scoped(organization.id) as connection:
        # As count_orders sets it for the cap (the default work_mem would not hash 2,000,000).
        await connection.execute("SET LOCAL work_mem = '93750kB'")
        raw = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *values)
    plan = json.loads(raw)[0]
    nodes = _nodes(plan["Plan"])
    scans = [
        (n["Node Type"], n["Relation Name"], n.get("Index Name"), n.get("Actual Loops"))
        for n in nodes
        if "Relation Name" in n
    ]
    wasted = sum(round(n.get("Rows Removed by Filter", 0) * n.get("Actual Loops", 1)) for n in nodes)
    milliseconds = plan["Execution Time"]
    by_relation = {relation: (index, loops) for _, relation, index, loops in scans}
    assert by_relation["sales_orders"] == ("sales_orders_to_invoice_idx", 1), scans
    assert by_relation["batch_job_items"] == ("batch_job_items_pending_idx", 1), scans
    assert wasted < 30_000, (wasted, milliseconds, scans)


async def test_a_retry_that_names_held_orders_reads_them_by_key_after_bulk_writes(
    settings: Settings, database: Database, organization: Organization
) -> None:
    """``HELD_ORDERS`` (a batch or a retry, under the organization's submit lock) probes the
    pending items' index once per id. As an anti join over the materialized pending items,
    without statistics, each id rescanned them: 5,000 ids against 20,000 pending items took 8 s,
    while every submit of the organization waited."""
    order_ids = await _month_end_with_running_jobs(settings, database, organization, 12_000, 3_000)
    wasted, milliseconds, scans = await _explain(
        database, organization.id, orders.HELD_ORDERS, organization.id, order_ids[:3_000]
    )
    # 3,000 ids, 3,000 pending items: a nested-loop anti join over the materialized items
    # compares them all (9,000,000 rows removed by its join filter).
    assert wasted < 30_000, (wasted, milliseconds, scans)
