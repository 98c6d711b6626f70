"""Browser sessions: login, cookie authentication with the same-origin rule, logout."""

from __future__ import annotations

import httpx

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import TEST_PASSWORD, Organization, create_orders, create_organization

SITE = "http://testserver"


async def log_in(
    client: httpx.AsyncClient, organization: Organization, password: str = TEST_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/login",
        data={"email": organization.member.email, "password": password},
        headers={"Origin": SITE},
    )


async def test_logging_in_sets_an_http_only_session_cookie(settings: Settings, database: Database) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        response = await log_in(client, organization)
        me = await client.get("/api/me")
    assert response.status_code == 303
    assert response.headers["location"] == "/orders"
    cookie = response.headers["set-cookie"]
    assert "invoicing_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert me.json()["user"]["email"] == organization.member.email


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        wrong_password = await log_in(client, organization, password="nope")
        unknown_email = await client.post(
            "/login", data={"email": "nobody@example.test", "password": "x"}, headers={"Origin": SITE}
        )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert "Email or password is not correct." in wrong_password.text
    assert "Email or password is not correct." in unknown_email.text
    assert "set-cookie" not in wrong_password.headers


async def test_a_cookie_request_that_changes_state_must_come_from_the_site(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    order_ids = [str(i) for i in await create_orders(database, organization, 2)]
    async with api_client(settings) as client:
        await log_in(client, organization)
        cross_site = await client.post(
            "/api/batch-jobs", json={"order_ids": order_ids}, headers={"Origin": "https://evil.example"}
        )
        no_origin = await client.post("/api/batch-jobs", json={"order_ids": order_ids})
        same_site = await client.post(
            "/api/batch-jobs", json={"order_ids": order_ids}, headers={"Origin": SITE}
        )
    assert cross_site.status_code == no_origin.status_code == 403
    assert cross_site.json()["error"]["code"] == "cross_site_request"
    assert same_site.status_code == 202
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM batch_job_queue") == 1


async def test_logging_out_ends_the_session_on_the_server(settings: Settings, database: Database) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        await log_in(client, organization)
        stolen_cookie = client.cookies.get("invoicing_session")
        await client.post("/logout", headers={"Origin": SITE})
        client.cookies.set("invoicing_session", stolen_cookie or "")
        after = await client.get("/api/me")
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "session_expired"


async def test_logging_out_without_an_origin_ends_the_session_on_the_server_too(
    settings: Settings, database: Database
) -> None:
    """Logging out only takes rights away: it needs no same-origin proof (issue 12)."""
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        for origin in ({}, {"Origin": "https://evil.example"}):
            await log_in(client, organization)
            old_cookie = client.cookies.get("invoicing_session") or ""
            assert (await client.get("/api/me")).status_code == 200
            logged_out = await client.post("/logout", headers=origin)
            assert logged_out.status_code == 303, origin
            assert logged_out.headers["location"] == "/login"
            assert 'invoicing_session=""' in logged_out.headers["set-cookie"]
            client.cookies.set("invoicing_session", old_cookie)
            me = await client.get("/api/me")
            assert me.status_code == 401, origin
            assert me.json()["error"]["code"] == "session_expired"
            page = await client.get("/orders")
            assert page.status_code == 303, origin
            assert page.headers["location"] == "/login"
            client.cookies.clear()


async def test_pages_send_anonymous_visitors_to_the_login_page(settings: Settings) -> None:
    async with api_client(settings) as client:
        for path in ("/", "/orders", "/jobs"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/login"
        login = await client.get("/login")
    assert login.status_code == 200
    assert "script-src 'self'" in login.headers["content-security-policy"]


async def test_a_member_of_two_organizations_acts_in_the_one_chosen(
    settings: Settings, database: Database
) -> None:
    first = await create_organization(database, with_passwords=True)
    second, stranger = await create_organization(database), await create_organization(database)
    async with database.connection() as connection:
        await connection.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')",
            second.id,
            first.member.id,
        )
    async with api_client(settings) as client:
        await log_in(client, first)
        before = (await client.get("/api/me")).json()["organization"]["id"]
        other = str(second.id) if before == str(first.id) else str(first.id)
        page = await client.get("/orders")
        switched = await client.post(
            "/organization", data={"organization_id": other}, headers={"Origin": SITE}
        )
        after = (await client.get("/api/me")).json()["organization"]["id"]
        refused = await client.post(
            "/organization", data={"organization_id": str(stranger.id)}, headers={"Origin": SITE}
        )
        still = (await client.get("/api/me")).json()["organization"]["id"]
    assert 'name="organization_id"' in page.text, "the header offers the choice"
    assert switched.status_code == 303
    assert after == other
    assert refused.headers["location"].endswith("organization=refused")
    assert still == other


async def test_the_session_cookie_is_secure_when_configured(
    database_url: str, redis_url: str, database: Database
) -> None:
    settings = make_settings(database_url, redis_url, SESSION_COOKIE_SECURE="true")
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        response = await log_in(client, organization)
    assert "Secure" in response.headers["set-cookie"]


async def test_over_plain_http_the_cookie_is_not_secure_by_default(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        response = await log_in(client, organization)
    assert "Secure" not in response.headers["set-cookie"]
