"""Real services for the tests: PostgreSQL and Redis, found or started.

PostgreSQL: ``TEST_DATABASE_URL`` (an admin URL), else the server on 127.0.0.1:5432, else an
embedded one (pgserver) started for this run. Redis: ``TEST_REDIS_URL``, else database 15 of
127.0.0.1:6379 (apart from anyone else's keys), else an embedded redis-server.
Each test starts on an empty migrated database and gets its own arq queue and event prefix,
so tests never see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from redis.exceptions import RedisError

from devtools.embedded import EmbeddedPostgres, EmbeddedRedis, port_answers
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.infra.queue import JobQueue, connect_redis
from invoicing.infra.roles import RUNTIME_ROLE, ensure_runtime_role, with_login
from invoicing.infra.scopes import ScopeKey, store_key
from invoicing.kernel.settings import Settings
from tests.support.app import api_client
from tests.support.factories import Organization, create_organization
from tests.support.postgres import PostgresServer, PrivateDatabase
from tests.support.server_process import ServerProcess, running_server
from tests.support.services import RedisServer, database_url_for
from tests.support.transitions import enforce_transitions

RUN_ID = secrets.token_hex(4)
TEST_SECRET_KEY = "test-secret-key-0123456789"
# Set INVOICING_TEST_EMBEDDED=1 to test as on a bare machine, even if local servers answer.
FORCE_EMBEDDED = os.environ.get("INVOICING_TEST_EMBEDDED") == "1"
CREATED_QUEUES: list[str] = []


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
    elif port_answers("127.0.0.1", 5432) and not FORCE_EMBEDDED:
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
    else:
        embedded = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"))
        yield embedded.url("postgres")
        embedded.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
    elif port_answers("127.0.0.1", 6379) and not FORCE_EMBEDDED:
        yield "redis://127.0.0.1:6379/15"
    else:
        embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
        yield embedded.url
        embedded.stop()


@pytest_asyncio.fixture(scope="session")
async def session_database(postgres_admin_url: str) -> AsyncIterator[str]:
    """The migrated database of this test run, dropped at the end."""
    name = f"invoicing_test_{RUN_ID}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = database_url_for(postgres_admin_url, name)
        async with Database(url, pool_size=2) as database:
            await migrate(database)
            await ensure_runtime_role(database, runtime_url(url))
            await seal_scopes(database)
            async with database.connection() as connection:
                await enforce_transitions(connection)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture
async def database_url(session_database: str) -> str:
    """An empty, migrated database for one test: every table is emptied before it starts.

    Emptying takes a tenth of the time of copying a template database per test.
    """
    connection = await asyncpg.connect(session_database)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT IN ('schema_migrations', 'organization_scope_keys')"
        )
        names = ", ".join(f'"{row["tablename"]}"' for row in tables)
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
    return session_database


async def seal_scopes(database: Database) -> None:
    """Seal organization scopes with the tests' SECRET_KEY, as `invoicing migrate` does."""
    key = ScopeKey.from_secret(TEST_SECRET_KEY)
    assert key is not None
    async with database.connection() as connection:
        await store_key(connection, key)


def runtime_url(owner_url: str) -> str:
    """The test database as the server and workers log in to it: the runtime role."""
    return with_login(owner_url, RUNTIME_ROLE)


def make_settings(database_url: str, redis_url: str, **overrides: str) -> Settings:
    """Settings for one test: its own queue and channels, short leases, small chunks.

    ``database_url`` is the owner's (the tests' own set-up); the server and workers log in as
    the runtime role, as in production."""
    namespace = f"test-{secrets.token_hex(4)}"
    CREATED_QUEUES.extend([f"{namespace}:queue", f"{namespace}:queue:notifications"])
    environment = {
        "DATABASE_URL": runtime_url(database_url),
        "MIGRATION_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "QUEUE_NAME": f"{namespace}:queue",
        "REDIS_PREFIX": namespace,
        # httpx's ASGI clients and Starlette's TestClient send Host: testserver; live servers 127.0.0.1.
        "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1,[::1]",
        "CHUNK_SIZE": "25",
        # Fixed chunks: tests that stop a job midway need it to stay long.
        "CHUNK_TARGET_SECONDS": "0",
        "LEASE_SECONDS": "5",
        "WORKER_POLL_DELAY": "0.05",
        "SWEEP_PENDING_AFTER_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        # Webhook receivers in tests listen on loopback over plain HTTP.
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        **overrides,
    }
    return Settings.from_env(environment)


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url, redis_url)


@pytest_asyncio.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    async with Database(settings.require_owner_database(), pool_size=5) as connected:
        yield connected


@pytest_asyncio.fixture
async def queue(settings: Settings) -> AsyncIterator[JobQueue]:
    _, redis_url = settings.require_services()
    job_queue = JobQueue(connect_redis(redis_url), settings)
    yield job_queue
    await job_queue.close()


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _forget_queue_keys(redis_url: str) -> AsyncIterator[None]:
    """Leave no queue of this run behind in the shared Redis."""
    yield
    client = connect_redis(redis_url, timeout=0.5)
    try:
        for name in CREATED_QUEUES:
            await client.delete(name, f"{name}:health-check")
    except (RedisError, OSError):
        pass  # an embedded Redis that is already gone has nothing to clean
    finally:
        await client.aclose(close_connection_pool=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may stop and start again."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivateDatabase]:
    """A migrated database on a PostgreSQL server of this test alone, which it may stop.

    ``private_postgres.url`` is the database (pass it to ``make_settings``);
    ``private_postgres.server`` has ``stop()``, ``start()``, ``restart()`` (same port, so the
    URL stays valid; ``pg_ctl -m fast``: open sessions end at once), ``freeze()`` and
    ``thaw()`` (the postmaster stops answering, as a hung server). Those block for a fraction of
    a second: call them through ``asyncio.to_thread`` while the test's event loop must keep
    serving (an in-process app or server). About 1.5 s to set up (initdb, start, migrate).
    """
    server = PostgresServer()
    try:
        server.start()
        admin = await asyncpg.connect(server.url())
        try:
            await admin.execute('CREATE DATABASE "invoicing"')
        finally:
            await admin.close()
        url = server.url("invoicing")
        async with Database(url, pool_size=2) as database:
            await migrate(database)
            await ensure_runtime_role(database, runtime_url(url))
            await seal_scopes(database)
            async with database.connection() as connection:
                await enforce_transitions(connection)
        yield PrivateDatabase(server=server, url=url)
    finally:
        server.close()


@pytest.fixture
def server_process(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """``invoicing server`` as a child process, started as an operator starts it."""
    with running_server(settings, tmp_path / "server.log") as running:
        yield running


@pytest_asyncio.fixture
async def organization(database: Database) -> Organization:
    return await create_organization(database)


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app (in process, no network)."""
    async with api_client(settings) as client:
        yield client


# --- Real Chromium (Debian's package) driven by Playwright ------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (a one-off check before any I/O starts)
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI and missing at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()
