"""``invoicing dev``: the whole product on one machine, with nothing installed but Python.

Starts embedded PostgreSQL and Redis under the data folder unless ``DATABASE_URL`` /
``REDIS_URL`` are set, migrates, seeds demo data into an empty database, then runs the server
and the workers as child processes and restarts a worker that dies. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from devtools.embedded import (
    DevServices,
    EmbeddedPostgres,
    EmbeddedRedis,
    port_answers,
    record_services,
    recorded_services,
)
from devtools.mailbox import Mailbox, SmtpServer
from devtools.seed import SeedResult, database_is_empty, seed
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.infra.roles import RUNTIME_ROLE, ensure_runtime_role, with_login
from invoicing.infra.scopes import seal_scopes
from invoicing.kernel.settings import Settings

DEMO_FILE = "demo-logins.json"
DEMO_ORDERS = 1000


def _secret_key(data_dir: Path) -> str:
    """A key kept in the data folder, so sessions survive restarts of `dev`."""
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def _prepare_database(
    owner_url: str, runtime_url: str, secret_key: str, data_dir: Path
) -> SeedResult | None:
    async with Database(owner_url, pool_size=2) as database:
        await migrate(database)
        await ensure_runtime_role(database, runtime_url)
        await seal_scopes(database, secret_key)
        if await database_is_empty(database):
            demo = await seed(database, organizations=2, orders=DEMO_ORDERS, invalid_ratio=0.05)
            (data_dir / DEMO_FILE).write_text(json.dumps(demo, indent=2))
            (data_dir / DEMO_FILE).chmod(0o600)
            return demo
    path = data_dir / DEMO_FILE
    if not path.exists():
        return None
    saved: SeedResult = json.loads(path.read_text())
    return saved


def _print_banner(url: str, demo: SeedResult | None, data_dir: Path) -> None:
    print(f"\n  Batch invoicing is running at {url}\n", flush=True)
    if demo is None:
        print("  (database was not empty: no demo data created)\n", flush=True)
        return
    for organization in demo["organizations"]:
        print(f"  {organization['name']}", flush=True)
        for user in organization["users"]:
            print(f"    {user['role']:<7} {user['email']}  password: {user['password']}", flush=True)
            print(f"            API token: {user['token']}", flush=True)
    print(f"\n  Demo logins are kept in {data_dir / DEMO_FILE}. Ctrl-C stops everything.\n", flush=True)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], env=env)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _supervise(
    server: subprocess.Popen[bytes], workers: list[subprocess.Popen[bytes]], env: dict[str, str]
) -> int:
    """Block until the server exits; restart any worker that dies meanwhile."""
    while server.poll() is None:
        for index, worker in enumerate(workers):
            if worker.poll() is not None:
                print(f"worker exited with {worker.returncode}; restarting it", file=sys.stderr, flush=True)
                workers[index] = _spawn(["worker"], env)
        time.sleep(0.5)
    return server.returncode or 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def with_running_dev_services(settings: Settings) -> Settings:
    """Settings with no service URLs get those of an `invoicing dev` running on the same data
    folder (when they answer), so `create-token`, `seed` or `migrate` work beside it as is."""
    if settings.database_url is not None or settings.redis_url is not None:
        return settings
    found = recorded_services(settings.data_dir)
    if found is None:
        return settings
    key_file = settings.data_dir / "secret_key"
    return settings.with_overrides(
        database_url=found.database_url,
        redis_url=found.redis_url,
        migration_database_url=found.migration_database_url,
        # Its scopes are sealed with the key of its SECRET_KEY, which it keeps there.
        secret_key=settings.secret_key or (key_file.read_text().strip() if key_file.exists() else None),
    )


def run_dev(settings: Settings, *, host: str, port: int, workers: int) -> int:
    # SIGTERM (a terminal closing, `timeout`, a process manager) cleans up like Ctrl-C does,
    # so no server, worker or database is left behind.
    # SIGINT too: a shell starting `dev` in the background leaves SIGINT ignored, and Python
    # then installs no Ctrl-C handler of its own.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    for noisy in ("pgserver", "databases"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if port_answers(host, port):
        print(f"invoicing dev: port {port} is already in use; pass --port.", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        database_url = settings.database_url
        owner_url = settings.migration_database_url or database_url
        if database_url is None or owner_url is None:
            print(f"Starting embedded PostgreSQL in {data_dir / 'postgres'} ...", flush=True)
            postgres = EmbeddedPostgres(data_dir / "postgres")
            stack.callback(postgres.stop)
            # Like a deployment: the owner migrates and seeds, the processes log in as a role
            # that owns nothing (docs/SECURITY.md).
            owner_url = postgres.ensure_database("invoicing")
            database_url = with_login(owner_url, RUNTIME_ROLE)
        redis_url = settings.redis_url
        if redis_url is None:
            print(f"Starting embedded Redis in {data_dir / 'redis'} ...", flush=True)
            redis = EmbeddedRedis(data_dir / "redis").start()
            stack.callback(redis.stop)
            redis_url = redis.url
        secret_key = settings.secret_key or _secret_key(data_dir)
        demo = asyncio.run(_prepare_database(owner_url, database_url, secret_key, data_dir))
        services_file = record_services(data_dir, DevServices(database_url, redis_url, owner_url))
        stack.callback(lambda: services_file.unlink(missing_ok=True))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "MIGRATION_DATABASE_URL": owner_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secret_key,
            "BASE_URL": os.environ.get("BASE_URL") or f"http://{host}:{port}",
            # A newcomer's webhook receiver runs on this machine, over plain HTTP.
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": os.environ.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS") or "true",
        }
        mailbox_note = ""
        if settings.smtp_url is None:
            # Emails go to an SMTP server of our own, and show at /dev/mailbox.
            folder = data_dir / "mailbox"
            smtp = SmtpServer(Mailbox(folder)).start()
            stack.callback(smtp.stop)
            env.update(SMTP_URL=smtp.url, DEV_MAILBOX_DIR=str(folder))
            mailbox_note = f"http://{host}:{port}/dev/mailbox"
        server = _spawn(["server", "--host", host, "--port", str(port)], env)
        worker_processes = [_spawn(["worker"], env) for _ in range(max(1, workers))]
        stack.callback(lambda: _stop([server, *worker_processes]))
        deadline = time.monotonic() + 30
        while not port_answers(host, port) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        _print_banner(f"http://{host}:{port}", demo, data_dir)
        if mailbox_note:
            print(f"  Emails the product sends are shown at {mailbox_note}\n", flush=True)
        try:
            return _supervise(server, worker_processes, env)
        except KeyboardInterrupt:
            print("\nStopping ...", flush=True)
            return 0
