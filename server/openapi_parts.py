"""The words the OpenAPI document is written with: responses, parameters, operations.

``server/openapi.py`` assembles the document from them, with the paths of each part of the API
(``server/openapi_notifications.py`` for notifications and webhooks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from invoicing.domain.paging import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT
from invoicing.kernel.json_schema import ID, Schema, enum, ref


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def ok(description: str, schema_name: str, **headers: Schema) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": json_content(ref(schema_name))}
    if headers:
        response["headers"] = {name: {"required": True, "schema": schema} for name, schema in headers.items()}
    return response


def errors(*statuses: int) -> dict[str, Any]:
    """References to the shared error responses, plus the 401, 500 and 503 every API call may get."""
    codes = sorted({*map(str, statuses), "401", "500", "503"})
    return {code: {"$ref": f"#/components/responses/Error{code}"} for code in codes}


def id_parameter(name: str, what: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id; a malformed one is answered like a missing one (404).",
        "schema": ID,
    }


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LIMIT: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
CURSOR: Schema = {"type": "string", "maxLength": MAX_CURSOR_LENGTH}
PAGING = [query("limit", LIMIT, "Page size."), query("cursor", CURSOR, "A previous page's `next_cursor`.")]
BOOLEAN_TEXT = ("true", "false")


IF_NONE_MATCH: Schema = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the copy you have, or `*`.",
    "schema": {"type": "string"},
}
NOT_MODIFIED: dict[str, Any] = {
    "description": "Unchanged since the ETag sent; no body.",
    "headers": {"ETag": {"required": True, "schema": {"type": "string"}}},
}
PUBLIC: dict[str, Any] = {"security": []}


def enum_query(name: str, values: Iterable[str], description: str = "Only this status.") -> Schema:
    return query(name, enum(values), description)


def api(
    operation_id: str,
    summary: str,
    success: dict[str, Any],
    *error_statuses: int,
    status: int = 200,
    also: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An authenticated operation: its success response, ``also`` others, and the errors it can answer."""
    responses = {str(status): success, **(also or {}), **errors(*error_statuses)}
    return {"operationId": operation_id, "summary": summary, **fields, "responses": responses}


def public(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, **PUBLIC, "responses": responses}


def json_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": json_content(ref(schema_name))}
