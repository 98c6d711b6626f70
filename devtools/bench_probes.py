"""What the machine and PostgreSQL do while a benchmark's load runs.

CPU per process (this client, the server, the worker, the scratch database's backends, and
whatever else ran), this process's event loop lag (its own queueing would pass for the
server's latency), and, from ``pg_stat_activity``, the server's busy connections and those
waiting on an advisory lock. Sampled in the background and summed up per phase afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import psutil

from invoicing.infra.database import Database

SAMPLE_SECONDS = 0.1
#: A sample starts with its time.
_Sample = TypeVar("_Sample", bound=tuple[float, ...])
# The server's backends that are busy (in a statement or a transaction), and those waiting on an
# advisory lock: only a submit takes one (its organization's, for the active-job cap). The
# server's are the scratch database's client backends but this query's and the worker's ($1:
# the worker's local ports); the benchmark's other connections stay idle while it samples.
_ACTIVITY = """
SELECT count(*) FILTER (WHERE state <> 'idle'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND pid <> pg_backend_pid() AND NOT client_port = ANY($1::int[])
"""


@dataclass(frozen=True)
class ProbeFigures:
    """One phase's figures."""

    #: Shares of one core ("machine": of all cores). "other": whatever else ran meanwhile,
    #: other programs and PostgreSQL's background processes.
    cpu_percent: dict[str, float]
    client_loop_lag_max_ms: float
    server_connections_busy_max: int
    advisory_lock_waiters_max: int


@dataclass(frozen=True)
class _Cpu:
    """Cumulative CPU seconds at one instant."""

    processes: dict[str, float]
    #: By pid: backends come and go, so each one's time counts from its own start.
    postgres: dict[int, float]
    machine_busy: float
    machine_total: float


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with suppress(psutil.Error):
            total += sum(process.cpu_times()[:2])  # user and system
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) a process and its children have used so far."""
    return _cpu_seconds(_tree(pid))


def backend_cpu_seconds(database_name: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend of ``database_name``, by pid (backends
    come and go, so each one's time counts from its own start)."""
    found: dict[int, float] = {}
    # A backend's process title names its database: the scratch database's are the benchmark's.
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        cmdline, times = process.info["cmdline"], process.info["cpu_times"]
        if cmdline and times and f" {database_name} " in f" {' '.join(cmdline)} ":
            found[process.pid] = times.user + times.system
    return found


def machine_cpu_seconds() -> tuple[float, float]:
    """The whole machine's busy and total CPU seconds so far, over all its cores."""
    machine = psutil.cpu_times()
    idle = machine.idle + getattr(machine, "iowait", 0.0)
    # Linux counts guests' time in user and nice too.
    total = sum(machine) - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
    return total - idle, total


def _between(samples: list[_Sample], began: float, ended: float) -> list[_Sample]:
    return [sample for sample in samples if began <= sample[0] < ended]


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when ``stop`` is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


class Probes:
    """Samples while :meth:`sample` runs; :meth:`mark` starts a phase, :meth:`figures` sums one up."""

    def __init__(self, database: Database, database_url: str, server_pid: int, worker_pid: int) -> None:
        url = urlsplit(database_url)
        self.database = database
        self.database_name, self.database_port = url.path.lstrip("/"), url.port or 5432
        self.server_pid, self.worker_pid = server_pid, worker_pid
        self.marks: dict[str, tuple[float, _Cpu]] = {}
        self.lags: list[tuple[float, float]] = []  # (at, seconds late)
        self.activity: list[tuple[float, int, int]] = []  # (at, busy, advisory lock waiters)

    def mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), self._cpu())

    async def sample(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._sample_activity(stop), self._sample_lag(stop))

    def figures(self, start: str, end: str) -> ProbeFigures:
        (began, cpu_before), (ended, cpu_after) = self.marks[start], self.marks[end]
        activity = _between(self.activity, began, ended)
        return ProbeFigures(
            cpu_percent=_cpu_percent(cpu_before, cpu_after, ended - began),
            client_loop_lag_max_ms=round(
                max((lag for _, lag in _between(self.lags, began, ended)), default=0) * 1000, 1
            ),
            server_connections_busy_max=max((busy for _, busy, _ in activity), default=0),
            advisory_lock_waiters_max=max((waiting for _, _, waiting in activity), default=0),
        )

    def _cpu(self) -> _Cpu:
        busy, total = machine_cpu_seconds()
        processes = {
            "client": _cpu_seconds([psutil.Process()]),
            "server": tree_cpu_seconds(self.server_pid),
            "worker": tree_cpu_seconds(self.worker_pid),
        }
        postgres = backend_cpu_seconds(self.database_name)
        return _Cpu(processes, postgres, machine_busy=busy, machine_total=total)

    def _worker_ports(self) -> list[int]:
        """Local ports of the worker's TCP connections to PostgreSQL (none over a Unix socket,
        whose backends then count as the server's). Not the server's own: with a socket per
        client, listing them costs 20 ms."""
        ports = []
        for process in _tree(self.worker_pid):
            with suppress(psutil.Error):
                for connection in process.net_connections("tcp"):
                    if connection.raddr and connection.raddr.port == self.database_port:
                        ports.append(connection.laddr.port)
        return ports

    async def _sample_activity(self, stop: asyncio.Event) -> None:
        async with self.database.connection() as connection:
            for sample in itertools.count():
                if stop.is_set():
                    return
                if sample % 10 == 0:  # the worker's pool rarely changes
                    worker_ports = self._worker_ports()
                busy, waiting = await connection.fetchrow(_ACTIVITY, worker_ports)
                self.activity.append((time.perf_counter(), busy, waiting))
                await sleep_unless(stop, SAMPLE_SECONDS)

    async def _sample_lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(SAMPLE_SECONDS / 2)
            self.lags.append((before, time.perf_counter() - before - SAMPLE_SECONDS / 2))


# The scratch database's transactions that have taken the number counter (a chunk locks its
# row, then allocates; it holds the row until it ends) and, of those, the ones still waiting
# for the row (queued behind another transaction's: their lock, or their INSERT … ON
# CONFLICT, waits on that one).
_COUNTER_LOCKS = """
SELECT count(*) FILTER (WHERE NOT queued), count(*) FILTER (WHERE queued)
FROM (
    SELECT DISTINCT activity.pid,
           activity.wait_event_type = 'Lock'
           AND activity.query ~ '^\\s*(INSERT INTO|SELECT 1 FROM) invoice_number_counters' AS queued
    FROM pg_locks AS lock
    JOIN pg_stat_activity AS activity ON activity.pid = lock.pid
    WHERE lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND lock.relation = 'invoice_number_counters'::regclass
      AND lock.mode IN ('RowShareLock', 'RowExclusiveLock') AND lock.granted
) AS touching
"""

#: How often the counter probe looks: a chunk holds the row for tens of milliseconds.
COUNTER_SAMPLE_SECONDS = 0.005


@dataclass(frozen=True)
class CounterFigures:
    """How busy the invoice number counter was: the share of samples in which a transaction
    held its row, and the transactions queued for it, on average and at most."""

    held_share: float
    queued_average: float
    queued_max: int


class CounterProbe:
    """Samples the number counter's row lock while :meth:`sample` runs."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.samples: list[tuple[int, int]] = []  # (holding, queued)

    async def sample(self, stop: asyncio.Event) -> None:
        async with self.database.connection() as connection:
            while not stop.is_set():
                holding, queued = await connection.fetchrow(_COUNTER_LOCKS)
                self.samples.append((holding, queued))
                await sleep_unless(stop, COUNTER_SAMPLE_SECONDS)

    def figures(self) -> CounterFigures:
        count = max(1, len(self.samples))
        return CounterFigures(
            held_share=round(sum(holding > 0 for holding, _ in self.samples) / count, 3),
            queued_average=round(sum(queued for _, queued in self.samples) / count, 2),
            queued_max=max((queued for _, queued in self.samples), default=0),
        )


def _cpu_percent(before: _Cpu, after: _Cpu, seconds: float) -> dict[str, float]:
    used = {name: after.processes[name] - before.processes[name] for name in after.processes}
    used["postgres"] = sum(total - before.postgres.get(pid, 0.0) for pid, total in after.postgres.items())
    busy = after.machine_busy - before.machine_busy
    used["other"] = max(0.0, busy - sum(used.values()))
    machine = busy / max(1e-9, after.machine_total - before.machine_total)
    return {"machine": round(machine * 100, 1)} | {
        name: round(s / seconds * 100, 1) for name, s in used.items()
    }
