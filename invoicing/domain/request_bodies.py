"""The envelope every JSON request body shares: an object naming only fields it may carry."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from invoicing.kernel.errors import BadRequest

_PREVIEW_LENGTH = 40
_MAX_NAMED_FIELDS = 5


def json_object(body: object, allowed: Collection[str]) -> dict[str, Any]:
    """``body`` as an object of ``allowed`` fields only: 400 ``invalid_body`` if it is not an
    object, ``unknown_field`` (naming a few of them) if it has others."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_body")
    unknown = [str(key) for key in body if key not in allowed]
    if unknown:
        raise BadRequest(f"Unknown field(s): {name_fields(unknown)}.", code="unknown_field")
    return body


def name_fields(names: list[str]) -> str:
    """A few of ``names``, each cut short, and how many more there are."""
    shown = ", ".join(repr(name[:_PREVIEW_LENGTH]) for name in sorted(names)[:_MAX_NAMED_FIELDS])
    hidden = len(names) - _MAX_NAMED_FIELDS
    return f"{shown} and {hidden} more" if hidden > 0 else shown
