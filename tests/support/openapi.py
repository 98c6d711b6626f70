"""An answer of the application held to the OpenAPI document: is its status listed for the
operation, are the headers the document requires there, does its body match the schema?"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
from jsonschema import Draft202012Validator, FormatChecker

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

#: The formats jsonschema checks (uuid, date...), and date-time, which it checks only with an
#: optional package installed.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_instant(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path template) of every operation of the document."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def documented_statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    responses = document["paths"][path][method.lower()]["responses"]
    return {int(status) for status in responses}


def fill_path(path: str, ids: dict[str, str], default: str) -> str:
    """The path template with each ``{name}`` replaced by ``ids[name]`` (else ``default``)."""
    return re.sub(r"\{(\w+)\}", lambda match: ids.get(match[1], default), path)


def answer_problems(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> list[str]:
    """What in ``response`` to ``method path`` the document does not say; empty when all of it does."""
    responses = document["paths"][path][method.lower()]["responses"]
    answer = responses.get(str(response.status_code))
    if answer is None:
        return [f"answered {response.status_code}, which the document does not list ({sorted(responses)})"]
    answer = _resolved(document, answer)
    problems = [
        f"lacks the header {name}, which the document requires"
        for name, header in answer.get("headers", {}).items()
        if header.get("required") and name not in response.headers
    ]
    content = answer.get("content")
    if content is None:
        return problems + (["has a body, where the document says none"] if response.content else [])
    media_type = response.headers.get("content-type", "").split(";")[0]
    if media_type not in content:
        return [*problems, f"is {media_type!r}, where the document says {sorted(content)}"]
    return problems + body_problems(document, content[media_type]["schema"], response.json())


def body_problems(document: dict[str, Any], schema: dict[str, Any], body: Any) -> list[str]:
    """Where ``body`` breaks ``schema``, a schema of the document."""
    # Every $ref of the document points into its components ("#/components/schemas/..."):
    # a root schema that carries them resolves each one as the document itself does.
    validator = Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=FORMATS,
    )
    return [f"body at {error.json_path}: {error.message}" for error in validator.iter_errors(body)]


def _resolved(document: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A shared response (``#/components/responses/...``) in place of the reference to it."""
    reference = answer.get("$ref")
    if reference is None:
        return answer
    found: dict[str, Any] = document
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    return found
