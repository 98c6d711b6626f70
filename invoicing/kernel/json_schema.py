"""The JSON Schema words every view describes its JSON with, for the published OpenAPI 3.1
document (``server/openapi.py`` gathers each view's schemas into it).

A view's schema sits beside the ``to_json`` that writes that JSON, so that changing one shows
the other; ``tests/integration/test_openapi_answers.py`` holds every answer to its schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Schema = dict[str, Any]

ID: Schema = {"type": "string", "format": "uuid"}
NULLABLE_ID: Schema = {"type": ["string", "null"], "format": "uuid"}
DATE: Schema = {"type": "string", "format": "date"}
COUNT: Schema = {"type": "integer", "minimum": 0}
POSITION: Schema = {"type": "integer", "minimum": 1}
TEXT: Schema = {"type": "string"}
NULLABLE_TEXT: Schema = {"type": ["string", "null"]}
BOOLEAN: Schema = {"type": "boolean"}
CURRENCY: Schema = {"type": "string", "minLength": 3, "maxLength": 3, "description": "ISO 4217 code."}


def ref(name: str) -> Schema:
    """The component schema of that name (``components.schemas``)."""
    return {"$ref": f"#/components/schemas/{name}"}


def closed_object(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties, all required but the ``optional`` ones."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def enum(values: Iterable[str], **extra: Any) -> Schema:
    return {"type": "string", "enum": [str(value) for value in values], **extra}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}
