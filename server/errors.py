"""The one place where errors become HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from invoicing import errors

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


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def status_for(error: errors.InvoicingError) -> int:
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for cls in type(error).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return 400


async def invoicing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.InvoicingError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthorized) else None
    if isinstance(exc, errors.TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(status_for(exc), exc.code, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
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
