"""Sales orders as the order list shows them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from invoicing.records import SalesOrderSummary

# The displayed total is the order's gross value; the invoice computes the exact amounts.
LIST_ORDERS = """
SELECT o.id, o.number, o.status, o.customer_id, c.name AS customer_name, o.currency, o.order_date,
       i.id AS invoice_id,
       coalesce((
           SELECT sum(round(l.quantity * l.unit_price * (100 - l.discount_percent) / 100
                            * (100 + l.tax_rate_percent) / 100, 4))
           FROM sales_order_lines l WHERE l.sales_order_id = o.id
       ), 0) AS total
FROM sales_orders o
JOIN customers c ON c.id = o.customer_id
LEFT JOIN invoices i ON i.sales_order_id = o.id
WHERE {conditions}
ORDER BY o.number, o.id
LIMIT ${limit}
"""


def _order_filter(
    organization_id: UUID, status: str | None, invoiced: bool | None
) -> tuple[list[str], list[Any]]:
    """WHERE conditions and values of the order list's filters (``i`` is the joined invoice)."""
    conditions = ["o.organization_id = $1"]
    values: list[Any] = [organization_id]
    if status is not None:
        values.append(status)
        conditions.append(f"o.status = ${len(values)}")
    if invoiced is not None:
        conditions.append("i.id IS NOT NULL" if invoiced else "i.id IS NULL")
    return conditions, values


async def list_orders(
    connection: asyncpg.Connection,
    organization_id: UUID,
    *,
    status: str | None,
    invoiced: bool | None,
    limit: int,
    after: tuple[str, UUID] | None,
) -> list[SalesOrderSummary]:
    """Orders by number; ``after`` is the (number, id) of the last order of the previous page."""
    conditions, values = _order_filter(organization_id, status, invoiced)
    if after is not None:
        values += [after[0], after[1]]
        conditions.append(f"(o.number, o.id) > (${len(values) - 1}, ${len(values)})")
    values.append(limit)
    query = LIST_ORDERS.format(conditions=" AND ".join(conditions), limit=len(values))
    return [SalesOrderSummary.from_row(row) for row in await connection.fetch(query, *values)]


MATCHING_ORDER_IDS = """
SELECT o.id FROM sales_orders o
WHERE o.organization_id = $1 AND o.status = $2
  AND (EXISTS (SELECT 1 FROM invoices i WHERE i.sales_order_id = o.id)) = $3
ORDER BY o.number, o.id
LIMIT $4
"""

COUNT_ORDERS = """
SELECT count(*) FROM sales_orders o
LEFT JOIN invoices i ON i.sales_order_id = o.id
WHERE {conditions}
"""


async def matching_order_ids(
    connection: asyncpg.Connection, organization_id: UUID, *, status: str, invoiced: bool, limit: int
) -> list[UUID]:
    """The ids a filter selects, in order-number order (at most ``limit``)."""
    rows = await connection.fetch(MATCHING_ORDER_IDS, organization_id, status, invoiced, limit)
    return [row["id"] for row in rows]


async def count_orders(
    connection: asyncpg.Connection, organization_id: UUID, *, status: str | None, invoiced: bool | None
) -> int:
    conditions, values = _order_filter(organization_id, status, invoiced)
    return int(await connection.fetchval(COUNT_ORDERS.format(conditions=" AND ".join(conditions)), *values))
