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
