"""Probes: ``/healthz`` (the process is up) and ``/readyz`` (PostgreSQL and Redis answer), each
with the schema of its answer in the OpenAPI document."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from invoicing.kernel.json_schema import BOOLEAN, Schema, closed_object, enum
from server import state


async def healthz(request: Request) -> Response:
    """The process is up (no dependency checked: a liveness probe must not flap with Redis)."""
    return JSONResponse({"status": "ok"})


#: What ``healthz`` answers.
HEALTH_SCHEMA = closed_object({"status": {"const": "ok"}})

#: /readyz answers within about this long whatever hangs: a probe that waits is no answer.
READY_TIMEOUT_SECONDS = 1.5


async def readyz(request: Request) -> Response:
    """PostgreSQL and Redis both answer (each checked at once, on a connection of its own)."""
    services = state.services(request)
    database_ok, redis_ok = await asyncio.gather(
        services.database.ping(within=READY_TIMEOUT_SECONDS),
        services.queue.ping(within=READY_TIMEOUT_SECONDS),
    )
    body = {
        "status": "ok" if database_ok and redis_ok else "unavailable",
        "database": database_ok,
        "redis": redis_ok,
    }
    return JSONResponse(body, status_code=200 if database_ok and redis_ok else 503)


#: What ``readyz`` answers, ready (200) or not (503).
READINESS_SCHEMA = closed_object(
    {"status": enum(["ok", "unavailable"]), "database": BOOLEAN, "redis": BOOLEAN}
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {"Health": HEALTH_SCHEMA, "Readiness": READINESS_SCHEMA}

routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
