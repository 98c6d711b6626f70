"""``invoicing bench-websockets``: how fast progress reaches watchers, and what a socket costs.

On a real server and worker (child processes), against a scratch database and a private
Redis, for each number of WebSocket clients: connect them all to the organization socket,
measure the server's memory per idle socket, run a job, and measure, for every event each
client receives, the delay from the worker's publish (the event's ``published_at``) to its
receipt. Prints a table, or one JSON document with ``--json``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

from devtools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, port_answers
from devtools.seed import seed
from invoicing.infra.database import Database, with_database_name
from invoicing.infra.migrations import migrate
from invoicing.infra.roles import RUNTIME_ROLE, ensure_runtime_role, with_login
from invoicing.infra.scopes import seal_scopes
from invoicing.kernel.settings import Settings


@dataclass(frozen=True)
class Round:
    clients: int
    events_received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    kb_per_idle_socket: float
    #: Median, over events, of the time between the first and the last client receiving it.
    fanout_spread_ms: float
    #: Median, over events, of the delay until the first client received it.
    first_receipt_ms: float


@dataclass
class Watchers:
    """Shared state of one round's clients."""

    expected: int
    connected: int = 0

    def __post_init__(self) -> None:
        self.all_connected = asyncio.Event()
        self.job_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.delays: list[float] = []
        #: Receipt times of each event (keyed by its publish time): their spread is the fan-out.
        self.arrivals: dict[float, list[float]] = {}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _LightClient(asyncio.Protocol):
    """A minimal WebSocket client that timestamps frames as the bytes arrive.

    A full client library spends more CPU per message than the server does, and at 1,000
    sockets on one machine its own queueing would be measured instead of the server's
    delivery. Server frames are unmasked, so reading them is a few slices.
    """

    def __init__(self, watchers: Watchers, request: bytes) -> None:
        self.watchers = watchers
        self.request = request
        self.buffer = b""
        self.handshake_done = False
        self.snapshot_seen = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.buffer += data
        if not self.handshake_done:
            head, separator, rest = self.buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.finished.set_exception(RuntimeError(head[:200].decode(errors="replace")))
                return
            self.handshake_done, self.buffer = True, rest
        while (frame := self._next_frame()) is not None:
            self._on_message(frame, received)

    def _next_frame(self) -> bytes | None:
        if len(self.buffer) < 2:
            return None
        length, offset = self.buffer[1] & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
        if len(self.buffer) < offset + length:
            return None
        frame, self.buffer = self.buffer[offset : offset + length], self.buffer[offset + length :]
        return frame

    def _on_message(self, message: bytes, received: float) -> None:
        if not self.snapshot_seen:
            self.snapshot_seen = True
            self.watchers.connected += 1
            if self.watchers.connected == self.watchers.expected:
                self.watchers.all_connected.set()
            return
        if not self.watchers.job_id.done() or b'"published_at":' not in message:
            return
        if self.watchers.job_id.result().encode() not in message:
            return
        published = float(message.split(b'"published_at":', 1)[1].split(b",", 1)[0].rstrip(b"}"))
        self.watchers.delays.append(received - published)
        self.watchers.arrivals.setdefault(published, []).append(received)
        if message.startswith(b'{"type":"finished"') and not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc or ConnectionError("closed before the job finished"))


def handshake_request(path: str, host: str, port: int, token: str) -> bytes:
    """The HTTP request that opens a WebSocket on ``path``, authenticated with ``token``."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def _watch(host: str, port: int, token: str, watchers: Watchers) -> None:
    request = handshake_request("/ws/batch-jobs", host, port, token)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: _LightClient(watchers, request), host, port)
    try:
        await client.finished
    finally:
        transport.close()


def _rss(pid: int) -> int:
    """Resident memory of the server: the process and, with several processes, its children."""
    root = psutil.Process(pid)
    return sum(int(p.memory_info().rss) for p in (root, *root.children(recursive=True)))


async def _settled_rss(pid: int) -> int:
    """Resident memory once it stops moving (the allocator settles after a burst)."""
    previous, current = -1, _rss(pid)
    for _ in range(20):
        if abs(current - previous) < 64 * 1024:
            break
        await asyncio.sleep(0.25)
        previous, current = current, _rss(pid)
    return current


async def _round(base: str, token: str, server_pid: int, order_ids: list[str], clients: int) -> Round:
    headers = {"Authorization": f"Bearer {token}"}
    before = await _settled_rss(server_pid)
    watchers = Watchers(expected=clients)
    host, port = base.removeprefix("http://").split(":")
    tasks = []
    for _ in range(clients):
        tasks.append(asyncio.create_task(_watch(host, int(port), token, watchers)))
        await asyncio.sleep(0.001)  # spread the handshakes a little
    await asyncio.wait_for(watchers.all_connected.wait(), timeout=120)
    idle = await _settled_rss(server_pid)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        response = await client.post("/api/batch-jobs", json={"order_ids": order_ids})
        response.raise_for_status()
    watchers.job_id.set_result(response.json()["id"])
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    delays = [delay * 1000 for delay in watchers.delays]
    spreads = [(max(times) - min(times)) * 1000 for times in watchers.arrivals.values()]
    firsts = [(min(times) - published) * 1000 for published, times in watchers.arrivals.items()]
    return Round(
        fanout_spread_ms=round(statistics.median(spreads), 1),
        first_receipt_ms=round(statistics.median(firsts), 1),
        clients=clients,
        events_received=len(delays),
        p50_ms=round(statistics.median(delays), 1),
        p99_ms=round(_percentile(delays, 0.99), 1),
        max_ms=round(max(delays), 1),
        kb_per_idle_socket=round(max(0, idle - before) / clients / 1024, 1),
    )


async def _prepare(database_url: str, orders: int) -> tuple[str, list[str]]:
    async with Database(database_url, pool_size=2) as database:
        await migrate(database)
        demo = await seed(database, organizations=1, orders=orders, invalid_ratio=0.0)
        async with database.connection() as connection:
            rows = await connection.fetch("SELECT id FROM sales_orders ORDER BY number")
    token = demo["organizations"][0]["users"][0]["token"]
    return token, [str(row["id"]) for row in rows]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


async def _scratch_database(stack: AsyncExitStack, settings: Settings, workdir: Path) -> str:
    """A database of the benchmark's own on the configured server (or an embedded one)."""
    if settings.database_url:
        admin_url = settings.require_owner_database()
    else:
        postgres = EmbeddedPostgres(workdir / "postgres")
        stack.callback(postgres.stop)
        admin_url = postgres.url("postgres")
    name = f"bench_ws_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    stack.push_async_callback(drop)
    return with_database_name(admin_url, name)


async def scratch_services(stack: AsyncExitStack, settings: Settings, workdir: Path) -> dict[str, str]:
    """A scratch database and a private Redis, dropped and stopped with ``stack``; returns the
    environment for the child processes that use them."""
    owner_url = await _scratch_database(stack, settings, workdir)
    # Migrated here, as the owner; the server and workers log in as the runtime role.
    runtime_url = with_login(owner_url, RUNTIME_ROLE)
    secret_key = secrets.token_urlsafe(24)
    async with Database(owner_url, pool_size=2) as database:
        await migrate(database)
        await ensure_runtime_role(database, runtime_url)
        await seal_scopes(database, secret_key)
    redis = EmbeddedRedis(workdir / "redis").start()
    stack.callback(redis.stop)
    log_level = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    env = {
        **os.environ,
        "DATABASE_URL": runtime_url,
        "MIGRATION_DATABASE_URL": owner_url,
        "REDIS_URL": redis.url,
        "LOG_LEVEL": log_level,
    }
    env["SECRET_KEY"] = secret_key
    return env


async def start_server(
    stack: AsyncExitStack, env: dict[str, str], workdir: Path, processes: int = 1
) -> tuple[subprocess.Popen[bytes], int]:
    """An ``invoicing server`` child process on a free port, once it answers."""
    port = free_port()
    server = _spawn(
        ["server", "--port", str(port), "--processes", str(processes)], env, workdir / "server.log"
    )
    stack.callback(_stop, [server])
    deadline = time.monotonic() + 60
    while not port_answers("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start; see {workdir / 'server.log'}")
        await asyncio.sleep(0.1)
    return server, port


def _worker_ready(log: Path) -> bool:
    # arq logs the Redis server's details once its connection is up, just before polling.
    return log.exists() and "redis_version=" in log.read_text(errors="replace")


async def start_workers(
    env: dict[str, str], workdir: Path, count: int, name: str = "worker"
) -> list[subprocess.Popen[bytes]]:
    """``count`` ``invoicing worker`` child processes, once each polls the queue; the caller
    stops them (``_stop``). Their logs are ``{name}-{index}.log`` in ``workdir``."""
    logs = [workdir / f"{name}-{index}.log" for index in range(count)]
    processes = [_spawn(["worker"], {**env, "LOG_LEVEL": "INFO"}, log) for log in logs]
    deadline = time.monotonic() + 60
    while not all(_worker_ready(log) for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            _stop(processes)
            raise SystemExit(f"a worker did not start; see {logs}")
        await asyncio.sleep(0.05)
    return processes


async def run_benchmark(
    settings: Settings, client_counts: list[int], orders_per_round: int, processes: int
) -> list[Round]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    async with AsyncExitStack() as stack:
        env = await scratch_services(stack, settings, workdir)
        # Every client is one user: the socket caps would refuse all but the first few.
        most = str(max(client_counts))
        env.update(WS_MAX_SOCKETS_PER_USER=most, WS_MAX_SOCKETS_PER_ORG=most)
        token, order_ids = await _prepare(
            env["MIGRATION_DATABASE_URL"], orders_per_round * len(client_counts)
        )
        worker = _spawn(["worker"], env, workdir / "worker.log")
        stack.callback(_stop, [worker])
        server, port = await start_server(stack, env, workdir, processes)
        print(f"  server pid {server.pid}, worker pid {worker.pid}, logs in {workdir}", file=sys.stderr)
        rounds = []
        for index, clients in enumerate(client_counts):
            batch = order_ids[index * orders_per_round : (index + 1) * orders_per_round]
            rounds.append(await _round(f"http://127.0.0.1:{port}", token, server.pid, batch, clients))
            print(f"  {clients} clients done", file=sys.stderr, flush=True)
        return rounds


def render(rounds: list[Round]) -> str:
    columns = ("clients", "events received", "p50 ms", "p99 ms", "max ms", "KB per idle socket",
               "first receipt ms", "fan-out spread ms")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for r in rounds:
        cells = (r.clients, r.events_received, r.p50_ms, r.p99_ms, r.max_ms, r.kb_per_idle_socket,
                 r.first_receipt_ms, r.fanout_spread_ms)  # fmt: skip
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def run(settings: Settings, *, clients: list[int], orders: int, processes: int, as_json: bool) -> int:
    rounds = asyncio.run(run_benchmark(settings, clients, orders, processes))
    if as_json:
        print(json.dumps({"results": [asdict(r) for r in rounds]}))
    else:
        print(render(rounds))
    return 0
