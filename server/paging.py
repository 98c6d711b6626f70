"""Keyset pagination at the edge: typed cursors and the ``{"items", "next_cursor"}`` page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from invoicing.domain.paging import decode_cursor, encode_cursor, parse_limit
from invoicing.errors import BadRequest

T = TypeVar("T")


def _bad_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid; start again from the first page.", code="invalid_cursor")


def limit_of(request: Request, maximum: int = 500) -> int:
    return parse_limit(request.query_params.get("limit"), maximum=maximum)


def time_id_cursor(request: Request) -> tuple[datetime, UUID] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    moment, key = decode_cursor(raw, arity=2)
    try:
        return datetime.fromisoformat(str(moment)), UUID(str(key))
    except ValueError:
        raise _bad_cursor() from None


def text_id_cursor(request: Request) -> tuple[str, UUID] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    text, key = decode_cursor(raw, arity=2)
    try:
        return str(text), UUID(str(key))
    except ValueError:
        raise _bad_cursor() from None


def int_cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    (value,) = decode_cursor(raw, arity=1)
    if not isinstance(value, int) or value < 0:
        raise _bad_cursor()
    return value


def page(
    items: Sequence[T],
    limit: int,
    render: Callable[[T], dict[str, Any]],
    key: Callable[[T], Sequence[str | int]],
) -> JSONResponse:
    """A full page gets a cursor to the next one; a short page is the last."""
    next_cursor = encode_cursor(key(items[-1])) if len(items) == limit and items else None
    return JSONResponse({"items": [render(item) for item in items], "next_cursor": next_cursor})
