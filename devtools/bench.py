"""``invoicing bench``: the worker's throughput against the PostgreSQL ceiling and the naive path.

For each size N, on one scratch database (its own, dropped at the end) and a private Redis,
with a real ``invoicing server`` and ``invoicing worker`` processes as children:

* **ceiling**: the valid orders' invoices written by the worker's own storage call
  (``InvoiceRows``, then ``insert_invoices_isolating``) on the application's pool, as the
  runtime role in the organization's sealed scope, one transaction per chunk of
  ``MAX_CHUNK_SIZE``; only the write transactions are timed. Invoices per second.
* **end to end**: N fresh orders submitted by id as one job over HTTP, timed from the request
  to the ``finished`` frame on ``/ws/batch-jobs/{id}``, once per worker count. Invoices per
  second, the POST's duration, the first worker event after it, the workers' peak RSS.
* **naive**: up to ``--naive-sample`` fresh orders through the single-order endpoint, one
  request per order, a few at a time. Orders per second.

Every measurement gets its own organization with fresh, uninvoiced orders (5 lines each,
2 % invalid). Progress goes to stderr; a table, or one JSON document with ``--json``, to stdout.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.bench_websockets import (
    Watchers,
    _LightClient,
    _stop,
    handshake_request,
    scratch_services,
    start_server,
    start_workers,
)
from devtools.seed import seed
from invoicing.domain.invoice_rules import CURRENCY_MISMATCH, INVALID_LINE, MISSING_BILLING_INFO
from invoicing.domain.models import InvoiceDraft
from invoicing.infra import pools
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.invoices import store as invoices
from invoicing.invoices.decisions import decide, today
from invoicing.kernel.settings import Settings
from invoicing.services import application_database

LINES_PER_ORDER = 5
#: One order in 50 breaks a rule (2 %), in each of these ways in turn; all keep their 5 lines.
INVALID_EVERY = 50
_INVALID_KINDS = (MISSING_BILLING_INFO, CURRENCY_MISMATCH, INVALID_LINE)
NAIVE_CONCURRENCY = 4
_ORDER_COLUMNS = ("id", "organization_id", "number", "customer_id", "status", "currency", "order_date")
_LINE_COLUMNS = (
    "organization_id", "sales_order_id", "position", "description", "quantity", "unit_price",
    "discount_percent", "tax_rate_percent",
)  # fmt: skip


@dataclass(frozen=True)
class Result:
    """One row of the table: a size measured with a number of worker processes."""

    size: int
    workers: int
    ceiling_per_s: float
    end_to_end_per_s: float
    naive_per_s: float
    submit_ms: float
    first_event_ms: float
    worker_peak_rss_mb: float


@dataclass(frozen=True)
class _EndToEnd:
    per_s: float
    submit_ms: float
    first_event_ms: float
    peak_rss_mb: float


@dataclass(frozen=True)
class BenchOrganization:
    """A seeded organization: its id, its admin's API token, its orders' ids in number order."""

    id: uuid.UUID
    token: str
    order_ids: list[uuid.UUID]


@dataclass
class _Bench:
    """What every measurement needs: the database, the server and the children's settings."""

    #: The owner's pool (seeding, set-up).
    database: Database
    #: The application's pool, as the server and the workers open it (the ceiling writes on it).
    application: Database
    base: str
    env: dict[str, str]
    workdir: Path
    chunk_size: int
    runs: int = field(default=0)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bar(label: str, done: int, total: int) -> None:
    """A progress bar on a terminal, nothing elsewhere (logs stay readable)."""
    if not sys.stderr.isatty():
        return
    filled = int(30 * done / max(1, total))
    end = "\n" if done >= total else ""
    print(f"\r  {label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end=end, file=sys.stderr)


# --- Data ---------------------------------------------------------------------------------


async def organization_with_orders(database: Database, orders: int) -> BenchOrganization:
    """A fresh organization (users, token, customers by ``seed``) with ``orders`` 5-line orders."""
    created = (await seed(database, organizations=1, orders=0, invalid_ratio=0.0))["organizations"][0]
    organization_id = uuid.UUID(created["id"])
    async with database.transaction() as connection:
        customers = await connection.fetch(
            "SELECT id, currency, billing_address IS NOT NULL AND billing_email IS NOT NULL AS billable"
            " FROM customers WHERE organization_id = $1 ORDER BY id",
            organization_id,
        )
        order_rows, lines = _order_rows(organization_id, customers, orders)
        await connection.copy_records_to_table("sales_orders", records=order_rows, columns=_ORDER_COLUMNS)
        text = io.BytesIO("".join(f"{organization_id}\t{line}" for line in lines).encode())
        await connection.copy_to_table("sales_order_lines", source=text, columns=_LINE_COLUMNS, format="text")
    return BenchOrganization(organization_id, created["users"][0]["token"], [row[0] for row in order_rows])


def _order_rows(
    organization_id: uuid.UUID, customers: list[Any], orders: int
) -> tuple[list[tuple[Any, ...]], list[str]]:
    billable = [c for c in customers if c["billable"]]
    unbillable = [c for c in customers if not c["billable"]]
    euro = [c for c in billable if c["currency"] == "EUR"]
    order_date = date.today()
    order_rows: list[tuple[Any, ...]] = []
    lines: list[str] = []
    # Ascending ids, like the numbers: index and foreign-key pages are then walked in order.
    for position, order_id in enumerate(sorted((uuid.uuid4() for _ in range(orders)), key=lambda u: u.int)):
        kind = _INVALID_KINDS[position // INVALID_EVERY % 3] if position % INVALID_EVERY == 7 else None
        pool = unbillable if kind == MISSING_BILLING_INFO else euro if kind == CURRENCY_MISMATCH else billable
        customer = pool[position % len(pool)]
        currency = "USD" if kind == CURRENCY_MISMATCH else customer["currency"]
        number = f"SO-{position + 1:07d}"
        customer_id = customer["id"]
        order_rows.append((order_id, organization_id, number, customer_id, "confirmed", currency, order_date))
        for line in range(1, LINES_PER_ORDER + 1):
            quantity = "0" if kind == INVALID_LINE and line == 3 else str(1 + (position + line) % 9)
            price = f"{10 + (position * 7 + line * 13) % 490}.{(position + line) % 100:02d}"
            tax = ("0", "7", "19", "20")[(position + line) % 4]
            lines.append(f"{order_id}\t{line}\tItem {line}\t{quantity}\t{price}\t{line % 2 * 5}\t{tax}\n")
    return order_rows, lines


# --- Ceiling ------------------------------------------------------------------------------


async def _ceiling(bench: _Bench, organization: BenchOrganization) -> float:
    """The fastest the worker's storage path writes these orders' invoices, nothing else in the way.

    The same call as a chunk's commit (``insert_invoices_isolating``: the number block taken
    from the organization's counter, COPY into the connection's staging tables, one INSERT …
    SELECT per table that row-level security checks, under a savepoint) on a connection of the
    application's pool, as the runtime role in the organization's sealed scope. One transaction
    per chunk of ``MAX_CHUNK_SIZE`` (the largest chunk the worker may use: the most favourable
    case). Timed: from taking the connection to handing it back (BEGIN, naming the scope, the
    numbers, the COPYs and moves, COMMIT, the pool's check of the returned connection). Not
    timed: locking and loading the orders (a transaction of its own, before), the rules and
    building the rows. Left out altogether, as no job is involved: the lease, the items'
    outcomes and the job's counters (so ``batch_job_id`` is empty).
    """
    ids, size, application = organization.order_ids, bench.chunk_size, bench.application
    elapsed, written = 0.0, 0
    async with bench.database.connection() as connection:
        user_id = await connection.fetchval(
            "SELECT user_id FROM memberships WHERE organization_id = $1 LIMIT 1", organization.id
        )
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        async with application.scoped(organization.id) as connection:
            loaded = await invoices.lock_orders_for_invoicing(connection, organization.id, chunk)
        issue_date = today()
        rows = invoices.InvoiceRows(organization.id, issue_date.year)
        rows.add(d for d in decide(chunk, loaded, issue_date) if isinstance(d, InvoiceDraft))
        started = time.perf_counter()
        async with application.scoped(organization.id) as connection:
            created, refused = await invoices.insert_invoices_isolating(
                connection, rows, created_by=user_id, batch_job_id=None
            )
        elapsed += time.perf_counter() - started
        if refused:  # the bench's orders are all storable: a refusal is a bug, not a figure
            raise RuntimeError(f"ceiling: the database refused invoices: {next(iter(refused.values()))}")
        written += len(created)
        _bar("ceiling", start + len(chunk), len(ids))
    return written / elapsed


# --- End to end ---------------------------------------------------------------------------


class _JobClient(_LightClient):
    """The bench-websockets reader on one job's socket, keeping every frame's receipt time."""

    def __init__(self, request: bytes, total: int) -> None:
        super().__init__(Watchers(expected=1), request)
        self.total = total
        self.frames: list[tuple[float, dict[str, Any]]] = []

    def _next_frame(self) -> bytes | None:
        # The server pings every 20 s and drops a socket that does not answer: a long job
        # outlives that, so pings get their pong (masked, as client frames must be).
        opcode = self.buffer[0] & 0x0F if self.buffer else None
        frame = super()._next_frame()
        if frame is not None and opcode == 0x9 and self.transport is not None:
            mask = secrets.token_bytes(4)
            masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(frame))
            self.transport.write(bytes([0x8A, 0x80 | len(frame)]) + mask + masked)
            return b""
        return frame

    def _on_message(self, message: bytes, received: float) -> None:
        if not message.startswith(b"{"):  # a ping, or the close frame after ``finished``
            return
        frame = json.loads(message)
        self.frames.append((received, frame))
        _bar("end to end", frame.get("processed_items", 0), self.total)
        if frame["type"] in ("finished", "error") and not self.finished.done():
            _bar("end to end", self.total, self.total)
            self.finished.set_result(None)

    def first_worker_event(self) -> float:
        """When the worker was first seen at work: an event, or a snapshot past ``pending``."""
        for received, frame in self.frames:
            if frame["type"] != "snapshot" or frame["job"]["status"] != "pending":
                return received
        raise RuntimeError("no event from the worker")


async def _watch_job(base: str, token: str, job_id: str, total: int) -> _JobClient:
    host, port_text = base.removeprefix("http://").split(":")
    port = int(port_text)
    request = handshake_request(f"/ws/batch-jobs/{job_id}", host, port, token)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: _JobClient(request, total), host, port)
    try:
        await asyncio.wait_for(client.finished, timeout=3600)
    finally:
        transport.close()
    return client


async def _sample_rss(pids: list[int], peaks: dict[int, int], stop: asyncio.Event) -> None:
    processes = [psutil.Process(pid) for pid in pids]
    while not stop.is_set():
        for process in processes:
            with suppress(psutil.NoSuchProcess):
                peaks[process.pid] = max(peaks.get(process.pid, 0), int(process.memory_info().rss))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def _start_workers(bench: _Bench, workers: int) -> list[subprocess.Popen[bytes]]:
    bench.runs += 1
    return await start_workers(bench.env, bench.workdir, workers, f"worker-{bench.runs}")


async def _end_to_end(bench: _Bench, organization: BenchOrganization, workers: int) -> _EndToEnd:
    processes = await _start_workers(bench, workers)
    peaks: dict[int, int] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss([p.pid for p in processes], peaks, stop))
    try:
        headers = {"Authorization": f"Bearer {organization.token}"}
        body = {"order_ids": [str(order_id) for order_id in organization.order_ids]}
        async with httpx.AsyncClient(base_url=bench.base, headers=headers, timeout=120) as client:
            requested = time.time()
            response = await client.post("/api/batch-jobs", json=body)
            submitted = time.time()
        response.raise_for_status()
        job = response.json()
        watcher = await _watch_job(bench.base, organization.token, job["id"], job["total_items"])
        finished_at, final = watcher.frames[-1]
    finally:
        stop.set()
        await sampler
        _stop(processes)
    if final["type"] != "finished" or final["job"]["status"] != "completed":
        raise RuntimeError(f"the job did not complete: {final}")
    return _EndToEnd(
        per_s=final["job"]["successful_items"] / (finished_at - requested),
        submit_ms=(submitted - requested) * 1000,
        first_event_ms=max(0.0, watcher.first_worker_event() - submitted) * 1000,
        peak_rss_mb=max(peaks.values()) / 2**20,
    )


# --- Naive --------------------------------------------------------------------------------


async def _naive(bench: _Bench, organization: BenchOrganization) -> float:
    pending = list(organization.order_ids)
    total, done = len(pending), 0
    headers = {"Authorization": f"Bearer {organization.token}"}

    async def invoice_one_by_one(client: httpx.AsyncClient) -> None:
        nonlocal done
        while pending:
            response = await client.post(f"/api/sales-orders/{pending.pop()}/invoice")
            if response.status_code not in (201, 422):  # 422: the order breaks a rule
                raise RuntimeError(f"naive: {response.status_code} {response.text[:200]}")
            done += 1
            if done % 50 == 0 or done == total:
                _bar("naive", done, total)

    limits = httpx.Limits(max_connections=NAIVE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=bench.base, headers=headers, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(invoice_one_by_one(client) for _ in range(NAIVE_CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return total / elapsed


# --- Orchestration ------------------------------------------------------------------------


async def _measure_size(bench: _Bench, size: int, workers_list: list[int], naive_sample: int) -> list[Result]:
    _say(f"size {size}: seeding {size * (1 + len(workers_list)) + min(size, naive_sample)} orders")
    ceiling_org = await organization_with_orders(bench.database, size)
    job_orgs = [await organization_with_orders(bench.database, size) for _ in workers_list]
    naive_org = await organization_with_orders(bench.database, min(size, naive_sample))
    ceiling = await _ceiling(bench, ceiling_org)
    _say(f"size {size}: ceiling {ceiling:,.0f} invoices/s")
    runs = []
    for workers, organization in zip(workers_list, job_orgs, strict=True):
        run = await _end_to_end(bench, organization, workers)
        _say(f"size {size}, {workers} worker(s): {run.per_s:,.0f} invoices/s end to end")
        runs.append(run)
    naive = await _naive(bench, naive_org)
    _say(f"size {size}: naive {naive:,.0f} orders/s")
    return [
        Result(
            size=size,
            workers=workers,
            ceiling_per_s=round(ceiling, 1),
            end_to_end_per_s=round(run.per_s, 1),
            naive_per_s=round(naive, 1),
            submit_ms=round(run.submit_ms, 1),
            first_event_ms=round(run.first_event_ms, 1),
            worker_peak_rss_mb=round(run.peak_rss_mb, 1),
        )
        for workers, run in zip(workers_list, runs, strict=True)
    ]


async def run_benchmark(
    settings: Settings, sizes: list[int], workers_list: list[int], naive_sample: int = 5000
) -> list[Result]:
    """Measure every size with every worker count; create and drop everything it uses."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    async with AsyncExitStack() as stack:
        env = await scratch_services(stack, settings, workdir)
        env["MAX_BATCH_SIZE"] = str(max(settings.max_batch_size, *sizes))
        database = await stack.enter_async_context(Database(env["MIGRATION_DATABASE_URL"], pool_size=4))
        await migrate(database)
        # The children's own settings: the runtime role and the SECRET_KEY scopes are sealed with.
        application = application_database(
            Settings.from_env(env), pool_size=1, application_name="invoicing bench ceiling"
        )
        await stack.enter_async_context(application)
        await pools.check_at_start(application, "bench")
        server, port = await start_server(stack, env, workdir)
        _say(f"  server pid {server.pid}, logs in {workdir}")
        base = f"http://127.0.0.1:{port}"
        bench = _Bench(database, application, base, env, workdir, settings.max_chunk_size)
        results = []
        for size in sizes:
            results += await _measure_size(bench, size, workers_list, naive_sample)
        return results


def render(results: list[Result]) -> str:
    columns = ("orders", "workers", "ceiling inv/s", "end to end inv/s", "naive orders/s", "e2e ÷ ceiling",
               "e2e ÷ naive", "submit ms", "first event ms", "worker peak RSS MB")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for r in results:
        cells = (f"{r.size:,}", r.workers, f"{r.ceiling_per_s:,.0f}", f"{r.end_to_end_per_s:,.0f}",
                 f"{r.naive_per_s:,.0f}", f"{r.end_to_end_per_s / r.ceiling_per_s:.0%}",
                 f"{r.end_to_end_per_s / r.naive_per_s:.1f}×", r.submit_ms, r.first_event_ms,
                 r.worker_peak_rss_mb)  # fmt: skip
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def run(
    settings: Settings, *, sizes: list[int], workers_list: list[int], naive_sample: int, as_json: bool
) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per naive request otherwise
    results = asyncio.run(run_benchmark(settings, sizes, workers_list, naive_sample))
    if as_json:
        print(json.dumps({"results": [asdict(r) for r in results]}))
    else:
        print(render(results))
    return 0
