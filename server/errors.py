"""The one place where errors become HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from invoicing.infra.database_failures import is_unavailable
from invoicing.kernel import errors
from invoicing.kernel.json_schema import COUNT, ID, Schema, array, closed_object, ref

logger = logging.getLogger(__name__)

STATUS_BY_CLASS: dict[type[errors.InvoicingError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvoiceRuleError: 422,
    errors.TooManyRequests: 429,
    errors.ServiceUnavailable: 503,
}

# Rule errors that are better said with another status than 422.
STATUS_BY_CODE = {"order_not_found": 404, "already_invoiced": 409, "body_too_large": 413}


class PayloadTooLarge(errors.BadRequest):
    code = "body_too_large"


#: What the driver raises for the database's own failures (handled by ``database_error``).
DRIVER_ERRORS: tuple[type[Exception], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> JSONResponse:
    body = {"code": code, "message": message, **(details or {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


#: What ``error_response`` writes: the one error body of every API answer that is not a success.
ERROR_SCHEMA = closed_object(
    {
        "error": closed_object(
            {
                "code": {"type": "string", "description": "Stable, machine-readable."},
                "message": {"type": "string", "description": "Safe to show to a user."},
                "request_id": {"type": "string", "description": "Only on a 500; it is in the server log."},
                "count": {**COUNT, "description": "`orders_in_active_job`: how many of the orders are held."},
                "jobs": array(
                    closed_object({"id": ID, "orders": COUNT}),
                    description="`orders_in_active_job`: the running jobs that hold them, and how many each.",
                ),
            },
            optional=("request_id", "count", "jobs"),
        )
    }
)


#: What each error status means: the OpenAPI document's shared error answers.
ERROR_DESCRIPTIONS = {
    "400": "Malformed input: unknown or invalid parameter, limit, cursor or body.",
    "401": "No or invalid credentials.",
    "403": "Not allowed: an admin-only action, or a cookie request from another site.",
    "404": "No such resource in your organization (another organization's looks the same).",
    "409": "The current state forbids it; `order_locked` (someone else is changing the order) comes with "
    "`Retry-After`; `orders_in_active_job` names the running jobs that hold the orders (`count`, `jobs`).",
    "413": "The request body is larger than 8 MB.",
    "422": "The order cannot be invoiced; the code says why.",
    "429": "A limit was reached (jobs created per minute, refused job requests per minute, active jobs); "
    "retry after `Retry-After` seconds.",
    "500": "A bug on our side; quote the request id.",
    "503": "Nothing was done: the database cannot be reached (`service_unavailable`), a lock or the turn "
    "to take one did not come in time (`database_busy`), or a statement ran too long "
    "(`database_timeout`); retry after `Retry-After` seconds.",
}

_RETRY_AFTER: Schema = {"type": "string", "description": "Seconds."}
#: The headers ``headers_for`` adds, by status (a 409 has Retry-After only for `order_locked`).
_ERROR_HEADERS: dict[str, dict[str, Schema]] = {
    "401": {"WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}}},
    "409": {"Retry-After": {"required": False, "schema": _RETRY_AFTER}},
    "429": {"Retry-After": {"required": True, "schema": _RETRY_AFTER}},
    "503": {"Retry-After": {"required": True, "schema": _RETRY_AFTER}},
}


def error_responses() -> dict[str, Schema]:
    """The document's ``components.responses``: ``Error400``... each the error body, and its headers."""
    responses: dict[str, Schema] = {}
    for code, description in ERROR_DESCRIPTIONS.items():
        response: Schema = {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        if code in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[code]
        responses[f"Error{code}"] = response
    return responses


def status_for(error: errors.InvoicingError) -> int:
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for cls in type(error).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return 400


def headers_for(error: errors.InvoicingError) -> dict[str, str] | None:
    if isinstance(error, errors.Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if error.retry_after is not None:
        return {"Retry-After": str(error.retry_after)}
    return None


def response_for(error: errors.InvoicingError) -> JSONResponse:
    return error_response(status_for(error), error.code, error.message, headers_for(error), error.details)


async def invoicing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.InvoicingError)
    return response_for(exc)


def database_failure(exc: BaseException) -> errors.InvoicingError | None:
    """What to tell the client about a driver error; None for a bug (a 500).

    The server's connections carry ``lock_timeout`` and ``statement_timeout``: a request that
    waited too long for a lock, or ran too long, was stopped by PostgreSQL, rolled back, and
    may pass if sent again.
    """
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return errors.DatabaseBusy("The data is being changed by someone else; try again in a moment.")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return errors.DatabaseTimeout("The database took too long to answer; try again later.")
    if is_unavailable(exc):
        return errors.ServiceUnavailable("The service is temporarily unavailable; try again in a moment.")
    return None


@contextmanager
def database_failures_translated(connection: HTTPConnection) -> Iterator[None]:
    """Raise driver errors of the block as ``InvoicingError``s (for code that answers them
    itself, like a WebSocket); a driver error that is a bug propagates unchanged."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        error = database_failure(exc)
        if error is None:
            raise
        _log_database_failure(connection, exc)
        raise error from exc


async def database_error(request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After`` while PostgreSQL is down, restarting, or out of time; never a 500."""
    error = database_failure(exc)
    if error is None:
        return await unexpected_error(request, exc)
    _log_database_failure(request, exc)
    return response_for(error)


def _log_database_failure(connection: HTTPConnection, exc: BaseException) -> None:
    # One line, no traceback: during an outage every request lands here.
    method = connection.scope.get("method", "WEBSOCKET")
    logger.warning("the database could not serve %s %s: %r", method, connection.url.path, exc)


def _wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, a file or a socket): it gets one, not JSON."""
    api = request.url.path.startswith(("/api/", "/static/", "/ws/"))
    return request.method == "GET" and not api and "text/html" in request.headers.get("accept", "")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and _wants_page(request):
        from server.pages import render_page  # the pages import this module

        return render_page(request, "not_found.html", 404)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {404: "No such endpoint.", 405: "Method not allowed on this endpoint."}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(exc.status_code, code, message, dict(exc.headers) if exc.headers else None)


async def database_data_error(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL refused (out of range, NUL byte): the client's input, not our bug.

    Input is validated before it reaches SQL; this is the second wall, so that a value the
    validation missed is still a 400 and never a 500.
    """
    logger.warning("database refused a request value on %s %s: %s", request.method, request.url.path, exc)
    return error_response(400, "invalid_parameter", "A value in the request is out of range.")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug: log it with a request id the user can quote; show nothing internal."""
    request_id = uuid.uuid4().hex[:12]
    logger.exception(
        "unexpected error (request id %s) on %s %s", request_id, request.method, request.url.path
    )
    return JSONResponse(
        {
            "error": {
                "code": "internal_error",
                "message": f"Something went wrong on our side. Quote request id {request_id} to support.",
                "request_id": request_id,
            }
        },
        status_code=500,
    )
