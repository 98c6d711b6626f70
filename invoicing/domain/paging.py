"""Keyset pagination: the ``limit`` parameter and opaque cursors.

A cursor is opaque to clients: they must pass back exactly what a previous page returned
and never build or inspect one. Today it is the URL-safe base64 (no padding) of a compact
JSON array holding the sort key of the last row (for example ``[created_at_iso, id]``);
that encoding may change at any time. Whatever a client sends is validated here, so a
forged or damaged cursor is a ``400 invalid_cursor``, never a server error.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence

from invoicing.kernel.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512

# More digits than any sane limit; also keeps int() away from its long-string guard.
_MAX_LIMIT_DIGITS = 18
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """The page size from a query-string value; ``None`` (parameter absent) means ``default``.

    Only plain ASCII digits are accepted (no sign, spaces or underscores); anything else, or a
    value outside ``1..maximum``, raises :class:`BadRequest` with code ``invalid_limit``.
    """
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= _MAX_LIMIT_DIGITS:
        value = int(raw)
        if 1 <= value <= maximum:
            return value
    raise BadRequest(f"limit must be an integer between 1 and {maximum}.", code="invalid_limit")


def encode_cursor(values: Sequence[str | int]) -> str:
    """Encode the sort key of the last row of a page as an opaque cursor.

    Raises ``TypeError`` for values other than str and int, and ``ValueError`` when the cursor
    would exceed ``MAX_CURSOR_LENGTH`` (which :func:`decode_cursor` would refuse): both are
    programming errors, sort keys are short.
    """
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"cursor values must be str or int, not {type(value).__name__}")
    data = json.dumps(list(values), separators=(",", ":")).encode("ascii")
    cursor = base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError(f"cursor of {len(cursor)} characters exceeds {MAX_CURSOR_LENGTH}")
    return cursor


def decode_cursor(raw: str, *, arity: int) -> tuple[str | int, ...]:
    """Decode a cursor made by :func:`encode_cursor` holding exactly ``arity`` values.

    Raises :class:`BadRequest` with code ``invalid_cursor`` for anything else: too long, not
    URL-safe base64, not JSON, not a list of ``arity`` strings and integers.
    """
    if len(raw) > MAX_CURSOR_LENGTH or _URLSAFE_BASE64.fullmatch(raw) is None:
        raise invalid_cursor()
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        values = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # binascii, Unicode and JSON errors are ValueErrors
        raise invalid_cursor() from exc
    if not isinstance(values, list) or len(values) != arity:
        raise invalid_cursor()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise invalid_cursor()
    return tuple(values)


def invalid_cursor() -> BadRequest:
    """The answer to any cursor that is not one a previous page returned (or no longer fits)."""
    return BadRequest("The cursor is not valid; start again from the first page.", code="invalid_cursor")
