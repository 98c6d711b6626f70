"""Security headers: on every answer, API, pages, static files and errors alike."""

from __future__ import annotations

from invoicing.settings import Settings
from tests.support.app import api_client


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
