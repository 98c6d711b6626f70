"""What each ``invoicing`` command does, given its settings."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from devtools.seed import SeedResult, seed
from invoicing.accounts import api_tokens as tokens
from invoicing.infra import gc_tuning as collector
from invoicing.infra import roles
from invoicing.infra.database import Database
from invoicing.infra.migrations import migrate
from invoicing.infra.queue import JobQueue, connect_redis
from invoicing.infra.scopes import seal_scopes
from invoicing.jobs.sweep import sweep
from invoicing.kernel.errors import ConfigurationError
from invoicing.kernel.settings import Settings
from invoicing.services import application_database


def serve(settings: Settings, *, host: str, port: int, processes: int = 1) -> int:
    import uvicorn

    from server.app import create_app

    settings.require_services()  # fail here, clearly, not in every child process
    # Submitting 100,000 ids allocates as much as a worker's chunk (1.0 → 0.8 s with it, one
    # bench run each).
    collector.tune_for_throughput()
    # Several processes share the listening socket; each builds its app from the same
    # environment and has its own event hub, fanning out to its own sockets.
    target: Any = "server.app:create_app_from_env" if processes > 1 else create_app(settings)
    uvicorn.run(
        target,
        factory=processes > 1,
        workers=processes if processes > 1 else None,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        # Progress events are small; per-socket deflate state would cost more memory and CPU
        # (tens of KB and a compression per message per socket) than the bytes it saves.
        ws_per_message_deflate=False,
        # Server-side keepalive: a half-open socket is dropped after a missed pong.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
        **uvicorn_security_options(settings),
    )
    return 0


def uvicorn_security_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn accepts from clients: WebSocket frame size, and whose forwarded headers.

    * ``ws_max_size``: a frame (or message) over ``MAX_CLIENT_FRAME_BYTES`` closes the socket
      with 1009 as soon as its header announces it, instead of uvicorn buffering up to its
      default 16 MiB per frame before the app's own 4096-character check.
    * Forwarded headers only from ``TRUSTED_PROXIES``: uvicorn's default would believe
      X-Forwarded-For (and -Proto) from any loopback peer, letting a client of a proxy-less
      deployment choose its own address. With none configured uvicorn reads no forwarded
      header at all; with some, it believes X-Forwarded-Proto from them (the login's
      same-origin check and the Secure cookie need the browser's https) and
      ``server/addresses.py`` still decides the client address.
    """
    from server.ws import MAX_CLIENT_FRAME_BYTES

    allowed = forwarded_allow_ips(settings)
    return {
        "ws_max_size": MAX_CLIENT_FRAME_BYTES,
        "proxy_headers": allowed is not None,
        "forwarded_allow_ips": allowed if allowed is not None else "",
    }


def forwarded_allow_ips(settings: Settings) -> str | None:
    """``TRUSTED_PROXIES`` for uvicorn; None when there are none (uvicorn then reads no
    forwarded header: neither its loopback default nor its ``FORWARDED_ALLOW_IPS``)."""
    if not settings.trusted_proxies:
        return None
    return ",".join(str(network) for network in settings.trusted_proxies)


def work(settings: Settings, *, burst: bool) -> int:
    from worker.main import run_worker

    collector.tune_for_throughput()
    asyncio.run(run_worker(settings, burst=burst))
    return 0


async def migrate_database(settings: Settings) -> list[int]:
    """Migrate as the owner, then create or check DATABASE_URL's runtime role."""
    async with Database(settings.require_owner_database(), pool_size=2) as database:
        try:
            applied = await migrate(database)
        except asyncpg.InsufficientPrivilegeError as error:
            raise ConfigurationError(
                f"Migrations must run as the tables' owner ({error}): set MIGRATION_DATABASE_URL to "
                "the owner's login, DATABASE_URL to the runtime role's (docs/SECURITY.md)."
            ) from error
        if settings.database_url:
            await roles.ensure_runtime_role(database, settings.database_url)
        await seal_scopes(database, settings.secret_key)
    return applied


async def seed_database(
    settings: Settings, organizations: int, orders: int, invalid_ratio: float
) -> SeedResult:
    await migrate_database(settings)
    async with Database(settings.require_owner_database(), pool_size=2) as database:
        return await seed(database, organizations=organizations, orders=orders, invalid_ratio=invalid_ratio)


async def process_pending(settings: Settings) -> dict[str, int]:
    _, redis_url = settings.require_services()
    queue = JobQueue(connect_redis(redis_url), settings)
    try:
        async with application_database(settings, pool_size=2) as database:
            return (await sweep(database, queue, settings)).to_json()
    finally:
        await queue.close()


async def create_token(settings: Settings, email: str, name: str, organization: str | None) -> str:
    """A new API token for the user (in the chosen organization); returns the plaintext once."""
    async with application_database(settings, pool_size=2) as database:
        created = await tokens.create_token_for_email(database, email, name, organization)
    return created.token
