"""Every route of the JSON API answers what the published OpenAPI document says it answers.

One organization with real data: orders of every kind, a finished job with failed orders and
invoices, a job that no worker took for ten minutes (so the operations page reports it stuck),
a pending job, API tokens. Then one call for each answer that matters to a client: every
operation's success and its documented 400, 401, 403, 404, 409 and 422 (and the poll's 304).
Each answer's status must be listed for its operation, the headers the document requires there
present, and the body valid against the schema the document gives, its references resolved
in the document. The schemathesis test in tests/security fuzzes the same document; this one
reaches the answers random input does not (a stuck job, a conflict, a retry, a full list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
from starlette.routing import Route

from invoicing.accounts.api_tokens import MAX_ACTIVE_TOKENS
from invoicing.accounts.credentials import hash_token, new_api_token
from invoicing.admin.operations import PENDING_TOO_LONG_SECONDS
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from invoicing.notifications.webhooks import MAX_WEBHOOKS
from server.app import create_app
from server.openapi import openapi_document
from tests.support.app import api_client
from tests.support.factories import Organization, create_mixed_orders, create_orders, create_organization
from tests.support.openapi import (
    answer_problems,
    documented_operations,
    documented_statuses,
    fill_path,
)
from tests.support.workers import drain_queue

#: An id nothing has.
MISSING = str(uuid4())
ADMIN, MEMBER, NOBODY, CROSS_SITE = "admin", "member", "nobody", "a session cookie from another site"

#: The statuses each operation must be seen to answer, when the document lists them.
MAIN_ERRORS = {304, 400, 401, 403, 404, 409, 422}
#: Documented answers no call reaches, and why.
UNREACHABLE = {
    ("POST", "/api/tokens", 404): "`membership_not_found`: an authenticated caller is a member",
    (
        "POST",
        "/api/webhooks/{webhook_id}/rotate-secret",
        409,
    ): "`secret_key_required`: the tests set SECRET_KEY",
}

JOB = "/api/batch-jobs/{job_id}"
INVOICE_ORDER = "/api/sales-orders/{order_id}/invoice"


@dataclass(frozen=True)
class Ids:
    """What the organization holds, by the role it plays in the calls."""

    finished_job: str  # completed: invoices, and failed orders a retry takes
    pending_job: str  # cancelled by a call, then refused as finished
    held_order: str  # in a job that no worker took for ten minutes
    spare_order: str  # confirmed, in no job: a batch takes it
    open_order: str  # invoiced by a call, then refused as already invoiced
    unbillable_order: str  # its customer has no billing address
    invoice: str
    token: str  # the admin's, revoked by a call
    webhook: str  # with a delivery of the finished job; disabled, enabled, deleted by calls
    webhook_delivery: str


@dataclass(frozen=True)
class Call:
    """One request, and the status it must be answered with."""

    method: str
    path: str  # as the document writes it
    status: int
    caller: str = ADMIN
    ids: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.caller}, expecting {self.status})"


def calls(ids: Ids) -> list[Call]:
    """In order: a call may rely on those before it (an invoice made, a job cancelled)."""
    return [
        *order_calls(ids),
        *job_calls(ids),
        *account_calls(ids),
        *notification_calls(ids),
        *admin_calls(),
    ]


def order_calls(ids: Ids) -> list[Call]:
    order = {"order_id": ids.open_order}
    return [
        Call("GET", "/api/customers", 200),
        Call("GET", "/api/customers", 400, params={"limit": "0"}),
        Call("GET", "/api/sales-orders", 200, params={"include_total": "true"}),
        Call("GET", "/api/sales-orders", 400, params={"order_date_from": "yesterday"}),
        Call("GET", "/api/sales-orders/totals", 200),
        Call("GET", "/api/sales-orders/totals", 400, params={"currency": "euro"}),
        Call("POST", INVOICE_ORDER, 201, ids=order),
        Call("POST", INVOICE_ORDER, 409, ids=order),
        Call("POST", INVOICE_ORDER, 422, ids={"order_id": ids.unbillable_order}),
        Call("POST", INVOICE_ORDER, 404, ids={"order_id": MISSING}),
        Call("POST", INVOICE_ORDER, 403, CROSS_SITE, ids=order),
        Call("GET", "/api/invoices", 200, params={"job_id": ids.finished_job}),
        Call("GET", "/api/invoices", 400, params={"job_id": "job-1"}),
        Call("GET", "/api/invoices/{invoice_id}", 200, ids={"invoice_id": ids.invoice}),
        Call("GET", "/api/invoices/{invoice_id}", 404, ids={"invoice_id": MISSING}),
    ]


def job_calls(ids: Ids) -> list[Call]:
    finished, pending, missing = (
        {"job_id": ids.finished_job},
        {"job_id": ids.pending_job},
        {"job_id": MISSING},
    )
    return [
        Call("GET", "/api/batch-jobs", 200),
        Call("GET", "/api/batch-jobs", 400, params={"status": "done"}),
        Call("POST", "/api/batch-jobs", 202, body={"order_ids": [ids.spare_order]}),
        Call("POST", "/api/batch-jobs", 400, body={"order_ids": []}),
        Call("POST", "/api/batch-jobs", 409, body={"order_ids": [ids.held_order]}),
        Call("POST", "/api/batch-jobs", 403, CROSS_SITE, body={"filter": {}}),
        Call("GET", JOB, 200, ids=finished),
        Call("GET", JOB, 304, ids=finished, headers={"If-None-Match": "*"}),
        Call("GET", JOB, 404, ids=missing),
        Call("GET", f"{JOB}/items", 200, ids=finished),
        Call("GET", f"{JOB}/items", 400, ids=finished, params={"status": "done"}),
        Call("GET", f"{JOB}/items", 404, ids=missing),
        Call("POST", f"{JOB}/priority", 200, ids=pending, body={"priority": "low"}),
        Call("POST", f"{JOB}/priority", 400, ids=pending, body={"priority": "high"}),
        Call("POST", f"{JOB}/priority", 403, MEMBER, ids=pending, body={"priority": "urgent"}),
        Call("POST", f"{JOB}/priority", 404, ids=missing, body={"priority": "low"}),
        Call("POST", f"{JOB}/priority", 409, ids=finished, body={"priority": "low"}),
        Call("POST", f"{JOB}/cancel", 200, ids=pending),
        Call("POST", f"{JOB}/cancel", 409, ids=pending),
        Call("POST", f"{JOB}/cancel", 404, ids=missing),
        Call("POST", f"{JOB}/cancel", 403, CROSS_SITE, ids=pending),
        Call("POST", f"{JOB}/retry", 400, ids=finished, body={"priority": "high"}),
        Call("POST", f"{JOB}/retry", 202, ids=finished),
        Call("POST", f"{JOB}/retry", 409, ids=finished),
        Call("POST", f"{JOB}/retry", 404, ids=missing),
        Call("POST", f"{JOB}/retry", 403, CROSS_SITE, ids=finished),
    ]


def account_calls(ids: Ids) -> list[Call]:
    token = {"token_id": ids.token}
    return [
        Call("GET", "/api/me", 200),
        Call("GET", "/api/tokens", 200),
        Call("POST", "/api/tokens", 201, body={"name": "deploy"}),
        Call("POST", "/api/tokens", 400, body={"name": ""}),
        Call("POST", "/api/tokens", 409, MEMBER, body={"name": "one too many"}),
        Call("POST", "/api/tokens", 403, CROSS_SITE, body={"name": "deploy"}),
        Call("POST", "/api/tokens/{token_id}/revoke", 200, ids=token),
        Call("POST", "/api/tokens/{token_id}/revoke", 404, ids={"token_id": MISSING}),
        Call("POST", "/api/tokens/{token_id}/revoke", 403, CROSS_SITE, ids=token),
    ]


def notification_calls(ids: Ids) -> list[Call]:
    webhook, missing = {"webhook_id": ids.webhook}, {"webhook_id": MISSING}
    delivery = {"delivery_id": ids.webhook_delivery}
    settings, hooks, one = "/api/me/notifications", "/api/webhooks", "/api/webhooks/{webhook_id}"
    redeliver = "/api/webhook-deliveries/{delivery_id}/redeliver"
    return [
        Call("GET", settings, 200, MEMBER),
        Call("PUT", settings, 200, MEMBER, body={"email": "failures"}),
        Call("PUT", settings, 400, MEMBER, body={"email": "sometimes"}),
        Call("PUT", settings, 403, CROSS_SITE, body={"email": "never"}),
        Call("GET", hooks, 200),
        Call("GET", hooks, 403, MEMBER),
        Call("POST", hooks, 201, body={"url": "https://hooks.example.test/last"}),
        Call("POST", hooks, 409, body={"url": "https://hooks.example.test/one-too-many"}),
        Call("POST", hooks, 400, body={"url": "ftp://hooks.example.test/"}),
        Call("POST", hooks, 403, MEMBER, body={"url": "https://hooks.example.test/"}),
        Call("POST", f"{one}/rotate-secret", 200, ids=webhook),
        Call("POST", f"{one}/rotate-secret", 404, ids=missing),
        Call("POST", f"{one}/rotate-secret", 403, MEMBER, ids=webhook),
        Call("POST", f"{one}/disable", 200, ids=webhook),
        Call("POST", f"{one}/disable", 404, ids=missing),
        Call("POST", f"{one}/disable", 403, MEMBER, ids=webhook),
        Call("POST", redeliver, 409, ids=delivery),
        Call("POST", f"{one}/ping", 409, ids=webhook),
        Call("POST", f"{one}/enable", 200, ids=webhook),
        Call("POST", f"{one}/enable", 404, ids=missing),
        Call("POST", f"{one}/enable", 403, MEMBER, ids=webhook),
        Call("POST", redeliver, 202, ids=delivery),
        Call("POST", f"{one}/ping", 202, ids=webhook),
        Call("POST", f"{one}/ping", 404, ids=missing),
        Call("POST", f"{one}/ping", 403, MEMBER, ids=webhook),
        Call("POST", redeliver, 404, ids={"delivery_id": MISSING}),
        Call("POST", redeliver, 403, MEMBER, ids=delivery),
        Call("GET", f"{one}/deliveries", 200, ids=webhook),
        Call("GET", f"{one}/deliveries", 400, ids=webhook, params={"limit": "0"}),
        Call("GET", f"{one}/deliveries", 404, ids=missing),
        Call("GET", f"{one}/deliveries", 403, MEMBER, ids=webhook),
        Call("PATCH", one, 200, ids=webhook, body={"description": "ERP", "events": ["batch_job.failed"]}),
        Call("PATCH", one, 400, ids=webhook, body={}),
        Call("PATCH", one, 404, ids=missing, body={"description": "ERP"}),
        Call("PATCH", one, 403, MEMBER, ids=webhook, body={"description": "ERP"}),
        Call("DELETE", one, 403, MEMBER, ids=webhook),
        Call("DELETE", one, 204, ids=webhook),
        Call("DELETE", one, 404, ids=webhook),
    ]


def admin_calls() -> list[Call]:
    return [
        Call("GET", "/api/admin/stats", 200),
        Call("GET", "/api/admin/stats", 400, params={"window": "7d"}),
        Call("GET", "/api/admin/stats", 403, MEMBER),
        Call("GET", "/api/admin/audit-log", 200),
        Call("GET", "/api/admin/audit-log", 400, params={"limit": "201"}),
        Call("GET", "/api/admin/audit-log", 403, MEMBER),
        Call("POST", "/api/admin/process-pending", 200),
        Call("POST", "/api/admin/process-pending", 403, MEMBER),
        Call("GET", "/api/openapi.json", 200, NOBODY),
        Call("GET", "/healthz", 200, NOBODY),
        Call("GET", "/readyz", 200, NOBODY),
    ]


def unauthenticated_calls(document: dict[str, Any]) -> list[Call]:
    """Every operation that documents a 401, called with no credentials at all."""
    return [
        Call(method, path, 401, NOBODY)
        for method, path in sorted(documented_operations(document))
        if 401 in documented_statuses(document, method, path)
    ]


def every_call(ids: Ids, document: dict[str, Any]) -> list[Call]:
    return [*calls(ids), *unauthenticated_calls(document)]


def required_answers(document: dict[str, Any]) -> set[tuple[str, str, int]]:
    """Each operation's successes and the main errors it documents."""
    return {
        (method, path, status)
        for method, path in documented_operations(document)
        for status in documented_statuses(document, method, path)
        if 200 <= status < 300 or status in MAIN_ERRORS
    }


def json_api_routes(settings: Settings) -> set[tuple[str, str]]:
    """(METHOD, path) of every route the application serves JSON on (pages and sockets aside)."""
    return {
        (method, route.path)
        for route in create_app(settings).routes
        if isinstance(route, Route) and re.match(r"/api/|/healthz$|/readyz$", route.path)
        for method in route.methods or ()
        if method != "HEAD"
    }


# --- the document and the application ------------------------------------------------------------


def test_the_document_lists_exactly_the_routes_the_application_serves(settings: Settings) -> None:
    assert json_api_routes(settings) == documented_operations(openapi_document())


def test_the_calls_reach_every_success_and_main_error_the_document_lists() -> None:
    document = openapi_document()
    placeholders = Ids(*(str(uuid4()) for _ in fields(Ids)))
    made = {(call.method, call.path, call.status) for call in every_call(placeholders, document)}
    assert required_answers(document) - made - UNREACHABLE.keys() == set()


async def test_every_answer_is_one_the_document_describes(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    async with api_client(settings) as client:
        ids = await holdings(client, settings, database, organization)
        document = (await client.get("/api/openapi.json")).json()
        problems = []
        for call in every_call(ids, document):
            response = await send(client, call, organization)
            if response.status_code != call.status:
                problems.append(f"{call}: answered {response.status_code} {response.text[:300]}")
            problems += [
                f"{call}: {problem}"
                for problem in answer_problems(document, call.method, call.path, response)
            ]
    assert not problems, "\n".join(problems)


# --- the checks themselves -----------------------------------------------------------------------


def test_a_body_unlike_its_schema_is_a_problem() -> None:
    document = openapi_document()

    def problems(status: int, body: Any, **headers: str) -> list[str]:
        response = httpx.Response(status, json=body, headers=headers)
        return answer_problems(document, "GET", "/api/me", response)

    me = {
        "user": {"id": MISSING, "email": "a@example.test", "role": "admin"},
        "organization": {"id": MISSING, "name": "A"},
    }
    assert problems(200, me) == []
    assert problems(200, {**me, "password": "x"}) != []  # a field the schema does not list
    assert problems(200, {**me, "user": {**me["user"], "role": "owner"}}) != []
    assert problems(200, {**me, "user": {**me["user"], "id": "7"}}) != []  # formats are checked
    assert problems(418, {}) != []  # a status the document does not list
    error = {"error": {"code": "unauthorized", "message": "Log in."}}
    assert problems(401, error, **{"WWW-Authenticate": "Bearer"}) == []  # a shared response, resolved
    assert problems(401, error) != []  # its required header missing
    assert problems(401, {"error": {"code": "unauthorized"}}, **{"WWW-Authenticate": "Bearer"}) != []


# --- the organization and its callers ------------------------------------------------------------


async def holdings(
    client: httpx.AsyncClient, settings: Settings, database: Database, organization: Organization
) -> Ids:
    admin = organization.admin.headers
    mixed = await create_mixed_orders(database, organization, valid=2)
    held, spare, open_order, pending_order = map(str, await create_orders(database, organization, 4))
    (unbillable,) = await create_orders(
        database, organization, 1, customer_id=organization.unbillable_customer_id
    )
    # Nothing listens on port 9 (discard): the finished job's call fails and stays to redeliver.
    webhook = await created(client, "/api/webhooks", {"url": "http://127.0.0.1:9/hook"}, admin)
    finished_job = await created(
        client, "/api/batch-jobs", {"order_ids": list(map(str, mixed.all_ids))}, admin
    )
    await drain_queue(settings)
    stuck_job = await created(client, "/api/batch-jobs", {"order_ids": [held]}, admin)
    pending_job = await created(client, "/api/batch-jobs", {"order_ids": [pending_order]}, admin)
    invoices = await client.get("/api/invoices", params={"job_id": finished_job}, headers=admin)
    token = await created(client, "/api/tokens", {"name": "spare"}, admin)
    deliveries = await client.get(f"/api/webhooks/{webhook}/deliveries", headers=admin)
    async with database.unscoped() as connection:
        await connection.execute(
            "UPDATE batch_job_queue SET created_at = created_at - $2::interval WHERE id = $1",
            stuck_job,
            timedelta(seconds=2 * PENDING_TOO_LONG_SECONDS),
        )
        await connection.executemany(
            "INSERT INTO api_tokens (organization_id, user_id, name, token_hash) VALUES ($1, $2, 'old', $3)",
            [
                (organization.id, organization.member.id, hash_token(new_api_token()))
                for _ in range(MAX_ACTIVE_TOKENS - 1)  # the member has one already
            ],
        )
        # One endpoint short of the limit: a call adds the last one, the next is refused.
        await connection.executemany(
            "INSERT INTO webhook_endpoints (organization_id, url, events, secret_salt)"
            " VALUES ($1, $2, $3, '')",
            [
                (organization.id, f"https://hooks.example.test/{n}", ["batch_job.failed"])
                for n in range(MAX_WEBHOOKS - 2)
            ],
        )
    return Ids(
        finished_job=finished_job,
        pending_job=pending_job,
        held_order=held,
        spare_order=spare,
        open_order=open_order,
        unbillable_order=str(unbillable),
        invoice=invoices.json()["items"][0]["id"],
        token=token,
        webhook=webhook,
        webhook_delivery=deliveries.json()["items"][0]["id"],
    )


async def created(client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]) -> str:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (201, 202), response.text
    answer: dict[str, Any] = response.json()
    return str(answer["item"]["id"] if "item" in answer else answer["id"])


async def send(client: httpx.AsyncClient, call: Call, organization: Organization) -> httpx.Response:
    credentials = {
        ADMIN: organization.admin.headers,
        MEMBER: organization.member.headers,
        NOBODY: {},
        # A cookie on a request that changes something, with no Origin: the browser of another site.
        CROSS_SITE: {"Cookie": "invoicing_session=from-another-site"},
    }[call.caller]
    return await client.request(
        call.method,
        fill_path(call.path, call.ids, MISSING),
        params=call.params,
        json=call.body,
        headers={**credentials, **call.headers},
    )
