"""Two organizations: every id of one, tried from the other, answers like an id that does not exist."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
from websockets.asyncio.client import connect

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.app import api_client
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.isolation import probes
from tests.support.live_server import live_server
from tests.support.workers import drain_queue


async def invoiced_job(client: httpx.AsyncClient, database: Database, owner: Organization) -> dict[str, str]:
    """A finished job of ``owner`` with an invoice, and one more order not invoiced yet."""
    order_ids = [str(i) for i in await create_orders(database, owner, 3)]
    job = (
        await client.post("/api/batch-jobs", json={"order_ids": order_ids[:2]}, headers=owner.admin.headers)
    ).json()
    return {"job": job["id"], "order": order_ids[2]}


async def answer(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> tuple[int, Any]:
    response = await client.request(method, path, headers=headers)
    return response.status_code, response.json()


async def test_every_id_of_another_organization_answers_exactly_like_a_missing_one(
    settings: Settings, database: Database
) -> None:
    owner, intruder = await create_organization(database), await create_organization(database)
    async with api_client(settings) as client:
        ids = await invoiced_job(client, database, owner)
        await drain_queue(settings)
        invoices = (await client.get("/api/invoices", headers=owner.admin.headers)).json()["items"]
        ids["invoice"] = invoices[0]["id"]
        async with database.connection() as connection:
            ids["token"] = str(
                await connection.fetchval("SELECT id FROM api_tokens WHERE user_id = $1", owner.admin.id)
            )
        missing = {key: str(uuid4()) for key in ids}
        for (method, path), (_, missing_path) in zip(probes(ids), probes(missing), strict=True):
            foreign = await answer(client, method, path, intruder.admin.headers)
            absent = await answer(client, method, missing_path, intruder.admin.headers)
            assert foreign == absent, (method, path)
            assert foreign[0] == 404
        # Lists of the intruder never show the owner's things, even filtered by the owner's job.
        for path in ("/api/batch-jobs", f"/api/invoices?job_id={ids['job']}", "/api/sales-orders"):
            listed = (await client.get(path, headers=intruder.admin.headers)).json()["items"]
            assert listed == [], path
        owner_job = (await client.get(f"/api/batch-jobs/{ids['job']}", headers=owner.admin.headers)).json()
    assert owner_job["status"] == "completed", "the intruder's cancel changed nothing"


async def test_a_websocket_for_another_organizations_job_is_refused_like_a_missing_one(
    settings: Settings, database: Database
) -> None:
    owner, intruder = await create_organization(database), await create_organization(database)
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http) as client:
            ids = await invoiced_job(client, database, owner)
        answers = []
        for job_id in (ids["job"], str(uuid4())):
            url = f"{server.ws}/ws/batch-jobs/{job_id}"
            async with connect(url, additional_headers=intruder.admin.headers) as socket:
                answers.append((json.loads(await socket.recv()), socket.close_code))
                await socket.wait_closed()
                answers[-1] = (answers[-1][0], socket.close_code)
    assert answers[0] == answers[1]
    assert answers[0][0]["error"]["code"] == "job_not_found"
