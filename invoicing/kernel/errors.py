"""One exception hierarchy for the whole product.

Every error carries a stable machine-readable ``code`` and a ``message`` that is safe to show
to the user (no SQL, no ids of other organizations, no stack traces). The HTTP edge maps the
classes to status codes in one place (``server/errors.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from uuid import UUID


class InvoicingError(Exception):
    """Base of every error the product raises on purpose."""

    code: str = "error"
    #: Seconds after which the same request may succeed (the HTTP edge sends ``Retry-After``);
    #: None when waiting would not help.
    retry_after: int | None = None

    #: More about the error, safe to show, sent beside ``code`` and ``message``.
    details: dict[str, object] | None = None

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvoiceRuleError(InvoicingError):
    """An order cannot be invoiced; ``code`` says why (recorded per batch item)."""

    code = "invoice_rule"


class BadRequest(InvoicingError):
    """The client sent something malformed; nothing was written."""

    code = "invalid_request"


class NotFound(InvoicingError):
    """The thing does not exist, or belongs to another organization (never revealed).

    Each resource's answer is built by one constructor here, a new exception at each raise, so
    that a missing, a foreign and a malformed id get the same code and message on every path
    (REST, WebSocket, pages).
    """

    code = "not_found"

    @classmethod
    def job(cls) -> NotFound:
        return cls("Batch job not found.", code="job_not_found")

    @classmethod
    def invoice(cls) -> NotFound:
        return cls("Invoice not found.", code="invoice_not_found")

    @classmethod
    def token(cls) -> NotFound:
        return cls("API token not found.", code="token_not_found")

    @classmethod
    def webhook(cls) -> NotFound:
        return cls("Webhook endpoint not found.", code="webhook_not_found")

    @classmethod
    def webhook_delivery(cls) -> NotFound:
        return cls("Webhook delivery not found.", code="webhook_delivery_not_found")


class Conflict(InvoicingError):
    """The request is valid but the current state forbids it (e.g. cancel a finished job)."""

    code = "conflict"


class OrderLocked(Conflict):
    """Someone else (an ERP, a batch job) holds the order's row lock longer than we wait for it."""

    code = "order_locked"
    retry_after = 2

    def __init__(self, message: str = "The order is being changed elsewhere; try again in a moment.") -> None:
        super().__init__(message)


class OrdersInActiveJob(Conflict):
    """A batch names orders that a pending or processing job still holds; nothing was created."""

    code = "orders_in_active_job"

    @classmethod
    def holding(cls, held: Mapping[UUID, UUID]) -> OrdersInActiveJob:
        """From order id → the job holding it: the jobs, most orders first."""
        per_job = Counter(str(job_id) for job_id in held.values())
        return cls(dict(sorted(per_job.items(), key=lambda entry: (-entry[1], entry[0]))))

    def __init__(self, held: dict[str, int]) -> None:
        count = sum(held.values())
        jobs = len(held)
        super().__init__(
            f"{count} of these orders {'is' if count == 1 else 'are'} already in"
            f" {'a job' if jobs == 1 else f'{jobs} jobs'} still running; leave"
            f" {'it' if count == 1 else 'them'} out or wait until {'it ends' if jobs == 1 else 'they end'}."
        )
        self.details = {"count": count, "jobs": [{"id": job, "orders": n} for job, n in held.items()]}


class Unauthorized(InvoicingError):
    code = "unauthorized"


class Forbidden(InvoicingError):
    code = "forbidden"


class TooManyRequests(InvoicingError):
    """A limit was reached; nothing was done. ``retry_after`` is in seconds."""

    code = "rate_limited"

    retry_after: int

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


class ServiceUnavailable(InvoicingError):
    """A backing service (PostgreSQL) cannot be reached, or cannot serve this now; nothing changed."""

    code = "service_unavailable"
    retry_after = 5


class DatabaseBusy(ServiceUnavailable):
    """A wait for a lock (or for our turn to take one) ran out; the same request may pass soon."""

    code = "database_busy"
    retry_after = 2


class DatabaseTimeout(ServiceUnavailable):
    """A statement ran longer than ``DB_STATEMENT_TIMEOUT_SECONDS`` and was cancelled."""

    code = "database_timeout"
    retry_after = 10


class ConfigurationError(InvoicingError):
    """A setting from the environment is missing or malformed."""

    code = "configuration_error"
