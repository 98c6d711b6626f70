"""``invoicing bench-load``: how fast reads are answered while many clients submit large batches.

On a real server and worker (child processes), a scratch database and a private Redis, with
the product's pool size unless ``DB_POOL_SIZE`` says otherwise, readers poll on their own
staggered cadence (``--poll-interval``): finished jobs of the submitting organization
(``GET /api/batch-jobs/{id}`` without ``If-None-Match``, so each poll is a full read), the job
and order lists, and a second organization's job. Three phases, by the time a read starts: a
baseline of reads alone, the burst (``--batches`` submits of ``--batch-size`` random order ids,
``--submitters`` at once, each with its own token of the same organization, so they queue on
its advisory lock), and the seconds after it, while the worker runs the jobs. Per phase: read
latency and answers by kind of read, and what ``devtools.bench_probes`` saw.

The limits that would refuse the submits are raised for the server: the point is the
contention, not the limits. Progress goes to stderr; tables, or one JSON document with
``--json``, to stdout. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import httpx

from devtools.bench_probes import ProbeFigures, Probes, sleep_unless
from devtools.bench_websockets import _percentile, _spawn, _stop, scratch_services, start_server
from devtools.seed import seed
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.kernel.settings import Settings

#: What the pollers read: small jobs made, and finished, before the clock starts.
WATCHED_JOBS = 10
WATCHED_JOB_ORDERS = 20
OTHER_ORGANIZATION_ORDERS = 200
#: The highest value the settings accept: no submit of the burst is refused by a limit.
UNLIMITED = "1000000"
LIST_READS = (("jobs list", "/api/batch-jobs?limit=20"), ("orders list", "/api/sales-orders?limit=50"))
#: The seeded admin and member have at most 50 active tokens each, one of them the seed's.
MAX_SUBMITTERS = 98
CODE_ROOT = Path(__file__).resolve().parents[1]
_READ_COLUMNS = ("phase", "reads", "count", "p50 ms", "p99 ms", "max ms", "answers")
_SUBMIT_COLUMNS = ("submits", "p50 ms", "p99 ms", "max ms", "answers")
_PROBE_COLUMNS = ("client loop lag max ms", "server connections busy max", "advisory lock waiters max")


@dataclass(frozen=True)
class LoadOptions:
    pollers: int = 200
    list_readers: int = 20
    other_pollers: int = 20
    submitters: int = 30
    batches: int = 60
    batch_size: int = 4000
    orders: int = 20_000
    poll_interval: float = 2.0
    baseline_seconds: float = 6.0
    after_seconds: float = 6.0
    processes: int = 1

    def problem(self) -> str | None:
        """Why these options cannot run, or None."""
        readers = (self.pollers, self.list_readers, self.other_pollers)
        if min(readers) < 0 or sum(readers) < 1:
            return "reader counts must not be negative, and at least one reader is needed"
        if not 1 <= self.submitters <= MAX_SUBMITTERS:
            return f"--submitters must be between 1 and {MAX_SUBMITTERS}"
        if self.batches < 1 or not 1 <= self.batch_size <= self.orders:
            return "--batches must be positive and --batch-size between 1 and --orders"
        if min(self.poll_interval, self.baseline_seconds, self.after_seconds) <= 0 or self.processes < 1:
            return "--poll-interval, the phase lengths and --processes must be positive"
        return None


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: Answers by status (with the error code when not 2xx), client errors by exception name.
    outcomes: dict[str, int]


@dataclass(frozen=True)
class Phase:
    phase: str
    seconds: float
    #: "all" reads, then each kind of read.
    reads: dict[str, Latency]
    probes: ProbeFigures


@dataclass(frozen=True)
class Report:
    options: dict[str, Any]
    db_pool_size: int
    scratch_database: str
    #: From the first submit sent to the last one answered.
    burst_seconds: float
    submits: Latency
    phases: list[Phase]


class _Reader(NamedTuple):
    kind: str
    path: str
    token: str


class _Request(NamedTuple):
    kind: str
    started: float
    seconds: float
    outcome: str


@dataclass(frozen=True)
class _Organization:
    tokens: list[str]  # its admin's and its member's
    order_ids: list[str]


@dataclass(frozen=True)
class _Load:
    base_url: str
    readers: list[_Reader]
    #: The submitters' tokens, and the bodies they send in turn.
    tokens: list[str]
    bodies: list[bytes]


@dataclass
class _Recorder:
    """Every request, stamped with ``time.perf_counter()``: split into phases at the end."""

    requests: list[_Request] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- Load ---------------------------------------------------------------------------------


def _outcome(response: httpx.Response) -> str:
    if response.is_success:
        return str(response.status_code)
    try:
        return f"{response.status_code} {response.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(response.status_code)


def _client(base_url: str, token: str) -> httpx.AsyncClient:
    """One client, one connection: httpx scans every connection of its pool on each request
    (system calls each), so one pool for hundreds of clients kept this process's event loop busy
    for seconds and its own queueing passed for the server's latency. ``verify=False``: plain
    HTTP to 127.0.0.1, and loading the certificate store costs ~30 ms per client."""
    limits = httpx.Limits(max_connections=1)
    return httpx.AsyncClient(
        base_url=base_url, headers=_auth(token), limits=limits, timeout=120, verify=False
    )


async def _timed(client: httpx.AsyncClient, recorder: _Recorder, kind: str, request: httpx.Request) -> None:
    started = time.perf_counter()
    try:
        outcome = _outcome(await client.send(request))
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    recorder.requests.append(_Request(kind, started, time.perf_counter() - started, outcome))


async def _read(base_url: str, recorder: _Recorder, reader: _Reader, offset: float, interval: float) -> None:
    await sleep_unless(recorder.stop, offset)
    due = time.perf_counter()
    async with _client(base_url, reader.token) as client:
        while not recorder.stop.is_set():
            await _timed(client, recorder, reader.kind, client.build_request("GET", reader.path))
            # A fixed cadence: a slow answer delays the next poll, never adds one.
            due = max(due + interval, time.perf_counter())
            await sleep_unless(recorder.stop, due - time.perf_counter())


async def _burst(base_url: str, recorder: _Recorder, tokens: list[str], bodies: list[bytes]) -> None:
    pending = iter(bodies)  # shared: each submitter takes the next batch once it is free

    async def submit(token: str) -> None:
        headers = {"Content-Type": "application/json"}
        async with _client(base_url, token) as client:
            for body in pending:
                request = client.build_request("POST", "/api/batch-jobs", headers=headers, content=body)
                await _timed(client, recorder, "submit", request)

    await asyncio.gather(*(submit(token) for token in tokens))


# --- Set-up -------------------------------------------------------------------------------


async def _organization(database: Database, orders: int) -> _Organization:
    created = (await seed(database, organizations=1, orders=orders, invalid_ratio=0.0))["organizations"][0]
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT id FROM sales_orders WHERE organization_id = $1 ORDER BY number", UUID(created["id"])
        )
    return _Organization([user["token"] for user in created["users"]], [str(row["id"]) for row in rows])


async def _finished_jobs(client: httpx.AsyncClient, organization: _Organization, count: int) -> list[str]:
    """``count`` small jobs of the organization, once the worker has finished them all."""
    headers, ids = _auth(organization.tokens[0]), []
    for start in range(0, count * WATCHED_JOB_ORDERS, WATCHED_JOB_ORDERS):
        body = {"order_ids": organization.order_ids[start : start + WATCHED_JOB_ORDERS]}
        response = await client.post("/api/batch-jobs", json=body, headers=headers)
        ids.append(response.raise_for_status().json()["id"])
    deadline = time.monotonic() + 120
    for path in (f"/api/batch-jobs/{job_id}" for job_id in ids):
        while (await client.get(path, headers=headers)).json()["status"] in {"pending", "processing"}:
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not finish the jobs the pollers read")
            await asyncio.sleep(0.1)
    return ids


async def _submit_tokens(client: httpx.AsyncClient, organization: _Organization, count: int) -> list[str]:
    """A token per submitter, of the organization's two users in turn."""
    tokens = []
    for index in range(count):
        headers = _auth(organization.tokens[index % 2])
        response = await client.post("/api/tokens", json={"name": f"bench-load {index}"}, headers=headers)
        tokens.append(response.raise_for_status().json()["token"])
    return tokens


def _readers(options: LoadOptions, main: _Organization, main_jobs: list[str], other: _Organization,
             other_jobs: list[str]) -> list[_Reader]:  # fmt: skip
    """Every reader, shuffled so that each kind is spread over the cadence."""
    readers = [
        _Reader("job", f"/api/batch-jobs/{main_jobs[index % len(main_jobs)]}", main.tokens[index % 2])
        for index in range(options.pollers)
    ]
    readers += [
        _Reader(*LIST_READS[index % 2], main.tokens[index % 2]) for index in range(options.list_readers)
    ]
    readers += [
        _Reader("other org job", f"/api/batch-jobs/{other_jobs[index % len(other_jobs)]}", other.tokens[0])
        for index in range(options.other_pollers)
    ]
    random.Random(0).shuffle(readers)
    return readers


def _bodies(order_ids: list[str], options: LoadOptions) -> list[bytes]:
    """Every submit's body, encoded before the clock starts. Random subsets overlap: the worker
    then fails a later job's items with ``already_invoiced``, as in real use."""
    rng = random.Random(1)
    return [
        json.dumps({"order_ids": rng.sample(order_ids, options.batch_size)}).encode()
        for _ in range(options.batches)
    ]


# --- Run ----------------------------------------------------------------------------------


async def _start(
    stack: AsyncExitStack, settings: Settings, options: LoadOptions, workdir: Path
) -> tuple[Probes, str]:
    """The children and the probes watching them; returns the probes and the server's URL."""
    env = await scratch_services(stack, settings, workdir)
    env["JOB_CREATE_PER_MINUTE"] = env["MAX_ACTIVE_JOBS_PER_ORG"] = UNLIMITED
    env["MAX_BATCH_SIZE"] = str(max(settings.max_batch_size, options.batch_size))
    # The children run the code this command runs (a work tree's, not another installed copy).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(CODE_ROOT), env.get("PYTHONPATH"))))
    database = await stack.enter_async_context(Database(env["MIGRATION_DATABASE_URL"], pool_size=3))
    await migrate(database)
    worker = _spawn(["worker"], env, workdir / "worker.log")
    stack.callback(_stop, [worker])
    server, port = await start_server(stack, env, workdir, options.processes)
    _say(f"  server pid {server.pid}, worker pid {worker.pid}, logs in {workdir}")
    return Probes(database, env["MIGRATION_DATABASE_URL"], server.pid, worker.pid), f"http://127.0.0.1:{port}"


async def _measure(probes: Probes, options: LoadOptions, load: _Load) -> _Recorder:
    recorder, interval = _Recorder(), options.poll_interval
    tasks = [
        asyncio.create_task(
            _read(load.base_url, recorder, reader, index * interval / len(load.readers), interval)
        )
        for index, reader in enumerate(load.readers)
    ]
    tasks.append(asyncio.create_task(probes.sample(recorder.stop)))
    await asyncio.sleep(interval)  # warm-up: every reader has opened its connection
    # What exists now lives to the end: kept out of the collector's full passes, which paused
    # this event loop ~50 ms each over hundreds of clients (and delayed the answers' reading).
    gc.collect()
    gc.freeze()
    probes.mark("baseline")
    _say(f"baseline: {len(load.readers)} readers, {options.baseline_seconds:g} s")
    await asyncio.sleep(options.baseline_seconds)
    probes.mark("burst")
    _say(f"burst: {options.batches} submits of {options.batch_size:,} ids, {options.submitters} at once")
    await _burst(load.base_url, recorder, load.tokens, load.bodies)
    probes.mark("after")
    _say(f"after: {options.after_seconds:g} s")
    await asyncio.sleep(options.after_seconds)
    probes.mark("end")
    recorder.stop.set()
    await asyncio.gather(*tasks)
    return recorder


async def run_benchmark(settings: Settings, options: LoadOptions) -> Report:
    """Seed, start the children, measure the three phases; create and drop everything it uses."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    async with AsyncExitStack() as stack:
        probes, base_url = await _start(stack, settings, options, workdir)
        _say(f"seeding {options.orders:,} + {OTHER_ORGANIZATION_ORDERS} orders")
        main = await _organization(probes.database, options.orders)
        other = await _organization(probes.database, OTHER_ORGANIZATION_ORDERS)
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=120))
        main_jobs = await _finished_jobs(client, main, WATCHED_JOBS)
        readers = _readers(options, main, main_jobs, other, await _finished_jobs(client, other, 2))
        tokens = await _submit_tokens(client, main, options.submitters)
        load = _Load(base_url, readers, tokens, _bodies(main.order_ids, options))
        recorder = await _measure(probes, options, load)
    return _report(recorder, probes, options, settings.db_pool_size)


# --- Report -------------------------------------------------------------------------------


def _latency(requests: list[_Request]) -> Latency:
    if not requests:
        return Latency(0, 0.0, 0.0, 0.0, {})
    ms = [request.seconds * 1000 for request in requests]
    outcomes = dict(sorted(Counter(request.outcome for request in requests).items()))
    p50, p99 = statistics.median(ms), _percentile(ms, 0.99)
    return Latency(len(ms), round(p50, 1), round(p99, 1), round(max(ms), 1), outcomes)


def _phase(recorder: _Recorder, probes: Probes, name: str, following: str) -> Phase:
    began, ended = probes.marks[name][0], probes.marks[following][0]
    reads = [r for r in recorder.requests if r.kind != "submit" and began <= r.started < ended]
    by_kind = {
        kind: _latency([r for r in reads if r.kind == kind]) for kind in sorted({r.kind for r in reads})
    }
    return Phase(
        name, round(ended - began, 2), {"all": _latency(reads)} | by_kind, probes.figures(name, following)
    )


def _report(recorder: _Recorder, probes: Probes, options: LoadOptions, db_pool_size: int) -> Report:
    phases = [
        _phase(recorder, probes, *pair) for pair in itertools.pairwise(("baseline", "burst", "after", "end"))
    ]
    submits = [r for r in recorder.requests if r.kind == "submit"]
    burst = max(r.started + r.seconds for r in submits) - min(r.started for r in submits)
    return Report(
        asdict(options), db_pool_size, probes.database_name, round(burst, 2), _latency(submits), phases
    )


def _table(columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _row(latency: Latency) -> tuple[object, ...]:
    answers = ", ".join(f"{outcome}: {count:,}" for outcome, count in latency.outcomes.items())
    return (f"{latency.count:,}", latency.p50_ms, latency.p99_ms, latency.max_ms, answers)


def render(report: Report) -> str:
    """Three tables: reads by phase and kind, the submits, and the probes by phase."""
    options = report.options
    head = (
        f"{options['batches']} submits of {options['batch_size']:,} ids, {options['submitters']} at once,"
        f" in {report.burst_seconds} s; server: {options['processes']} process(es),"
        f" DB_POOL_SIZE {report.db_pool_size}"
    )
    reads = [(p.phase, kind, *_row(latency)) for p in report.phases for kind, latency in p.reads.items()]
    probes = [
        (p.phase, p.seconds, *p.probes.cpu_percent.values(), p.probes.client_loop_lag_max_ms,
         p.probes.server_connections_busy_max, p.probes.advisory_lock_waiters_max)
        for p in report.phases
    ]  # fmt: skip
    cpu = tuple(f"{name} CPU %" for name in report.phases[0].probes.cpu_percent)
    tables = (
        _table(_READ_COLUMNS, reads),
        _table(_SUBMIT_COLUMNS, [_row(report.submits)]),
        _table(("phase", "seconds", *cpu, *_PROBE_COLUMNS), probes),
    )
    return "\n\n".join([head, *("\n".join(table) for table in tables)])


def run(settings: Settings, options: LoadOptions, *, as_json: bool) -> int:
    problem = options.problem()
    if problem:
        print(f"invoicing bench-load: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    report = asyncio.run(run_benchmark(settings, options))
    print(json.dumps(asdict(report)) if as_json else render(report))
    return 0
