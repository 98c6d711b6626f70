"""Sales orders as the order list shows them, and the sets of orders a batch takes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from invoicing.domain.invoice_rules import order_total
from invoicing.domain.models import OrderLine, SalesOrder
from invoicing.domain.money import exact_arithmetic
from invoicing.domain.order_filters import ORDER_STATUSES, OrderFilter
from invoicing.infra.keyset import after_key
from invoicing.orders.views import CurrencyTotal, OrderCount, SalesOrderSummary, SelectionTotals

# Every read here is planned the same whatever the statistics say: the page's orders come
# from an index in number order (the month-end list from its own partial index, whose
# predicate the literal status below lets every plan use), and then each of those few orders
# is looked up by key (LATERAL … OFFSET 0 keeps them lookups). The invoice and the running job
# are found from the order itself (migrations/0009), never by joining the organization's
# invoices, which under row-level security cost a nested loop of millions of rows.

# Whether a running job holds the order ``{order}`` (of organization ``$1``): one probe of the
# pending items' index. As a LATERAL subquery with a LIMIT it stays a probe per row; a NOT
# EXISTS in a WHERE clause may become an anti join over every pending item, which with stale
# statistics the planner ran as a nested loop over all of them for every order (minutes).
HELD_BY = """
LEFT JOIN LATERAL (
    SELECT item.job_id FROM batch_job_items item
    WHERE item.order_id = {order} AND item.status = 'pending' AND item.organization_id = $1
    LIMIT 1
) AS held ON true
"""

LIST_ORDERS = f"""
SELECT o.id, o.number, o.status, o.customer_id, c.name AS customer_name, o.currency, o.order_date,
       o.invoice_id, held.job_id AS active_job_id, invoice.total AS invoice_total
FROM (
    SELECT * FROM sales_orders o WHERE {{conditions}} ORDER BY o.number, o.id LIMIT ${{limit}}
) AS o
CROSS JOIN LATERAL (SELECT name FROM customers WHERE id = o.customer_id OFFSET 0) AS c
LEFT JOIN LATERAL (SELECT total FROM invoices WHERE id = o.invoice_id OFFSET 0) AS invoice ON true
{HELD_BY.format(order="o.id")}
ORDER BY o.number, o.id
"""

# Without a running job nothing is held: the count is the month-end index's alone.
COUNT_ONLY = "SELECT count(*) AS total, 0 AS in_active_jobs FROM sales_orders o WHERE {conditions}"

ANY_RUNNING_JOB = """
SELECT EXISTS (
    SELECT 1 FROM batch_job_queue WHERE organization_id = $1 AND status IN ('pending', 'processing')
)
"""

# One pass over the matching orders' index entries, each looked up in a hash of the orders the
# organization's running jobs hold (their pending items, read once). The total and the held
# orders come from one statement, so from one snapshot: while a job runs it takes orders out of
# both, and only counts read together give the free orders (total − held) right.
#
# Why it stays a hash whatever the statistics say: an uncorrelated IN inside an aggregate's
# FILTER is never turned into a join; PostgreSQL runs it once and hashes it when its estimated
# size fits in hash memory, and the LIMIT caps that estimate (``HELD_CAP``, with ``work_mem``
# raised to fit it for this transaction). (Probing the pending items' index per order was 3
# times slower; driving it from the items with a filtered lookup of each order let the planner
# walk the month-end partial index per item: minutes.)
COUNT_ORDERS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE o.id IN (
           SELECT item.order_id
           FROM batch_job_queue j
           CROSS JOIN LATERAL (
               SELECT order_id FROM batch_job_items WHERE job_id = j.id AND status = 'pending' OFFSET 0
           ) AS item
           WHERE j.organization_id = $1 AND j.status IN ('pending', 'processing')
           LIMIT {held_cap}
       )) AS in_active_jobs
FROM sales_orders o
WHERE {conditions}
"""

#: Bytes of hash memory PostgreSQL reckons per held order (a uuid and a tuple header, rounded).
HELD_ENTRY_BYTES = 48
#: The most held orders a count reads, whatever the settings allow.
MAX_HELD_CAP = 5_000_000


MATCHING_ORDERS = f"""
SELECT o.id, o.number, o.customer_id, o.status, o.currency, o.order_date
FROM sales_orders o
{HELD_BY.format(order="o.id")}
WHERE {{conditions}} AND held.job_id IS NULL
ORDER BY o.number, o.id
LIMIT ${{limit}}
"""

# Which of the given orders running jobs hold, and which job each (one probe per id).
HELD_ORDERS = f"""
SELECT wanted.id AS order_id, held.job_id
FROM unnest($2::uuid[]) AS wanted(id)
{HELD_BY.format(order="wanted.id")}
WHERE held.job_id IS NOT NULL
"""

#: Orders whose lines are read at once when summing a large selection.
TOTALS_BATCH = 2000


def _conditions(organization_id: UUID, order_filter: OrderFilter) -> tuple[list[str], list[Any]]:
    """WHERE conditions on ``o`` (a sales order) and their values, ``$1`` the organization."""
    conditions = ["o.organization_id = $1"]
    values: list[Any] = [organization_id]
    if order_filter.status is not None:
        # A literal from a closed set, not a parameter: a generic plan must still see that the
        # month-end list's partial index applies.
        assert order_filter.status in ORDER_STATUSES
        conditions.append(f"o.status = '{order_filter.status}'")
    if order_filter.invoiced is not None:
        conditions.append("o.invoice_id IS NOT NULL" if order_filter.invoiced else "o.invoice_id IS NULL")
    for column, operator, value in (
        ("order_date", ">=", order_filter.order_date_from),
        ("order_date", "<=", order_filter.order_date_to),
        ("customer_id", "=", order_filter.customer_id),
        ("currency", "=", order_filter.currency),
    ):
        if value is not None:
            values.append(value)
            conditions.append(f"o.{column} {operator} ${len(values)}")
    return conditions, values


async def list_orders(
    connection: asyncpg.Connection,
    organization_id: UUID,
    order_filter: OrderFilter,
    *,
    limit: int,
    after: tuple[str, UUID] | None,
) -> list[SalesOrderSummary]:
    """Orders by number, each with its invoice's total, or the total its invoice will have (the
    invoice rules' own arithmetic); ``after`` is the (number, id) of the last order of the
    previous page."""
    conditions, values = _conditions(organization_id, order_filter)
    if after is not None:
        conditions.append(after_key(("o.number", "o.id"), len(values) + 1, descending=False))
        values += after
    values.append(limit)
    query = LIST_ORDERS.format(conditions=" AND ".join(conditions), limit=len(values))
    rows = await connection.fetch(query, *values)
    lines = await order_lines(connection, [row["id"] for row in rows if row["invoice_total"] is None])
    return [
        SalesOrderSummary.from_row(
            row,
            total=row["invoice_total"]
            if row["invoice_total"] is not None
            else order_total(_order(row, organization_id, lines[row["id"]])),
        )
        for row in rows
    ]


def _order(row: Any, organization_id: UUID, lines: Sequence[Any]) -> SalesOrder:
    return SalesOrder(
        id=row["id"],
        organization_id=organization_id,
        number=row["number"],
        customer_id=row["customer_id"],
        status=row["status"],
        currency=row["currency"],
        order_date=row["order_date"],
        lines=tuple(lines),
    )


async def count_orders(
    connection: asyncpg.Connection, organization_id: UUID, order_filter: OrderFilter, *, most_held: int
) -> OrderCount:
    """Matching orders, and how many of them running jobs hold. ``most_held`` bounds the held
    orders there can be (``MAX_ACTIVE_JOBS_PER_ORG`` × ``MAX_BATCH_SIZE``). Call in a
    transaction: it raises ``work_mem`` for the rest of it."""
    conditions, values = _conditions(organization_id, order_filter)
    where = " AND ".join(conditions)
    if not await connection.fetchval(ANY_RUNNING_JOB, organization_id):
        row = await connection.fetchrow(COUNT_ONLY.format(conditions=where), *values)
        return OrderCount(total=int(row["total"]), in_active_jobs=0)
    held_cap = min(most_held, MAX_HELD_CAP)
    # hash memory = work_mem × hash_mem_multiplier (2 by default): room for the cap, with margin.
    work_mem_kb = max(4096, held_cap * HELD_ENTRY_BYTES // 1024)
    await connection.execute("SELECT set_config('work_mem', $1, true)", f"{work_mem_kb}kB")
    row = await connection.fetchrow(COUNT_ORDERS.format(conditions=where, held_cap=held_cap), *values)
    return OrderCount(total=int(row["total"]), in_active_jobs=int(row["in_active_jobs"]))


async def _matching_orders(
    connection: asyncpg.Connection, organization_id: UUID, order_filter: OrderFilter, limit: int
) -> list[Any]:
    conditions, values = _conditions(organization_id, order_filter)
    values.append(limit)
    query = MATCHING_ORDERS.format(conditions=" AND ".join(conditions), limit=len(values))
    return list(await connection.fetch(query, *values))


async def matching_order_ids(
    connection: asyncpg.Connection, organization_id: UUID, order_filter: OrderFilter, *, limit: int
) -> list[UUID]:
    """The ids a filter selects, in order-number order (at most ``limit``), leaving out the
    orders a running job holds."""
    return [row["id"] for row in await _matching_orders(connection, organization_id, order_filter, limit)]


async def selection_totals(
    connection: asyncpg.Connection, organization_id: UUID, order_filter: OrderFilter, *, limit: int
) -> SelectionTotals:
    """What a batch of every matching order would invoice, per currency: the sum of each
    order's invoice total by the invoice rules (there is no second formula in SQL).

    The arithmetic (tens of microseconds an order) runs in a thread, a batch of orders at a
    time, so that a large selection does not hold up the server's other requests."""
    rows = await _matching_orders(connection, organization_id, order_filter, limit)
    sums: dict[str, tuple[int, Decimal]] = {}
    without_total = 0
    for start in range(0, len(rows), TOTALS_BATCH):
        batch = rows[start : start + TOTALS_BATCH]
        lines = await order_lines(connection, [row["id"] for row in batch])
        orders = [_order(row, organization_id, lines[row["id"]]) for row in batch]
        for order, total in zip(orders, await asyncio.to_thread(_totals, orders), strict=True):
            if total is None:
                without_total += 1
                continue
            count, amount = sums.get(order.currency, (0, Decimal(0)))
            with exact_arithmetic():
                sums[order.currency] = (count + 1, amount + total)
    currencies = [CurrencyTotal(currency, count, amount) for currency, (count, amount) in sums.items()]
    currencies.sort(key=lambda entry: (-entry.orders, entry.currency))
    return SelectionTotals(currencies, without_total)


def _totals(orders: list[SalesOrder]) -> list[Decimal | None]:
    return [order_total(order) for order in orders]


async def held_orders(
    connection: asyncpg.Connection, organization_id: UUID, order_ids: Sequence[UUID]
) -> dict[UUID, UUID]:
    """Those of ``order_ids`` a running job holds → the job."""
    rows = await connection.fetch(HELD_ORDERS, organization_id, list(order_ids))
    return {row["order_id"]: row["job_id"] for row in rows}


SELECT_LINES = """
SELECT l.sales_order_id, l.position, l.description, l.quantity, l.unit_price, l.discount_percent,
       l.tax_rate_percent
FROM unnest($1::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (SELECT * FROM sales_order_lines WHERE sales_order_id = wanted.id OFFSET 0) AS l
ORDER BY l.sales_order_id, l.position
"""


async def order_lines(
    connection: asyncpg.Connection, order_ids: Sequence[UUID]
) -> dict[UUID, list[OrderLine]]:
    """The lines of each of ``order_ids`` (visible to the connection), by position."""
    lines: dict[UUID, list[OrderLine]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        # Unpacked in SELECT_LINES's column order: cheaper than seven lookups by name a line.
        for order_id, *line in await connection.fetch(SELECT_LINES, order_ids):
            lines[order_id].append(OrderLine(*line))
    return lines
