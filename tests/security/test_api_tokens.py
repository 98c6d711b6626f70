"""API tokens: the create-token command, the /api/tokens endpoints and the settings page."""

from __future__ import annotations

import subprocess
from uuid import UUID, uuid4

from invoicing.accounts.api_tokens import MAX_ACTIVE_TOKENS
from invoicing.accounts.credentials import hash_token
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.app import api_client
from tests.support.factories import TEST_PASSWORD, Organization, User, create_organization
from tests.support.workers import run_command

SITE = "http://testserver"
ITEM_FIELDS = {"id", "name", "created_at", "last_used_at", "revoked_at"}


def invoicing(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(settings, *args, timeout=60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_count(database: Database) -> int:
    async with database.connection() as connection:
        return int(await connection.fetchval("SELECT count(*) FROM api_tokens"))


async def add_membership(database: Database, organization: Organization, user: User) -> None:
    async with database.connection() as connection:
        await connection.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')",
            organization.id,
            user.id,
        )


async def test_create_token_prints_only_a_token_that_works(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    result = invoicing(settings, "create-token", "--email", organization.member.email, "--name", "ci export")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert token.startswith("inv_")
    assert "shown only once" in result.stderr
    assert token not in result.stderr
    async with api_client(settings) as client:
        me = await client.get("/api/me", headers=bearer(token))
        listed = await client.get("/api/tokens", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == organization.member.email
    assert me.json()["organization"]["id"] == str(organization.id)
    assert "ci export" in [item["name"] for item in listed.json()["items"]]


async def test_create_token_for_a_user_of_several_organizations_needs_one_chosen(
    settings: Settings, database: Database
) -> None:
    first = await create_organization(database, "First Org")
    second = await create_organization(database, "Second Org")
    await add_membership(database, second, first.member)
    before = await token_count(database)

    unchosen = invoicing(settings, "create-token", "--email", first.member.email)
    assert unchosen.returncode == 2
    assert unchosen.stdout == ""
    assert "--organization" in unchosen.stderr
    assert str(first.id) in unchosen.stderr
    assert str(second.id) in unchosen.stderr
    assert "Second Org" in unchosen.stderr
    stranger = invoicing(
        settings, "create-token", "--email", first.member.email, "--organization", str(uuid4())
    )
    assert stranger.returncode == 2
    assert await token_count(database) == before

    chosen = invoicing(
        settings, "create-token", "--email", first.member.email.upper(), "--organization", str(second.id)
    )
    assert chosen.returncode == 0, chosen.stderr
    async with api_client(settings) as client:
        me = await client.get("/api/me", headers=bearer(chosen.stdout.strip()))
    assert me.json()["organization"]["id"] == str(second.id)


async def test_create_token_for_an_unknown_email_fails_clearly(
    settings: Settings, database: Database
) -> None:
    result = invoicing(settings, "create-token", "--email", "nobody@example.test")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "No user has the email 'nobody@example.test'" in result.stderr
    assert await token_count(database) == 0


async def test_a_token_created_through_the_api_is_shown_once_and_stored_as_a_hash(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    member = organization.member
    name = "n" * 100
    async with api_client(settings) as client:
        created = await client.post("/api/tokens", json={"name": f"  {name} "}, headers=member.headers)
        token = created.json()["token"]
        listed = await client.get("/api/tokens", headers=member.headers)
        me = await client.get("/api/me", headers=bearer(token))
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    item = created.json()["item"]
    assert set(item) == ITEM_FIELDS
    assert item["name"] == name
    assert item["revoked_at"] is None
    assert token.startswith("inv_")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == member.email

    assert listed.status_code == 200
    items = listed.json()["items"]
    assert items[0] == item  # newest first
    assert len(items) == 2  # and the factory's own token
    assert all(set(entry) == ITEM_FIELDS for entry in items)
    assert token not in listed.text
    assert hash_token(token).hex() not in listed.text

    async with database.connection() as connection:
        row = await connection.fetchrow("SELECT * FROM api_tokens WHERE id = $1", UUID(item["id"]))
        everything = await connection.fetchval("SELECT string_agg(t::text, ' ') FROM api_tokens t")
    assert row["token_hash"] == hash_token(token)
    assert row["user_id"] == member.id
    assert row["organization_id"] == organization.id
    assert token not in everything


async def test_a_revoked_token_stops_authenticating_at_once(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    member = organization.member
    async with api_client(settings) as client:
        created = (await client.post("/api/tokens", json={"name": "laptop"}, headers=member.headers)).json()
        token, token_id = created["token"], created["item"]["id"]
        assert (await client.get("/api/me", headers=bearer(token))).status_code == 200
        revoked = await client.post(f"/api/tokens/{token_id}/revoke", headers=member.headers)
        after = await client.get("/api/me", headers=bearer(token))
        again = await client.post(f"/api/tokens/{token_id}/revoke", headers=member.headers)
        still = await client.get("/api/me", headers=member.headers)
    assert revoked.status_code == 200
    assert revoked.json()["id"] == token_id
    assert revoked.json()["revoked_at"] is not None
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_token"
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert still.status_code == 200  # the other token of the same user is untouched


async def test_another_users_or_organizations_token_is_answered_like_a_missing_one(
    settings: Settings, database: Database
) -> None:
    ours = await create_organization(database)
    theirs = await create_organization(database)
    async with api_client(settings) as client:
        created = await client.post("/api/tokens", json={"name": "mine"}, headers=ours.member.headers)
        token, token_id = created.json()["token"], created.json()["item"]["id"]
        answers = [
            await client.post(f"/api/tokens/{token_id}/revoke", headers=ours.admin.headers),
            await client.post(f"/api/tokens/{token_id}/revoke", headers=theirs.member.headers),
            await client.post(f"/api/tokens/{token_id}/revoke", headers=theirs.admin.headers),
            await client.post(f"/api/tokens/{uuid4()}/revoke", headers=ours.member.headers),
            await client.post("/api/tokens/not-a-uuid/revoke", headers=ours.member.headers),
        ]
        admin_list = await client.get("/api/tokens", headers=ours.admin.headers)
        other_list = await client.get("/api/tokens", headers=theirs.member.headers)
        me = await client.get("/api/me", headers=bearer(token))
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json() == {"error": {"code": "token_not_found", "message": "API token not found."}}
    assert token_id not in admin_list.text
    assert token_id not in other_list.text
    assert me.status_code == 200  # nobody else could revoke it


async def test_bad_bodies_get_stable_codes_and_write_nothing(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    before = await token_count(database)
    cases: list[tuple[bytes, int, str]] = [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b'["name"]', 400, "invalid_body"),
        (b"null", 400, "invalid_body"),
        (b"{}", 400, "missing_field"),
        (b'{"name": 5}', 400, "invalid_type"),
        (b'{"name": null}', 400, "invalid_type"),
        (b'{"name": ""}', 400, "invalid_name"),
        (b'{"name": "   "}', 400, "invalid_name"),
        (b'{"name": "' + b"x" * 101 + b'"}', 400, "invalid_name"),
        (b'{"name": "a\\u0000b"}', 400, "invalid_name"),
        (b'{"name": "ok", "scopes": ["all"]}', 400, "unknown_field"),
        (b'{"name": "' + b"x" * 20_000 + b'"}', 413, "body_too_large"),
    ]
    async with api_client(settings) as client:
        for body, status, code in cases:
            response = await client.post(
                "/api/tokens",
                content=body,
                headers={**organization.member.headers, "Content-Type": "application/json"},
            )
            assert response.status_code == status, (body[:40], response.text)
            assert response.json()["error"]["code"] == code, body[:40]
        unauthenticated = await client.post("/api/tokens", json={"name": "x"})
    assert unauthenticated.status_code == 401
    assert await token_count(database) == before


async def test_active_tokens_per_user_are_capped(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    headers = organization.member.headers
    async with api_client(settings) as client:
        for n in range(MAX_ACTIVE_TOKENS - 1):  # the factory made the first one
            assert (
                await client.post("/api/tokens", json={"name": f"t{n}"}, headers=headers)
            ).status_code == 201
        refused = await client.post("/api/tokens", json={"name": "one too many"}, headers=headers)
        revoked_id = (await client.get("/api/tokens", headers=headers)).json()["items"][0]["id"]
        await client.post(f"/api/tokens/{revoked_id}/revoke", headers=headers)
        after_revoking = await client.post("/api/tokens", json={"name": "replacement"}, headers=headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "too_many_tokens"
    assert after_revoking.status_code == 201


async def test_the_settings_page_and_cookie_requests(settings: Settings, database: Database) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with api_client(settings) as client:
        anonymous = await client.get("/settings")
        await client.post(
            "/login",
            data={"email": organization.member.email, "password": TEST_PASSWORD},
            headers={"Origin": SITE},
        )
        page = await client.get("/settings")
        cross_site = await client.post(
            "/api/tokens", json={"name": "evil"}, headers={"Origin": "https://evil.example"}
        )
        same_site = await client.post("/api/tokens", json={"name": "from the page"}, headers={"Origin": SITE})
        listed = await client.get("/api/tokens")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/settings.js">' in page.text
    assert '<a href="/settings" aria-current="page">Settings</a>' in page.text
    assert "<script>" not in page.text
    assert "style=" not in page.text
    assert cross_site.status_code == 403
    assert cross_site.json()["error"]["code"] == "cross_site_request"
    assert same_site.status_code == 201
    assert [item["name"] for item in listed.json()["items"]] == ["from the page", "test"]


async def test_using_a_token_records_when_it_was_last_used(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    async with api_client(settings) as client:
        assert (await client.get("/api/me", headers=organization.admin.headers)).status_code == 200
    async with database.connection() as connection:
        last_used = await connection.fetchval(
            "SELECT last_used_at FROM api_tokens WHERE user_id = $1", organization.admin.id
        )
    assert last_used is not None
