"""The published OpenAPI description of the JSON API (``GET /api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def openapi_document() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "Batch invoicing API", "version": "0.1.0"}, "paths": {}}


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


routes = [Route("/api/openapi.json", openapi_json, methods=["GET"])]
