"""Keyset pagination at the edge: typed cursors and the ``{"items", "next_cursor"}`` page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from invoicing.domain.paging import decode_cursor, encode_cursor, invalid_cursor, parse_limit
from invoicing.kernel.json_schema import Schema, array, closed_object, ref

T = TypeVar("T")

#: Positions are PostgreSQL integers.
MAX_POSITION = 2**31 - 1


def limit_of(request: Request, maximum: int = 500) -> int:
    return parse_limit(request.query_params.get("limit"), maximum=maximum)


def _cursor(request: Request, arity: int) -> tuple[str | int, ...] | None:
    raw = request.query_params.get("cursor")
    return None if not raw else decode_cursor(raw, arity=arity)


def _instant(value: str | int) -> datetime:
    """An instant PostgreSQL can hold: timezone-aware, within years 1..9999 in UTC."""
    try:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid_cursor() from None
    return parsed


def _text(value: str | int) -> str:
    """A text key PostgreSQL accepts (no NUL byte)."""
    if not isinstance(value, str) or "\x00" in value:
        raise invalid_cursor()
    return value


def _uuid(value: str | int) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise invalid_cursor() from None


def time_id_cursor(request: Request) -> tuple[datetime, UUID] | None:
    """A (created_at, id) keyset cursor, such as a job's."""
    values = _cursor(request, 2)
    return None if values is None else (_instant(values[0]), _uuid(values[1]))


def time_text_cursor(request: Request) -> tuple[datetime, str] | None:
    """A (created_at, text) keyset cursor, such as an invoice's (created_at, number)."""
    values = _cursor(request, 2)
    return None if values is None else (_instant(values[0]), _text(values[1]))


def text_id_cursor(request: Request) -> tuple[str, UUID] | None:
    """A (text, id) keyset cursor, such as an order's (number, id)."""
    values = _cursor(request, 2)
    return None if values is None else (_text(values[0]), _uuid(values[1]))


def uuid_cursor(request: Request) -> UUID | None:
    """An id cursor: the last row of the previous page, whose other sort keys the query reads."""
    values = _cursor(request, 1)
    return None if values is None else _uuid(values[0])


def int_cursor(request: Request, maximum: int = MAX_POSITION) -> int | None:
    """A position cursor, such as a batch item's (or an id up to ``maximum``)."""
    values = _cursor(request, 1)
    if values is None:
        return None
    if not isinstance(values[0], int) or not 0 <= values[0] <= maximum:
        raise invalid_cursor()
    return values[0]


def page(
    items: Sequence[T],
    limit: int,
    render: Callable[[T], dict[str, Any]],
    key: Callable[[T], Sequence[str | int]],
    **extra: Any,
) -> JSONResponse:
    """Render a page from ``limit + 1`` rows: the extra row only tells that another page exists,
    so the last page never carries a cursor to an empty one."""
    shown = items[:limit]
    next_cursor = encode_cursor(key(shown[-1])) if len(items) > limit else None
    return JSONResponse({"items": [render(item) for item in shown], "next_cursor": next_cursor, **extra})


def paged(item_schema: str, **extra: Schema) -> Schema:
    """The schema of what ``page`` writes: items of that component schema, ``next_cursor`` and
    the optional ``extra`` fields."""
    return closed_object(
        {
            "items": array(ref(item_schema)),
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
            **extra,
        },
        optional=tuple(extra),
    )
