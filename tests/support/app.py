"""The real application, served in-process through its lifespan, with an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from invoicing.kernel.settings import Settings
from server.app import create_app


class _WithState:
    """Hands the lifespan's state to each request, as a server running the lifespan would."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, "state": dict(self.state)}, receive, send)


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=_WithState(app, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def error_of(response: httpx.Response) -> tuple[int, str]:
    """(status, code) of an error answer, once its body is checked to be exactly the error shape
    (``code``, ``message``, and the details only ``orders_in_active_job`` carries)."""
    body = response.json()
    assert set(body) == {"error"}, body
    details = {"count", "jobs"} if body["error"].get("code") == "orders_in_active_job" else set()
    assert set(body["error"]) == {"code", "message", *details}, body
    assert isinstance(body["error"]["code"], str), body
    assert isinstance(body["error"]["message"], str), body
    assert body["error"]["message"], body
    return response.status_code, body["error"]["code"]


async def walk(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str
) -> list[list[Any]]:
    """Every page of a list, following ``next_cursor`` until it is null."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        query = params if cursor is None else {**params, "cursor": cursor}
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages
