"""Reading what a client sent: JSON bodies with a size cap, ids in paths, query values."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import orjson
from starlette.requests import Request

from invoicing.kernel.errors import BadRequest, InvoicingError
from server.errors import PayloadTooLarge

#: 100,000 ids of 36 characters plus JSON punctuation fit in about 4 MB.
MAX_BODY_BYTES = 8 * 1024 * 1024


def too_large_message(max_bytes: int) -> str:
    if max_bytes >= 1024 * 1024:
        return f"The request body is larger than {max_bytes // (1024 * 1024)} MB."
    return f"The request body is larger than {max_bytes // 1024} KB."


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> object:
    """The body as JSON, refused (413) past ``max_bytes``: declared, or counted as it streams in.

    Whatever is left unread of a refused body is drained by ``server.body_limit.BodyLimit``.
    """
    return _parsed(await _body(request, max_bytes))


async def read_optional_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> object | None:
    """Like ``read_json``, but None when the client sent no body at all."""
    body = await _body(request, max_bytes)
    return None if not body else _parsed(body)


async def _body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(too_large_message(max_bytes))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(too_large_message(max_bytes))
    return bytes(body)


def _parsed(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Also invalid UTF-8, nesting deeper than 1024 and integers beyond 64 bits.
        raise BadRequest(f"The request body is not valid JSON ({exc.msg}).", code="invalid_json") from None


def path_uuid(request: Request, name: str, not_found: Callable[[], InvoicingError]) -> UUID:
    """An id from the path; a malformed one cannot exist, so it is answered like a missing one
    (``not_found``, the resource's constructor: ``NotFound.job``)."""
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except ValueError:
        raise not_found() from None


def query_uuid(request: Request, name: str) -> UUID | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise BadRequest(f"Query parameter {name} must be a UUID.", code="invalid_parameter") from None


def query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadRequest(
            f"Query parameter {name} must be one of: {', '.join(choices)}.", code="invalid_parameter"
        )
    return raw


def reject_unknown_query(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise BadRequest(f"Unknown query parameter: {', '.join(unknown)[:100]}.", code="unknown_parameter")
