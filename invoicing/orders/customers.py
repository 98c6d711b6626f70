"""The organization's customers, as the order list's customer filter offers them."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from invoicing.orders.views import CustomerSummary

# By name, then id (names need not be unique). The cursor is the previous page's last id: a
# name is unbounded text, too long for a cursor, so its name is read back here. A customer
# gone since (customers are not deleted today) ends the list rather than restarting it.
LIST_CUSTOMERS = """
SELECT id, name, currency
FROM customers c
WHERE c.organization_id = $1
  AND ($2::uuid IS NULL
       OR (c.name, c.id) > ((SELECT name FROM customers WHERE id = $2 AND organization_id = $1), $2))
ORDER BY c.name, c.id
LIMIT $3
"""


async def list_customers(
    connection: asyncpg.Connection, organization_id: UUID, *, limit: int, after: UUID | None
) -> list[CustomerSummary]:
    """Customers by name; ``after`` is the id of the last one of the previous page."""
    rows = await connection.fetch(LIST_CUSTOMERS, organization_id, after, limit)
    return [CustomerSummary.from_row(row) for row in rows]
