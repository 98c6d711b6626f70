"""The WebSocket protocol against a real uvicorn server, real Redis and a real worker."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.factories import create_orders, create_organization
from tests.support.live_server import live_server
from tests.support.sockets import job_socket, messages_until_closed, receive, submit
from tests.support.workers import drain_queue


async def test_a_watcher_gets_a_snapshot_then_ordered_progress_then_finished(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 200)
    async with live_server(settings) as server:
        job = await submit(server, organization, order_ids)
        async with job_socket(server, organization, job["id"]) as socket:
            snapshot = await receive(socket)
            worker = asyncio.create_task(drain_queue(settings))
            events = await messages_until_closed(socket)
            await worker
            assert socket.close_code == 1000
    assert snapshot["type"] == "snapshot"
    assert snapshot["job"]["id"] == job["id"]
    assert events[-1]["type"] == "finished"
    assert events[-1]["job"]["status"] == "completed"
    assert events[-1]["job"]["successful_items"] == 200
    assert snapshot["job"]["created_by_name"] == events[-1]["job"]["created_by_name"] == "Admin"
    sequence = [snapshot["job"]["seq"], *(event["seq"] for event in events)]
    assert sequence == sorted(set(sequence)), "seq strictly grows: nothing reordered or repeated"
    assert all(event["type"] == "progress" for event in events[:-1])
    processed = [event["processed_items"] for event in events[:-1]]
    assert processed == sorted(processed)


async def test_a_finished_job_gets_its_snapshot_and_finished_then_a_normal_close(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 5)
    async with live_server(settings) as server:
        job = await submit(server, organization, order_ids)
        await drain_queue(settings)
        async with job_socket(server, organization, job["id"]) as socket:
            messages = await messages_until_closed(socket)
            assert socket.close_code == 1000
    assert [m["type"] for m in messages] == ["snapshot", "finished"]


async def test_cancel_over_the_socket_ends_a_pending_job(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 10)
    async with live_server(settings) as server:
        job = await submit(server, organization, order_ids)
        async with job_socket(server, organization, job["id"]) as socket:
            await receive(socket)
            await socket.send(json.dumps({"type": "cancel"}))
            messages = await messages_until_closed(socket)
    assert messages[-1]["type"] == "finished"
    assert messages[-1]["job"]["status"] == "cancelled"
    assert messages[-1]["job"]["cancelled_items"] == 10
    assert messages[-1]["job"]["created_by_name"] == "Admin"


async def test_malformed_messages_get_an_error_and_the_socket_stays_usable(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    order_ids = await create_orders(database, organization, 3)
    async with live_server(settings) as server:
        job = await submit(server, organization, order_ids)
        async with job_socket(server, organization, job["id"]) as socket:
            await receive(socket)
            codes = []
            for bad in (
                "not json",
                json.dumps([1]),
                json.dumps({"type": "explode"}),
                b"\x00binary",
                "x" * 5000,
            ):
                await socket.send(bad)
                reply = await receive(socket)
                assert reply["type"] == "error"
                codes.append(reply["error"]["code"])
            await socket.send(json.dumps({"type": "cancel"}))
            final = (await messages_until_closed(socket))[-1]
    assert codes == [
        "invalid_message",
        "invalid_message",
        "unknown_message",
        "invalid_message",
        "message_too_large",
    ]
    assert final["job"]["status"] == "cancelled"


async def test_another_organizations_job_is_refused_like_a_missing_one(
    settings: Settings, database: Database
) -> None:
    owner, stranger = await create_organization(database), await create_organization(database)
    order_ids = await create_orders(database, owner, 3)
    async with live_server(settings) as server:
        job = await submit(server, owner, order_ids)
        answers = []
        for job_id in (job["id"], str(uuid4()), "not-a-uuid"):
            async with job_socket(server, stranger, job_id) as socket:
                answers.append((await messages_until_closed(socket), socket.close_code))
    assert answers[0] == answers[1] == answers[2]
    messages, close_code = answers[0]
    assert close_code == 4404
    assert messages == [
        {"type": "error", "error": {"code": "job_not_found", "message": "Batch job not found."}}
    ]


async def test_a_handshake_without_valid_credentials_is_refused(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    async with live_server(settings) as server:
        for headers in ({}, {"Authorization": "Bearer inv_wrong"}, {"Cookie": "invoicing_session=forged"}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{server.ws}/ws/batch-jobs", additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        async with connect(
            f"{server.ws}/ws/batch-jobs", additional_headers=organization.admin.headers
        ) as socket:
            assert (await receive(socket))["type"] == "snapshot"


async def test_a_cross_site_origin_is_refused_even_with_valid_credentials(
    settings: Settings, database: Database
) -> None:
    organization = await create_organization(database)
    async with live_server(settings) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{server.ws}/ws/batch-jobs",
                origin="https://evil.example",
                additional_headers=organization.admin.headers,
            ):
                pass
        assert refused.value.response.status_code == 403
        async with connect(
            f"{server.ws}/ws/batch-jobs", origin=server.http, additional_headers=organization.admin.headers
        ) as socket:
            assert (await receive(socket))["type"] == "snapshot"


async def test_the_organization_socket_sees_every_job_of_the_organization_only(
    settings: Settings, database: Database
) -> None:
    organization, other = await create_organization(database), await create_organization(database)
    async with live_server(settings) as server:
        first = await submit(server, organization, await create_orders(database, organization, 30))
        async with connect(
            f"{server.ws}/ws/batch-jobs", additional_headers=organization.admin.headers
        ) as socket:
            snapshot = await receive(socket)
            second = await submit(server, organization, await create_orders(database, organization, 30))
            await submit(server, other, await create_orders(database, other, 30))
            await drain_queue(settings)
            finished: set[str] = set()
            while finished != {first["id"], second["id"]}:
                event = await receive(socket)
                assert event["job_id"] in {first["id"], second["id"]}
                if event["type"] == "finished":
                    finished.add(event["job_id"])
    assert [(job["id"], job["created_by_name"]) for job in snapshot["jobs"]] == [(first["id"], "Admin")]
