"""Security headers: on every answer, API, pages, static files and errors alike."""

from __future__ import annotations

from uuid import uuid4

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.security.test_sessions import log_in
from tests.support.app import api_client
from tests.support.factories import create_orders, create_organization


async def test_every_kind_of_answer_carries_the_security_headers(settings: Settings) -> None:
    async with api_client(settings) as client:
        answers = [
            await client.get("/healthz"),
            await client.get("/login"),
            await client.get("/static/app.css"),
            await client.get("/api/batch-jobs"),  # 401
            await client.get("/no/such/page"),  # 404
        ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        assert answer.headers["x-frame-options"] == "DENY", answer.url
        assert answer.headers["referrer-policy"] == "same-origin", answer.url


async def test_pages_forbid_inline_scripts_and_framing(settings: Settings) -> None:
    async with api_client(settings) as client:
        page = await client.get("/login")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text, "no inline script in the page itself"


async def test_authenticated_answers_are_not_stored_by_any_cache(
    settings: Settings, database: Database
) -> None:
    """API JSON (token or cookie) and a logged-in user's pages: ``no-store`` (issue 12). The one
    exception is the job a poller follows by ETag: ``private, no-cache``, 304 included."""
    organization = await create_organization(database, with_passwords=True)
    order_ids = [str(i) for i in await create_orders(database, organization, 1)]
    token = organization.member.headers
    async with api_client(settings) as client:
        job = await client.post("/api/batch-jobs", json={"order_ids": order_ids}, headers=token)
        job_path = f"/api/batch-jobs/{job.json()['id']}"
        first = await client.get(job_path, headers=token)
        unchanged = await client.get(job_path, headers={**token, "If-None-Match": first.headers["ETag"]})
        with_token = [
            job,
            await client.get("/api/me", headers=token),
            await client.get("/api/batch-jobs", headers=token),
            await client.get(f"/api/batch-jobs/{uuid4()}", headers=token),  # 404
        ]
        anonymous_login = await client.get("/login")
        await log_in(client, organization)
        with_cookie = [
            await client.get(path)
            for path in ("/api/me", "/orders", "/jobs", job_path.replace("/api/batch-", "/"))
        ]
        static = await client.get("/static/app.css")
    for answer in with_token + with_cookie:
        assert answer.headers["cache-control"] == "no-store", (answer.url, answer.status_code)
    assert (first.status_code, unchanged.status_code) == (200, 304)
    assert first.headers["cache-control"] == unchanged.headers["cache-control"] == "private, no-cache"
    assert unchanged.headers["etag"] == first.headers["etag"]
    assert "no-store" not in static.headers.get("cache-control", ""), "static files stay cacheable"
    assert "cache-control" not in anonymous_login.headers


async def test_https_only_deployments_send_strict_transport_security(
    database_url: str, redis_url: str, settings: Settings
) -> None:
    secure = make_settings(database_url, redis_url, SESSION_COOKIE_SECURE="true")
    async with api_client(secure) as client:
        answers = [await client.get("/healthz"), await client.get("/login"), await client.get("/api/me")]
    for answer in answers:
        assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    async with api_client(settings) as client:  # SESSION_COOKIE_SECURE=auto: not promised
        assert "strict-transport-security" not in (await client.get("/login")).headers
