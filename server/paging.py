"""Keyset pagination at the edge: typed cursors and the ``{"items", "next_cursor"}`` page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from invoicing.domain.paging import decode_cursor, encode_cursor, parse_limit
from invoicing.errors import BadRequest

T = TypeVar("T")

#: Positions are PostgreSQL integers.
MAX_POSITION = 2**31 - 1


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
        return _instant(moment), UUID(str(key))
    except ValueError:
        raise _bad_cursor() from None


def _instant(value: str | int) -> datetime:
    """An instant PostgreSQL can hold: timezone-aware, within years 1..9999 in UTC."""
    try:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad_cursor() from None
    return parsed


def time_text_cursor(request: Request) -> tuple[datetime, str] | None:
    """A (timestamp, text) keyset cursor, such as an invoice's (created_at, number)."""
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    moment, text = decode_cursor(raw, arity=2)
    if not isinstance(text, str) or "\x00" in text:
        raise _bad_cursor()
    return _instant(moment), text


def text_id_cursor(request: Request) -> tuple[str, UUID] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    text, key = decode_cursor(raw, arity=2)
    if not isinstance(text, str) or "\x00" in text:
        raise _bad_cursor()
    try:
        return text, UUID(str(key))
    except ValueError:
        raise _bad_cursor() from None


def int_cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    (value,) = decode_cursor(raw, arity=1)
    if not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise _bad_cursor()
    return value


def page(
    items: Sequence[T],
    limit: int,
    render: Callable[[T], dict[str, Any]],
    key: Callable[[T], Sequence[str | int]],
    **extra: Any,
) -> JSONResponse:
    """A full page gets a cursor to the next one; a short page is the last."""
    next_cursor = encode_cursor(key(items[-1])) if len(items) == limit and items else None
    return JSONResponse({"items": [render(item) for item in items], "next_cursor": next_cursor, **extra})
