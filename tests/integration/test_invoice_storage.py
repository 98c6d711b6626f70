"""What is stored is what the rules decided: every column of an invoice, its lines and its
tax breakdown, written as text-format COPY by a batch chunk and by the single-order path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from invoicing.domain.invoice_rules import build_invoice_draft, format_invoice_number
from invoicing.infra.database import Database
from invoicing.invoices import store as invoices
from invoicing.kernel.settings import Settings
from tests.support.app import api_client
from tests.support.factories import Line, Organization, create_orders, create_organization
from tests.support.workers import drain_queue

# Two tax rates, a discount, four-decimal quantities and prices: every numeric column differs
# from every other, so a swapped column cannot go unnoticed.
LINES = (
    Line("Widget\twith a tab", Decimal("3.5"), Decimal("19.9999"), Decimal("12.5"), Decimal("19")),
    Line("Service", Decimal("1"), Decimal("1234.5678"), Decimal("0"), Decimal("7")),
    Line("Washers", Decimal("2000"), Decimal("0.0053"), Decimal("33.3333"), Decimal("19")),
)


async def _organization_billing_in(database: Database, currency: str) -> Organization:
    organization = await create_organization(database)
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE customers SET currency = $2 WHERE id = $1", organization.customer_id, currency
        )
    return organization


async def _assert_stored_as_decided(
    database: Database, organization: Organization, order_id: UUID
) -> dict[str, Any]:
    async with database.scoped(organization.id) as connection:
        row = await connection.fetchrow("SELECT * FROM invoices WHERE sales_order_id = $1", order_id)
        assert row is not None
        lines = await connection.fetch(
            "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", row["id"]
        )
        loaded = await invoices.lock_orders_for_invoicing(connection, organization.id, [order_id])
    order = loaded.orders[order_id]
    draft = build_invoice_draft(
        order, loaded.customers[order.customer_id], already_invoiced=False, issue_date=row["issue_date"]
    )
    assert row["organization_id"] == organization.id
    assert row["number"] == format_invoice_number(row["year"], row["sequence"])
    assert row["year"] == draft.issue_date.year
    stored = {name: row[name] for name in ("sales_order_id", "customer_id", "billing_name", "billing_address",
                                            "billing_email", "due_date", "currency", "subtotal", "tax_total",
                                            "total")}  # fmt: skip
    assert stored == {name: getattr(draft, name) for name in stored}
    assert row["tax_breakdown"] == [
        {"rate": str(tax.rate_percent), "base": str(tax.base), "tax": str(tax.tax)} for tax in draft.taxes
    ]
    columns = ("position", "description", "quantity", "unit_price", "discount_percent", "tax_rate_percent",
               "net_amount")  # fmt: skip
    assert [tuple(line[c] for c in columns) for line in lines] == [
        tuple(getattr(line, c) for c in columns) for line in draft.lines
    ]
    assert {line["organization_id"] for line in lines} == {organization.id}
    return dict(row)


@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD"])
async def test_a_batch_chunk_stores_every_column_as_decided(
    settings: Settings, database: Database, currency: str
) -> None:
    organization = await _organization_billing_in(database, currency)
    order_ids = await create_orders(database, organization, 3, lines=LINES, currency=currency)
    async with api_client(settings) as client:
        submitted = await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(i) for i in order_ids]},
            headers=organization.member.headers,
        )
        assert submitted.status_code == 202, submitted.text
        await drain_queue(settings)
    rows = [await _assert_stored_as_decided(database, organization, order_id) for order_id in order_ids]
    assert [row["sequence"] for row in rows] == [1, 2, 3]  # numbered in the order of the items
    assert {row["batch_job_id"] for row in rows} == {UUID(submitted.json()["id"])}
    assert {row["created_by"] for row in rows} == {organization.member.id}


@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD"])
async def test_the_single_order_path_stores_every_column_as_decided(
    settings: Settings, database: Database, currency: str
) -> None:
    organization = await _organization_billing_in(database, currency)
    (order_id,) = await create_orders(database, organization, 1, lines=LINES, currency=currency)
    async with api_client(settings) as client:
        response = await client.post(
            f"/api/sales-orders/{order_id}/invoice", headers=organization.admin.headers
        )
        assert response.status_code == 201, response.text
    row = await _assert_stored_as_decided(database, organization, order_id)
    assert row["batch_job_id"] is None
    assert row["created_by"] == organization.admin.id
