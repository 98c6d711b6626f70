"""``invoicing bench-fairness``: who waits for whom when jobs queue up, and what more workers do.

On a real server and real worker processes (children), a scratch database and a private
Redis, each measurement on fresh organizations and orders (seeded with COPY, 5 lines an
order, 2 % invalid), jobs submitted over HTTP with an admin's API token and followed through
the organization's job list (``GET /api/batch-jobs``), read every ``POLL_SECONDS``:

* **small job**: organization A submits ``--big-jobs`` jobs of ``--big-size`` orders, then
  organization B one of ``--small-size``; the seconds from B's submit returning to B's job
  seen finished, and to the last of A's, once for each count in ``--workers-list``;
* **urgent job**: with ``URGENT_WORKERS`` worker, A submits ``--big-jobs`` normal jobs, then
  one more of the same size with ``"priority": "urgent"``: did it finish before every earlier
  one? A server that refuses the field (400 ``unknown_field``) has no priorities: the earlier
  jobs are cancelled and the answer is null, with a note;
* **scaling**: one job of ``--scaling-size`` orders with each count in ``--scaling-workers``:
  invoices per second end to end (from the submit to the job seen finished), the CPU each
  worker process, the server and the scratch database's PostgreSQL backends used over that
  time, as a share of one core, the most worker slots seen on the job at once, and how busy
  the organization's invoice number counter was (the share of the time a transaction held its
  row, and how many waited for it).

The limits that would refuse the submits are raised: the point is the order of service.
Progress goes to stderr; tables, or one JSON document with ``--json``, to stdout. It measures;
it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx

from devtools.bench import BenchOrganization, organization_with_orders
from devtools.bench_load import CODE_ROOT, UNLIMITED
from devtools.bench_probes import (
    CounterProbe,
    backend_cpu_seconds,
    machine_cpu_seconds,
    tree_cpu_seconds,
)
from devtools.bench_websockets import _stop, scratch_services, start_server, start_workers
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings

#: How often a watched organization's job list is read.
POLL_SECONDS = 0.05
#: A job not finished after this is a broken run, not a figure.
MAX_WAIT_SECONDS = 3600
#: Worker processes during the urgent job's measurement: the fewest slots, the hardest case.
URGENT_WORKERS = 1
UNSUPPORTED = "priorities not supported by this server"
#: The largest ``MAX_BATCH_SIZE`` the settings accept.
MAX_SIZE = 1_000_000


@dataclass(frozen=True)
class FairnessOptions:
    big_jobs: int = 10
    big_size: int = 20_000
    small_size: int = 100
    workers_list: tuple[int, ...] = (1, 2)
    scaling_size: int = 200_000
    scaling_workers: tuple[int, ...] = (1, 2, 4)

    def problem(self) -> str | None:
        """What makes these options impossible to run, if anything."""
        if not 1 <= self.big_jobs <= 100:
            return "--big-jobs must be between 1 and 100"
        if not all(1 <= size <= MAX_SIZE for size in (self.big_size, self.small_size, self.scaling_size)):
            return f"--big-size, --small-size and --scaling-size must be between 1 and {MAX_SIZE}"
        counts = (*self.workers_list, *self.scaling_workers)
        if not self.workers_list or not self.scaling_workers or not all(1 <= n <= 32 for n in counts):
            return "--workers-list and --scaling-workers must list worker counts between 1 and 32"
        return None


@dataclass(frozen=True)
class SmallJob:
    workers: int
    #: From B's submit returning to B's job seen finished.
    seconds: float
    #: From the same moment to the last of A's jobs seen finished (negative: before B's submit).
    big_jobs_seconds: float


@dataclass(frozen=True)
class Urgent:
    #: Null when the server has no priorities.
    overtakes: bool | None
    note: str | None
    #: From the urgent submit returning to the urgent job seen finished.
    seconds: float | None
    #: How many of the earlier jobs finished (``completed_at``) before the urgent one.
    earlier_jobs_finished_first: int | None


@dataclass(frozen=True)
class Scaling:
    workers: int
    seconds: float
    invoices_per_second: float
    #: CPU seconds over the job's wall time: 1.0 is one core busy all along.
    busiest_worker_cpu_share: float
    worker_cpu_shares: list[float]
    server_cpu_share: float
    postgres_cpu_share: float
    #: The whole machine's busy share, all cores (1.0: every core busy all along).
    machine_busy_share: float
    #: Most worker slots seen on the job at once (``active_workers``).
    active_workers_max: int
    #: The organization's invoice number counter: the share of the time a transaction held
    #: its row (from a chunk's number allocation to its commit), and the transactions queued
    #: for it, on average and at most.
    counter_held_share: float
    counter_queued_average: float
    counter_queued_max: int


@dataclass(frozen=True)
class Report:
    options: dict[str, Any]
    scratch_database: str
    small_job_seconds: list[SmallJob]
    urgent_overtakes: bool | None
    urgent_note: str | None
    urgent_workers: int
    urgent_seconds: float | None
    earlier_jobs_finished_first: int | None
    scaling: list[Scaling]


@dataclass
class _Bench:
    """What every measurement needs: the owner's pool (seeding), the server, the children's settings."""

    database: Database
    client: httpx.AsyncClient
    env: dict[str, str]
    workdir: Path
    server_pid: int
    database_name: str
    runs: int = field(default=0)


@dataclass(frozen=True)
class _Cpu:
    """Cumulative CPU seconds at one instant."""

    workers: list[float]
    server: float
    postgres: dict[int, float]
    machine: tuple[float, float]  # busy, total


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _batches(order_ids: list[UUID], size: int) -> list[list[UUID]]:
    return [order_ids[start : start + size] for start in range(0, len(order_ids), size)]


# --- Jobs over HTTP -----------------------------------------------------------------------


async def _submit(
    client: httpx.AsyncClient, organization: BenchOrganization, order_ids: list[UUID], **fields: str
) -> httpx.Response:
    body = {"order_ids": [str(order_id) for order_id in order_ids], **fields}
    return await client.post("/api/batch-jobs", json=body, headers=_auth(organization.token))


def _job_id(response: httpx.Response) -> str:
    if not response.is_success:
        raise RuntimeError(f"a submit was refused: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


async def _submitted(
    client: httpx.AsyncClient, organization: BenchOrganization, order_ids: list[UUID]
) -> str:
    return _job_id(await _submit(client, organization, order_ids))


def _priority_refused(response: httpx.Response) -> bool:
    """A server without priorities refuses the field like any other it does not know."""
    if response.status_code != 400:
        return False
    return bool(response.json().get("error", {}).get("code") == "unknown_field")


async def _finish_times(
    client: httpx.AsyncClient, token: str, job_ids: Sequence[str], most_workers: list[int] | None = None
) -> dict[str, tuple[float, dict[str, Any]]]:
    """When each job was first seen finished (``time.time()``) and its JSON then, from the
    organization's job list read every ``POLL_SECONDS`` (a fresh organization: every job it
    has fits one page). ``most_workers[0]``, if given, keeps the most ``active_workers`` seen."""
    waiting, seen = set(job_ids), {}
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while waiting:
        response = await client.get("/api/batch-jobs", params={"limit": 500}, headers=_auth(token))
        now = time.time()
        for job in response.raise_for_status().json()["items"]:
            if most_workers is not None and job["id"] in waiting:
                most_workers[0] = max(most_workers[0], job.get("active_workers", 0))
            if job["id"] in waiting and job["finished"]:
                waiting.discard(job["id"])
                seen[job["id"]] = (now, job)
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} job(s) not finished after {MAX_WAIT_SECONDS} s")
        if waiting:
            await asyncio.sleep(POLL_SECONDS)
    return seen


def _completed(jobs: dict[str, tuple[float, dict[str, Any]]]) -> None:
    for _, job in jobs.values():
        if job["status"] != "completed":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['errors']}")


@asynccontextmanager
async def _workers(bench: _Bench, count: int) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Fresh worker processes for one measurement, stopped at its end whatever happens."""
    bench.runs += 1
    processes = await start_workers(bench.env, bench.workdir, count, f"worker-{bench.runs}")
    try:
        yield processes
    finally:
        _stop(processes)


# --- Measurements -------------------------------------------------------------------------


async def _small_job(bench: _Bench, options: FairnessOptions, workers: int) -> SmallJob:
    big_orders = options.big_jobs * options.big_size
    _say(f"small job, {workers} worker(s): seeding {big_orders + options.small_size:,} orders")
    big = await organization_with_orders(bench.database, big_orders)
    small = await organization_with_orders(bench.database, options.small_size)
    async with _workers(bench, workers), asyncio.TaskGroup() as group:
        big_batches = _batches(big.order_ids, options.big_size)
        big_ids = [await _submitted(bench.client, big, batch) for batch in big_batches]
        # Watched from now: with small sizes A's jobs may finish before B's submit.
        big_watch = group.create_task(_finish_times(bench.client, big.token, big_ids))
        small_id = await _submitted(bench.client, small, small.order_ids)
        submitted = time.time()
        small_watch = group.create_task(_finish_times(bench.client, small.token, [small_id]))
    big_done, small_done = big_watch.result(), small_watch.result()
    _completed(big_done | small_done)
    result = SmallJob(
        workers=workers,
        seconds=round(small_done[small_id][0] - submitted, 3),
        big_jobs_seconds=round(max(at for at, _ in big_done.values()) - submitted, 3),
    )
    _say(f"  B's job finished after {result.seconds} s, A's all after {result.big_jobs_seconds} s")
    return result


async def _cancel_all(bench: _Bench, organization: BenchOrganization, job_ids: list[str]) -> None:
    headers = _auth(organization.token)
    for job_id in job_ids:
        response = await bench.client.post(f"/api/batch-jobs/{job_id}/cancel", headers=headers)
        if response.status_code not in (200, 409):  # 409: it had finished already
            raise RuntimeError(f"cancel refused: {response.status_code} {response.text[:300]}")
    await _finish_times(bench.client, organization.token, job_ids)


async def _urgent(bench: _Bench, options: FairnessOptions) -> Urgent:
    orders = (options.big_jobs + 1) * options.big_size
    _say(f"urgent job after {options.big_jobs} normal ones: seeding {orders:,} orders")
    organization = await organization_with_orders(bench.database, orders)
    *normal_batches, urgent_batch = _batches(organization.order_ids, options.big_size)
    async with _workers(bench, URGENT_WORKERS):
        normal = [await _submitted(bench.client, organization, batch) for batch in normal_batches]
        response = await _submit(bench.client, organization, urgent_batch, priority="urgent")
        submitted = time.time()
        if _priority_refused(response):
            _say(f"  {UNSUPPORTED}: the normal jobs are cancelled")
            await _cancel_all(bench, organization, normal)
            return Urgent(None, UNSUPPORTED, None, None)
        urgent_id = _job_id(response)
        done = await _finish_times(bench.client, organization.token, [*normal, urgent_id])
    _completed(done)
    finished = {job_id: datetime.fromisoformat(job["completed_at"]) for job_id, (_, job) in done.items()}
    first = sum(finished[job_id] < finished[urgent_id] for job_id in normal)
    seconds = round(done[urgent_id][0] - submitted, 3)
    _say(f"  the urgent job finished after {seconds} s, {first} earlier job(s) before it")
    return Urgent(first == 0, None, seconds, first)


def _cpu(bench: _Bench, workers: list[subprocess.Popen[bytes]]) -> _Cpu:
    return _Cpu(
        workers=[tree_cpu_seconds(process.pid) for process in workers],
        server=tree_cpu_seconds(bench.server_pid),
        postgres=backend_cpu_seconds(bench.database_name),
        machine=machine_cpu_seconds(),
    )


async def _scaling(bench: _Bench, options: FairnessOptions, workers: int) -> Scaling:
    _say(f"scaling, {workers} worker(s): seeding {options.scaling_size:,} orders")
    organization = await organization_with_orders(bench.database, options.scaling_size)
    counter, stop, seen_workers = CounterProbe(bench.database), asyncio.Event(), [0]
    async with _workers(bench, workers) as processes, asyncio.TaskGroup() as group:
        before, requested = _cpu(bench, processes), time.time()
        group.create_task(counter.sample(stop))
        job_id = await _submitted(bench.client, organization, organization.order_ids)
        done = await _finish_times(bench.client, organization.token, [job_id], seen_workers)
        after = _cpu(bench, processes)
        stop.set()
    _completed(done)
    finished_at, job = done[job_id]
    wall = finished_at - requested
    shares = [round((a - b) / wall, 3) for a, b in zip(after.workers, before.workers, strict=True)]
    postgres = sum(seconds - before.postgres.get(pid, 0.0) for pid, seconds in after.postgres.items())
    (busy_after, total_after), (busy_before, total_before) = after.machine, before.machine
    result = Scaling(
        workers=workers,
        seconds=round(wall, 3),
        invoices_per_second=round(job["successful_items"] / wall, 1),
        busiest_worker_cpu_share=max(shares),
        worker_cpu_shares=shares,
        server_cpu_share=round((after.server - before.server) / wall, 3),
        postgres_cpu_share=round(postgres / wall, 3),
        machine_busy_share=round((busy_after - busy_before) / max(1e-9, total_after - total_before), 3),
        active_workers_max=seen_workers[0],
        counter_held_share=counter.figures().held_share,
        counter_queued_average=counter.figures().queued_average,
        counter_queued_max=counter.figures().queued_max,
    )
    busiest = result.busiest_worker_cpu_share
    _say(
        f"  {result.invoices_per_second:,.0f} invoices/s, up to {result.active_workers_max} slots on the"
        f" job, the busiest worker {busiest:.0%} of a core, the number counter held"
        f" {result.counter_held_share:.0%} of the time"
    )
    return result


# --- Run ----------------------------------------------------------------------------------


async def run_benchmark(settings: Settings, options: FairnessOptions) -> Report:
    """Seed, start the server, measure each case with fresh workers; create and drop everything."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    async with AsyncExitStack() as stack:
        env = await scratch_services(stack, settings, workdir)
        env["JOB_CREATE_PER_MINUTE"] = env["MAX_ACTIVE_JOBS_PER_ORG"] = UNLIMITED
        sizes = (settings.max_batch_size, options.big_size, options.small_size, options.scaling_size)
        env["MAX_BATCH_SIZE"] = str(max(sizes))
        # The children run the code this command runs (a work tree's, not another installed copy).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(CODE_ROOT), env.get("PYTHONPATH"))))
        owner_url = env["MIGRATION_DATABASE_URL"]
        database = await stack.enter_async_context(Database(owner_url, pool_size=2))
        server, port = await start_server(stack, env, workdir)
        _say(f"  server pid {server.pid}, logs in {workdir}")
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120)
        )
        name = urlsplit(owner_url).path.lstrip("/")
        bench = _Bench(database, client, env, workdir, server.pid, name)
        small = [await _small_job(bench, options, workers) for workers in options.workers_list]
        urgent = await _urgent(bench, options)
        scaling = [await _scaling(bench, options, workers) for workers in options.scaling_workers]
    return Report(
        asdict(options), name, small, urgent.overtakes, urgent.note, URGENT_WORKERS, urgent.seconds,
        urgent.earlier_jobs_finished_first, scaling,
    )  # fmt: skip


def _table(columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def _urgent_outcome(report: Report) -> str:
    if report.urgent_overtakes is None:
        return f"unknown ({report.urgent_note})"
    return (
        f"{'yes' if report.urgent_overtakes else 'no'}, after {report.urgent_seconds} s "
        f"({report.earlier_jobs_finished_first} earlier job(s) finished before it)"
    )


def render(report: Report) -> str:
    """Three measurements: the small job, the urgent job, scaling."""
    options = report.options
    small = (
        f"Organization B's job of {options['small_size']:,} orders, submitted after organization A's "
        f"{options['big_jobs']} jobs of {options['big_size']:,}"
    )
    small_rows = [(r.workers, r.seconds, r.big_jobs_seconds) for r in report.small_job_seconds]
    urgent = (
        f"A's urgent job after its {options['big_jobs']} normal ones, {report.urgent_workers} worker: "
        f"finished first: {_urgent_outcome(report)}"
    )
    scaling_rows = [
        (s.workers, f"{s.invoices_per_second:,.0f}", s.seconds, f"{s.busiest_worker_cpu_share:.0%}",
         " ".join(f"{share:.0%}" for share in s.worker_cpu_shares), f"{s.server_cpu_share:.0%}",
         f"{s.postgres_cpu_share:.0%}", f"{s.machine_busy_share:.0%}", s.active_workers_max,
         f"{s.counter_held_share:.0%}", s.counter_queued_average)
        for s in report.scaling
    ]  # fmt: skip
    scaling_columns = ("workers", "invoices/s", "seconds", "busiest worker CPU", "each worker's CPU",
                       "server CPU", "PostgreSQL CPU", "machine busy", "slots on the job",
                       "counter held", "queued for it")  # fmt: skip
    return "\n\n".join(
        [
            small,
            _table(("workers", "B's job finished after s", "A's jobs all finished after s"), small_rows),
            urgent,
            f"One job of {options['scaling_size']:,} orders (CPU: share of one core; machine: of all cores)",
            _table(scaling_columns, scaling_rows),
        ]
    )


def run(settings: Settings, options: FairnessOptions, *, as_json: bool) -> int:
    problem = options.problem()
    if problem:
        print(f"invoicing bench-fairness: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    report = asyncio.run(run_benchmark(settings, options))
    print(json.dumps(asdict(report)) if as_json else render(report))
    return 0
