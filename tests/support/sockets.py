"""WebSocket client helpers for protocol tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.factories import Organization
from tests.support.live_server import LiveServer


async def submit(server: LiveServer, organization: Organization, order_ids: list[Any]) -> dict[str, Any]:
    """Submit a batch over HTTP as the organization's admin; return the job object."""
    async with httpx.AsyncClient(base_url=server.http, headers=organization.admin.headers) as client:
        response = await client.post("/api/batch-jobs", json={"order_ids": [str(i) for i in order_ids]})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def job_socket(server: LiveServer, organization: Organization, job_id: str) -> Any:
    return connect(f"{server.ws}/ws/batch-jobs/{job_id}", additional_headers=organization.admin.headers)


async def receive(socket: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), timeout=timeout))
    return message


async def messages_until_closed(socket: ClientConnection, timeout: float = 30) -> list[dict[str, Any]]:
    received = []
    try:
        while True:
            received.append(await receive(socket, timeout))
    except ConnectionClosed:
        return received
