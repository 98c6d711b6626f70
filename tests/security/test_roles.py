"""Roles: members create, watch and cancel jobs; only admins run the sweep and see operations."""

from __future__ import annotations

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.app import api_client, error_of
from tests.support.factories import TEST_PASSWORD, Organization, User, create_orders, create_organization

SITE = "http://testserver"


async def test_members_may_not_run_the_sweep(client: httpx.AsyncClient, organization: Organization) -> None:
    response = await client.post("/api/admin/process-pending", headers=organization.member.headers)
    assert error_of(response) == (403, "admin_required")


async def test_members_get_no_operational_figures(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    for path in ("/api/admin/stats", "/api/admin/audit-log"):
        response = await client.get(path, headers=organization.member.headers)
        assert error_of(response) == (403, "admin_required"), path


async def test_members_create_watch_and_cancel_their_organizations_jobs(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = [str(i) for i in await create_orders(database, organization, 1)]
    headers = organization.member.headers
    job = (await client.post("/api/batch-jobs", json={"order_ids": order_ids}, headers=headers)).json()

    assert (await client.get(f"/api/batch-jobs/{job['id']}", headers=headers)).status_code == 200
    cancelled = await client.post(f"/api/batch-jobs/{job['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"


async def log_in(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/login", data={"email": user.email, "password": TEST_PASSWORD}, headers={"Origin": SITE}
    )
    assert response.status_code == 303


async def test_the_operations_page_is_linked_and_shown_to_admins_only(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as admin, api_client(settings) as member:
        await log_in(admin, organization.admin)
        await log_in(member, organization.member)
        admin_page = await admin.get("/operations")
        member_page = await member.get("/operations")
        member_orders = await member.get("/orders")

    assert admin_page.status_code == 200
    assert "/static/operations.js" in admin_page.text
    assert member_page.status_code == 403
    assert "Administrators only" in member_page.text
    assert "operations.js" not in member_page.text
    assert 'href="/operations"' not in member_orders.text
