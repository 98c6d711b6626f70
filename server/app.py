"""``create_app(settings)``: the Starlette application. Nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from invoicing.infra import gc_tuning as collector
from invoicing.infra import pools
from invoicing.infra.limits import Limiter
from invoicing.infra.queue import JobQueue, connect_redis
from invoicing.infra.read_gate import ReadGate
from invoicing.infra.write_gate import WriteGate
from invoicing.kernel.errors import InvoicingError
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from server import admin, api, dev_mailbox, health, notifications, openapi, pages, tokens, ws
from server.body_limit import BodyLimit
from server.errors import (
    DRIVER_ERRORS,
    database_data_error,
    database_error,
    http_error,
    invoicing_error,
    unexpected_error,
)
from server.headers import SecurityHeaders
from server.hosts import AllowedHosts
from server.hub import EventHub
from server.state import Services

logger = logging.getLogger(__name__)


@asynccontextmanager
async def opened_services(settings: Settings, redis_url: str) -> AsyncIterator[Services]:
    """The process's services, open for the block, closed after it."""
    database = application_database(settings, pool_size=settings.db_pool_size)
    await database.connect()
    await pools.check_at_start(database, "server")
    queue = JobQueue(connect_redis(redis_url), settings)
    hub = EventHub(redis_url, settings.redis_prefix)
    await hub.start()
    try:
        yield Services(
            settings=settings,
            database=database,
            queue=queue,
            limiter=Limiter(queue.redis, settings),
            write_gate=WriteGate.for_pool(settings.db_pool_size),
            read_gate=ReadGate.for_pool(settings.db_pool_size),
            hub=hub,
            templates=pages.templates(),
        )
    finally:
        await hub.stop()
        await queue.close()
        await database.disconnect()


def create_app(settings: Settings) -> Starlette:
    _, redis_url = settings.require_services()
    if settings.secret_key is None:
        logger.warning(
            "SECRET_KEY is not set: no browser is recognized as a known device at login, so "
            "anyone's failed logins against an account slow its owner's logins too"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with opened_services(settings, redis_url) as services:
            yield {"services": services}

    routes = [
        *health.routes,
        *api.routes,
        *admin.routes,
        *openapi.routes,
        *tokens.routes,
        *notifications.routes,
        *(dev_mailbox.routes if settings.dev_mailbox_dir is not None else []),
        *ws.routes,
        *pages.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders, strict_transport_security=settings.session_cookie_secure == "true"),
            Middleware(AllowedHosts, allowed_hosts=settings.allowed_hosts),
            Middleware(BodyLimit),
        ],
        exception_handlers={
            InvoicingError: invoicing_error,
            asyncpg.DataError: database_data_error,
            **dict.fromkeys(DRIVER_ERRORS, database_error),
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )


def create_app_from_env() -> Starlette:
    """The factory each process of a multi-process server calls (``invoicing server --processes``)."""
    collector.tune_for_throughput()  # each is a fresh interpreter: see cli.commands.serve
    return create_app(Settings.from_env())
