"""The published OpenAPI document is valid, complete, and true of the running API.

schemathesis generates valid and invalid requests for every documented operation and sends
them to the real application (in-process, on real PostgreSQL and Redis) with a real token:
no answer may be a 500, and every answer must be one the document describes (status, content
type, headers and body schema). The examples are bounded and derandomized, so a run is quick
and a failure replays.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err
from schemathesis.python import asgi
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import Route

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from server import api, tokens
from server.app import create_app
from server.openapi import openapi_document
from tests.support.app import api_client
from tests.support.factories import create_mixed_orders, create_orders, create_organization
from tests.support.workers import drain_queue

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Operations the fuzzer shows the application to get wrong: (method, path) → the bug.
KNOWN_APP_BUGS: dict[tuple[str, str], str] = {}


def documented_operations() -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = openapi_document()["paths"]
    return [
        (method.upper(), path) for path, item in paths.items() for method in item if method in HTTP_METHODS
    ]


def fuzz_params() -> list[Any]:
    return [
        pytest.param(
            method,
            path,
            id=f"{method} {path}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_APP_BUGS[method, path])]
            if (method, path) in KNOWN_APP_BUGS
            else [],
        )
        for method, path in documented_operations()
    ]


def test_document_is_valid_openapi_3_1() -> None:
    document = copy.deepcopy(openapi_document())
    try:
        from openapi_spec_validator import validate
    except ImportError:
        # The OpenAPI 3.1 meta-schema schemathesis ships, then schemathesis' own loading.
        jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    else:
        validate(document)
    schema = schemathesis.openapi.from_dict(document)
    results = list(schema.get_all_operations())
    assert [result.err() for result in results if isinstance(result, Err)] == []
    assert len(results) == len(documented_operations())


def test_every_api_route_is_documented() -> None:
    documented = set(documented_operations())
    for route in [*api.routes, *tokens.routes]:
        assert isinstance(route, Route)
        if not route.path.startswith("/api/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                assert (method, route.path) in documented
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/openapi.json")} <= documented


async def test_served_document_is_the_document(settings: Settings) -> None:
    async with api_client(settings) as client:
        response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi_document(settings.max_batch_size)


@dataclass(frozen=True)
class Target:
    """The loaded schema of a running app, credentials, and ids that exist in its database."""

    schema: Any
    credentials: list[dict[str, str]]
    known_ids: dict[str, list[str]]


def _created(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return str(body["item"]["id"] if "item" in body else body["id"])


@pytest_asyncio.fixture
async def target(settings: Settings, database: Database) -> AsyncIterator[Target]:
    """An organization with orders of every kind, a finished and a pending job, an invoice."""
    organization = await create_organization(database)
    mixed = await create_mixed_orders(database, organization, valid=3)
    open_orders = await create_orders(database, organization, 3)
    admin, member = organization.admin.headers, organization.member.headers
    async with api_client(settings) as client:
        batch = {"order_ids": [str(order_id) for order_id in mixed.all_ids]}
        finished_job = _created(await client.post("/api/batch-jobs", json=batch, headers=admin), 202)
        await drain_queue(settings)
        invoice = _created(
            await client.post(f"/api/sales-orders/{open_orders[0]}/invoice", headers=admin), 201
        )
        batch = {"order_ids": [str(open_orders[1])]}
        pending_job = _created(await client.post("/api/batch-jobs", json=batch, headers=admin), 202)
        spare_token = _created(await client.post("/api/tokens", json={"name": "spare"}, headers=admin), 201)
    # schemathesis runs the app, and its lifespan, on an event loop of its own (so the
    # database pool is created there, not on the test's loop) until shutdown_lifespans().
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_app(settings))
    try:
        yield Target(
            schema=schema,
            # Mostly valid credentials; now and then none or a wrong token (401).
            credentials=[admin, member, admin, member, {}, {"Authorization": "Bearer not-a-token"}],
            known_ids={
                "job_id": [finished_job, pending_job],
                # Invoiced once (201, then 409), and one of each rule failure (404, 422).
                "order_id": [str(open_orders[2]), *map(str, mixed.invalid)],
                "invoice_id": [invoice],
                "token_id": [spare_token],
            },
        )
    finally:
        asgi.shutdown_lifespans()


def _with_existing_id(operation: Any, name: str, ids: list[str]) -> st.SearchStrategy[Any]:
    return st.sampled_from(ids).flatmap(lambda value: operation.as_strategy(path_parameters={name: value}))


@pytest.mark.parametrize(("method", "path"), fuzz_params())
def test_fuzzed_requests_get_documented_answers(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    # Random ids only ever find nothing; existing ones reach the rest of each handler.
    strategies += [
        _with_existing_id(operation, name, ids)
        for name, ids in target.known_ids.items()
        if f"{{{name}}}" in path
    ]

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=st.one_of(strategies), headers=st.sampled_from(target.credentials))
    def fuzz(case: Any, headers: dict[str, str]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
