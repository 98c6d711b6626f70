"""``invoicing bench-orders``: how fast the clerk's order list answers at month-end size.

On a real server and worker (child processes), a scratch database and a private Redis: two
organizations of ``--orders`` seeded orders each, analyzed; then ``--invoiced`` of the first
organization's orders get an invoice in one bulk write just before the clock starts (no
ANALYZE after it, so the planner's statistics are stale, as right after a month-end run). Then the second
organization submits every order it has and the first ``--own-job`` of its own, and while
both jobs run, ``--readers`` clients of the first organization read the page and the count in
turn, and ``--totals-readers`` more (clerks who chose "select all") read the totals:

- ``page``: ``GET /api/sales-orders?status=confirmed&invoiced=false&limit=50`` at a random
  place in the list (a cursor made from a random order's number), the page the list shows;
- ``count``: ``limit=1&include_total=true``, as the page asks for the "Select all N matching" figure;
- ``totals``: ``GET /api/sales-orders/totals`` with the same filter (what every matching order
  would invoice, per currency; skipped where the server has no such route).

Only reads that start while both jobs are still running count. Progress goes to stderr; a
table, or one JSON document with ``--json``, to stdout. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from devtools.bench_websockets import _percentile, _spawn, _stop, scratch_services, start_server
from devtools.seed import seed
from invoicing.domain.paging import encode_cursor
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.kernel.settings import Settings

UNINVOICED = "status=confirmed&invoiced=false"
KINDS = ("page", "count", "totals")
#: Reads that started later than this after the jobs were submitted are not waited for.
MAX_SECONDS = 600

# Invoices written in bulk, as a month-end run leaves them (numbers in order; amounts are
# not what the list reads).
BULK_INVOICES = """
INSERT INTO invoices (id, organization_id, number, year, sequence, sales_order_id, customer_id,
    billing_name, billing_address, billing_email, issue_date, due_date, currency,
    subtotal, tax_total, total, created_by)
SELECT gen_random_uuid(), o.organization_id, 'INV-2026-' || lpad(o.sequence::text, 6, '0'), 2026, o.sequence,
       o.id, o.customer_id, 'Billing', 'Address', 'billing@example.com', current_date, current_date,
       o.currency, 100, 20, 120, $3
FROM (
    SELECT s.*, row_number() OVER () AS sequence
    FROM (SELECT * FROM sales_orders WHERE organization_id = $1 ORDER BY random() LIMIT $2) AS s
) AS o
"""


@dataclass(frozen=True)
class Options:
    orders: int = 100_000
    invoiced: int = 50_000
    own_job: int = 20_000
    readers: int = 4
    reads: int = 600
    totals_readers: int = 1


@dataclass(frozen=True)
class Latency:
    reads: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    answers: dict[str, int]


@dataclass(frozen=True)
class Report:
    options: Options
    matching: int | None
    by_kind: dict[str, Latency]
    jobs_still_running_at_end: bool


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _prepare(database_url: str, options: Options) -> tuple[str, str, list[tuple[str, str]]]:
    """Tokens of the two organizations and the (number, id) of the first one's orders."""
    async with Database(database_url, pool_size=2) as database:
        await migrate(database)
        created = (await seed(database, organizations=2, orders=options.orders, invalid_ratio=0.01))[
            "organizations"
        ]
        first = UUID(created[0]["id"])
        async with database.unscoped() as connection:
            admin = await connection.fetchval(
                "SELECT user_id FROM memberships WHERE organization_id = $1 AND role = 'admin'", first
            )
            # Statistics taken before the month-end run (as autovacuum would have), stale after it.
            await connection.execute("ANALYZE")
            await connection.execute(BULK_INVOICES, first, options.invoiced, admin)
            rows = await connection.fetch(
                "SELECT number, id FROM sales_orders WHERE organization_id = $1 ORDER BY number", first
            )
    keys = [(row["number"], str(row["id"])) for row in rows]
    return created[0]["users"][0]["token"], created[1]["users"][0]["token"], keys


async def _submit(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> str:
    response = await client.post("/api/batch-jobs", json=body, headers={"Authorization": f"Bearer {token}"})
    return str(response.raise_for_status().json()["id"])


async def _running(client: httpx.AsyncClient, token: str, job_id: str) -> bool:
    response = await client.get(f"/api/batch-jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    return response.json()["status"] in ("pending", "processing")


class _Jobs:
    """Whether both jobs still run (and the page and count readers have reads left), refreshed
    in the background."""

    def __init__(self) -> None:
        self.running = True

    async def watch(self, client: httpx.AsyncClient, watched: list[tuple[str, str]]) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while self.running and time.monotonic() < deadline:
            states = [await _running(client, token, job_id) for token, job_id in watched]
            self.running = all(states)
            await asyncio.sleep(0.2)
        self.running = False


async def _read(
    client: httpx.AsyncClient, token: str, kind: str, keys: list[tuple[str, str]], rng: random.Random
) -> tuple[float, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if kind == "page":
        cursor = encode_cursor(list(rng.choice(keys)))
        url = f"/api/sales-orders?{UNINVOICED}&limit=50&cursor={cursor}"
    elif kind == "count":
        url = f"/api/sales-orders?{UNINVOICED}&limit=1&include_total=true"
    else:
        url = f"/api/sales-orders/totals?{UNINVOICED}"
    started = time.perf_counter()
    response = await client.get(url, headers=headers)
    return (time.perf_counter() - started) * 1000, str(response.status_code)


async def _reader(
    client: httpx.AsyncClient,
    token: str,
    keys: list[tuple[str, str]],
    jobs: _Jobs,
    kinds: list[str],
    budget: list[int],
    found: dict[str, list[tuple[float, str]]],
    seed_value: int,
) -> None:
    rng = random.Random(seed_value)
    turn = seed_value
    while jobs.running and budget[0] > 0:
        if kinds != ["totals"]:
            budget[0] -= 1
        kind = kinds[turn % len(kinds)]
        turn += 1
        elapsed, answer = await _read(client, token, kind, keys, rng)
        if jobs.running:
            found[kind].append((elapsed, answer))


def _latency(samples: list[tuple[float, str]]) -> Latency:
    times = [elapsed for elapsed, _ in samples] or [0.0]
    answers: dict[str, int] = {}
    for _, answer in samples:
        answers[answer] = answers.get(answer, 0) + 1
    return Latency(
        reads=len(samples),
        p50_ms=round(_percentile(times, 0.50), 1),
        p95_ms=round(_percentile(times, 0.95), 1),
        p99_ms=round(_percentile(times, 0.99), 1),
        max_ms=round(max(times), 1),
        answers=answers,
    )


async def run_benchmark(settings: Settings, options: Options) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    async with AsyncExitStack() as stack:
        env = await scratch_services(stack, settings, workdir)
        _say(f"seeding 2 organizations of {options.orders:,} orders, {options.invoiced:,} of one invoiced")
        own, other, keys = await _prepare(env["MIGRATION_DATABASE_URL"], options)
        worker = _spawn(["worker"], env, workdir / "worker.log")
        stack.callback(_stop, [worker])
        server, port = await start_server(stack, env, workdir)
        _say(f"  server pid {server.pid}, worker pid {worker.pid}, logs in {workdir}")
        base = f"http://127.0.0.1:{port}"
        limits = httpx.Limits(max_connections=options.readers + 4)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            probe = await client.get("/api/sales-orders/totals", headers={"Authorization": f"Bearer {own}"})
            totals_readers = options.totals_readers if probe.status_code != 404 else 0
            count = await client.get(
                f"/api/sales-orders?{UNINVOICED}&limit=1&include_total=true",
                headers={"Authorization": f"Bearer {own}"},
            )
            matching = count.json().get("total")
            other_job = await _submit(client, other, {"filter": {}})
            wanted = await client.get(
                f"/api/sales-orders?{UNINVOICED}&limit=500", headers={"Authorization": f"Bearer {own}"}
            )
            own_ids = [order["id"] for order in wanted.json()["items"]]
            cursor = wanted.json()["next_cursor"]
            while len(own_ids) < options.own_job and cursor:
                wanted = await client.get(
                    f"/api/sales-orders?{UNINVOICED}&limit=500&cursor={cursor}",
                    headers={"Authorization": f"Bearer {own}"},
                )
                own_ids += [order["id"] for order in wanted.json()["items"]]
                cursor = wanted.json()["next_cursor"]
            own_job = await _submit(client, own, {"order_ids": own_ids[: options.own_job]})
            _say(f"jobs submitted; {options.readers} readers read while both run")
            jobs = _Jobs()
            watcher = asyncio.create_task(jobs.watch(client, [(other, other_job), (own, own_job)]))
            found: dict[str, list[tuple[float, str]]] = {
                kind: [] for kind in KINDS[: 3 if totals_readers else 2]
            }
            budget = [options.reads]
            readers = [
                _reader(client, own, keys, jobs, ["page", "count"], budget, found, n)
                for n in range(options.readers)
            ]
            totals = [
                asyncio.create_task(_reader(client, own, keys, jobs, ["totals"], budget, found, n))
                for n in range(totals_readers)
            ]
            await asyncio.gather(*readers)
            still_running = jobs.running
            jobs.running = False  # the totals readers stop after their current read
            await asyncio.gather(*totals)
            await watcher
    return Report(
        options, matching, {kind: _latency(samples) for kind, samples in found.items()}, still_running
    )


def render(report: Report) -> str:
    options = report.options
    lines = [
        f"{options.orders:,} orders per organization, {options.invoiced:,} of the first invoiced in bulk "
        f"({report.matching if report.matching is not None else '?'} matching the list), "
        f"a {options.orders:,}-order job of the other organization and a {options.own_job:,}-order job "
        f"of its own running; {options.readers} readers of pages and counts, "
        f"{options.totals_readers} of totals",
        "",
        "| read | reads | p50 ms | p95 ms | p99 ms | max ms | answers |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, latency in report.by_kind.items():
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(latency.answers.items()))
        lines.append(
            f"| {kind} | {latency.reads} | {latency.p50_ms} | {latency.p95_ms} | {latency.p99_ms} "
            f"| {latency.max_ms} | {answers} |"
        )
    if report.jobs_still_running_at_end:
        lines.append("")
        lines.append("(the jobs were still running when the reads ran out)")
    return "\n".join(lines)


def run(settings: Settings, options: Options, *, as_json: bool) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = asyncio.run(run_benchmark(settings, options))
    print(json.dumps(asdict(report)) if as_json else render(report))
    return 0
