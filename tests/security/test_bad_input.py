"""The HTTP API's refusals: authentication, request validation, query parameters, routing.

Every refusal is ``{"error": {"code", "message"}}`` with a stable code, and a refused batch
writes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from invoicing.domain.paging import encode_cursor
from invoicing.infra.database import Database
from tests.conftest import make_settings
from tests.support.app import api_client, error_of
from tests.support.factories import Organization, create_orders

SOME_ID = str(uuid4())
NINE_MB = 9 * 1024 * 1024

EVERY_API_ROUTE = [
    ("GET", "/api/sales-orders"),
    ("POST", f"/api/sales-orders/{SOME_ID}/invoice"),
    ("POST", "/api/batch-jobs"),
    ("GET", "/api/batch-jobs"),
    ("GET", f"/api/batch-jobs/{SOME_ID}"),
    ("GET", f"/api/batch-jobs/{SOME_ID}/items"),
    ("POST", f"/api/batch-jobs/{SOME_ID}/cancel"),
    ("GET", "/api/invoices"),
    ("GET", f"/api/invoices/{SOME_ID}"),
    ("POST", "/api/admin/process-pending"),
]


async def rows_written(database: Database) -> tuple[int, int]:
    """(jobs, job items) in the database."""
    async with database.connection() as connection:
        jobs = await connection.fetchval("SELECT count(*) FROM batch_job_queue")
        items = await connection.fetchval("SELECT count(*) FROM batch_job_items")
    return jobs, items


# --- Authentication ---------------------------------------------------------------------------


async def test_request_without_a_valid_bearer_token_is_401(client: httpx.AsyncClient) -> None:
    for authorization, code in [
        (None, "unauthorized"),
        ("Basic dXNlcjpwYXNzd29yZA==", "unauthorized"),
        ("Bearer ", "unauthorized"),
        ("Bearer inv_not-a-token-we-issued", "invalid_token"),
    ]:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await client.get("/api/batch-jobs", headers=headers)
        assert error_of(response) == (401, code), authorization
        assert response.headers["WWW-Authenticate"] == "Bearer", authorization


async def test_revoked_token_is_401(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    member = organization.member
    assert (await client.get("/api/batch-jobs", headers=member.headers)).status_code == 200
    async with database.connection() as connection:
        await connection.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1", member.id)
    response = await client.get("/api/batch-jobs", headers=member.headers)
    assert error_of(response) == (401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_token_of_a_user_who_left_the_organization_is_401(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    async with database.connection() as connection:
        await connection.execute("DELETE FROM memberships WHERE user_id = $1", organization.member.id)
    response = await client.get("/api/batch-jobs", headers=organization.member.headers)
    assert error_of(response) == (401, "invalid_token")


async def test_every_api_route_requires_a_token(client: httpx.AsyncClient) -> None:
    for method, path in EVERY_API_ROUTE:
        response = await client.request(method, path)
        assert error_of(response) == (401, "unauthorized"), (method, path)


# --- POST /api/batch-jobs validation --------------------------------------------------------------


INVALID_BATCHES = [  # (what is wrong, body, code)
    ("malformed JSON", b'{"order_ids": [', "invalid_json"),
    ("bytes that are not UTF-8", b'{"order_ids": ["\xff\xfe"]}', "invalid_json"),
    ("a list instead of an object", b'["' + SOME_ID.encode() + b'"]', "invalid_body"),
    ("an unknown field", b'{"order_ids": ["' + SOME_ID.encode() + b'"], "urgency": 1}', "unknown_field"),
    (
        "a priority that does not exist",
        b'{"order_ids": ["' + SOME_ID.encode() + b'"], "priority": "high"}',
        "invalid_priority",
    ),
    ("no order_ids", b"{}", "missing_field"),
    ("order_ids not a list", b'{"order_ids": "' + SOME_ID.encode() + b'"}', "invalid_type"),
    ("an empty list", b'{"order_ids": []}', "empty_batch"),
    ("an id that is no UUID", b'{"order_ids": ["not-a-uuid"]}', "invalid_order_id"),
    ("a UUID in braces", b'{"order_ids": ["{' + SOME_ID.encode() + b'}"]}', "invalid_order_id"),
]


async def test_invalid_batch_is_400_with_its_code_and_writes_nothing(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    for case, body, code in INVALID_BATCHES:
        response = await client.post("/api/batch-jobs", content=body, headers=organization.member.headers)
        assert error_of(response) == (400, code), case
    assert await rows_written(database) == (0, 0)


async def test_one_malformed_id_among_real_orders_refuses_the_whole_batch(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    order_ids = [str(i) for i in await create_orders(database, organization, 3)]
    response = await client.post(
        "/api/batch-jobs", json={"order_ids": [*order_ids, "oops"]}, headers=organization.member.headers
    )
    assert error_of(response) == (400, "invalid_order_id")
    assert "order_ids[3]" in response.json()["error"]["message"]
    assert await rows_written(database) == (0, 0)


async def submit_unknown_ids(
    database_url: str, redis_url: str, organization: Organization, *, count: int, max_batch_size: int
) -> httpx.Response:
    """A batch of ``count`` random ids to a server whose MAX_BATCH_SIZE is ``max_batch_size``."""
    small = make_settings(database_url, redis_url, MAX_BATCH_SIZE=str(max_batch_size))
    async with api_client(small) as client:
        return await client.post(
            "/api/batch-jobs",
            json={"order_ids": [str(uuid4()) for _ in range(count)]},
            headers=organization.member.headers,
        )


async def test_batch_over_max_batch_size_is_400_batch_too_large(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    response = await submit_unknown_ids(database_url, redis_url, organization, count=6, max_batch_size=5)
    assert error_of(response) == (400, "batch_too_large")
    assert await rows_written(database) == (0, 0)


async def test_batch_of_exactly_max_batch_size_is_accepted(
    database_url: str, redis_url: str, database: Database, organization: Organization
) -> None:
    response = await submit_unknown_ids(database_url, redis_url, organization, count=5, max_batch_size=5)
    assert response.status_code == 202, response.text
    assert await rows_written(database) == (1, 5)


async def test_body_over_8_mb_is_413(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    response = await client.post(
        "/api/batch-jobs", content=b" " * NINE_MB, headers=organization.member.headers
    )
    assert error_of(response) == (413, "body_too_large")
    assert await rows_written(database) == (0, 0)


async def test_streamed_body_over_8_mb_without_content_length_is_413(
    client: httpx.AsyncClient, database: Database, organization: Organization
) -> None:
    async def megabytes() -> AsyncIterator[bytes]:
        for _ in range(NINE_MB // (1024 * 1024)):
            yield b" " * (1024 * 1024)

    response = await client.post("/api/batch-jobs", content=megabytes(), headers=organization.member.headers)
    assert "content-length" not in response.request.headers
    assert error_of(response) == (413, "body_too_large")
    assert await rows_written(database) == (0, 0)


async def test_deeply_nested_json_is_400_invalid_json(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    body = b'{"order_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.post("/api/batch-jobs", content=body, headers=organization.member.headers)
    assert error_of(response) == (400, "invalid_json")


async def test_number_too_long_to_parse_is_400(client: httpx.AsyncClient, organization: Organization) -> None:
    body = b'{"order_ids": [' + b"1" * 5000 + b"]}"
    response = await client.post("/api/batch-jobs", content=body, headers=organization.member.headers)
    assert error_of(response) in {(400, "invalid_json"), (400, "invalid_order_id")}


# --- Query parameters -----------------------------------------------------------------------------


async def test_limit_outside_1_to_500_or_not_a_number_is_400(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    for limit in ("0", "-1", "501", "abc", "1.5", ""):
        response = await client.get(
            "/api/batch-jobs", params={"limit": limit}, headers=organization.member.headers
        )
        assert error_of(response) == (400, "invalid_limit"), limit


async def test_garbage_cursor_is_400_invalid_cursor(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    for path in ("/api/batch-jobs", "/api/sales-orders", "/api/invoices"):
        response = await client.get(
            path, params={"cursor": "not a cursor!"}, headers=organization.member.headers
        )
        assert error_of(response) == (400, "invalid_cursor"), path


async def test_cursor_of_the_wrong_list_is_400_invalid_cursor(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    cursor = encode_cursor(["SO-000001", SOME_ID])  # a sales-order cursor, on the job list
    response = await client.get(
        "/api/batch-jobs", params={"cursor": cursor}, headers=organization.member.headers
    )
    assert error_of(response) == (400, "invalid_cursor")


async def test_unknown_status_is_400_invalid_parameter(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    response = await client.get(
        "/api/batch-jobs", params={"status": "done"}, headers=organization.member.headers
    )
    assert error_of(response) == (400, "invalid_parameter")


async def test_unknown_query_parameter_is_400_unknown_parameter(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    response = await client.get(
        "/api/batch-jobs", params={"sort": "asc"}, headers=organization.member.headers
    )
    assert error_of(response) == (400, "unknown_parameter")


# A cursor is opaque, but clients can forge one; the paging module promises "a forged or damaged
# cursor is a 400 invalid_cursor, never a server error". These are well-formed cursors whose
# values PostgreSQL refuses.
FORGED_CURSOR_REASON = (
    "server/paging.py {helper} validates only the Python type of the decoded value; "
    "asyncpg then raises {error} and the request is answered 500 internal_error"
)


async def test_forged_item_cursor_beyond_int32_is_400(
    client: httpx.AsyncClient, organization: Organization
) -> None:
    job = await client.post(
        "/api/batch-jobs", json={"order_ids": [SOME_ID]}, headers=organization.member.headers
    )
    response = await client.get(
        f"/api/batch-jobs/{job.json()['id']}/items",
        params={"cursor": encode_cursor([2**40])},
        headers=organization.member.headers,
    )
    assert error_of(response) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("path", "values"),
    [
        pytest.param("/api/batch-jobs", ["0001-01-01T00:00:00+14:00", SOME_ID], id="time-out-of-range"),
        pytest.param("/api/sales-orders", ["SO-\x00", SOME_ID], id="text-with-a-nul-character"),
    ],
)
async def test_forged_cursor_postgres_cannot_hold_is_400(
    client: httpx.AsyncClient, organization: Organization, path: str, values: list[str]
) -> None:
    response = await client.get(
        path, params={"cursor": encode_cursor(values)}, headers=organization.member.headers
    )
    assert error_of(response) == (400, "invalid_cursor")


# --- Routing and health -----------------------------------------------------------------------------


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_redis(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "redis": True}


async def test_unknown_path_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert error_of(response) == (404, "not_found")


async def test_wrong_method_is_405_json(client: httpx.AsyncClient) -> None:
    for method, path in [("PUT", "/api/batch-jobs"), ("DELETE", f"/api/batch-jobs/{SOME_ID}")]:
        response = await client.request(method, path)
        assert error_of(response) == (405, "method_not_allowed"), (method, path)


async def test_405_lists_every_allowed_method(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/batch-jobs")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
