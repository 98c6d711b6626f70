"""Reusable pieces of the OpenAPI document: value schemas and the component schemas that
mirror the ``to_json()`` serializers of ``invoicing/records.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from invoicing.accounts.api_tokens import MAX_NAME_LENGTH as MAX_TOKEN_NAME_LENGTH
from invoicing.domain.job_states import ItemStatus, JobStatus
from invoicing.domain.order_filters import ORDER_STATUSES
from invoicing.kernel.settings import ENVIRONMENT

Schema = dict[str, Any]

DEFAULT_MAX_BATCH_SIZE = int(ENVIRONMENT["MAX_BATCH_SIZE"] or 100_000)

UUID: Schema = {"type": "string", "format": "uuid"}
NULLABLE_UUID: Schema = {"type": ["string", "null"], "format": "uuid"}
DATE: Schema = {"type": "string", "format": "date"}
INSTANT: Schema = {"type": "string", "format": "date-time"}
NULLABLE_INSTANT: Schema = {"type": ["string", "null"], "format": "date-time"}
COUNT: Schema = {"type": "integer", "minimum": 0}
TEXT: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
POSITION: Schema = {"type": "integer", "minimum": 1}
DECIMAL: Schema = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "A decimal number as a string (JSON numbers would lose cents).",
}
MONEY: Schema = {**DECIMAL, "description": "An amount with exactly the currency's minor digits."}
CURRENCY: Schema = {"type": "string", "minLength": 3, "maxLength": 3, "description": "ISO 4217 code."}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed_object(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties, all required but the ``optional`` ones."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def paged(item_schema: str, **extra: Schema) -> Schema:
    """A keyset page: ``{"items": [...], "next_cursor": ...}`` plus optional ``extra`` fields."""
    return closed_object(
        {
            "items": {"type": "array", "items": ref(item_schema)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
            **extra,
        },
        optional=tuple(extra),
    )


# --- components.schemas ---------------------------------------------------------------


def enum(values: Iterable[str], **extra: Any) -> Schema:
    return {"type": "string", "enum": [str(value) for value in values], **extra}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def account_schemas() -> dict[str, Schema]:
    token = {"id": UUID, "name": TEXT, "created_at": INSTANT, "last_used_at": NULLABLE_INSTANT}
    return {
        "Me": closed_object(
            {
                "user": closed_object({"id": UUID, "email": TEXT, "role": enum(["admin", "member"])}),
                "organization": closed_object({"id": UUID, "name": TEXT}),
            }
        ),
        "ApiToken": closed_object({**token, "revoked_at": NULLABLE_INSTANT}),
        "ApiTokenList": closed_object({"items": array(ref("ApiToken"))}),
        "TokenRequest": closed_object(
            {"name": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_NAME_LENGTH}}
        ),
        "CreatedToken": closed_object(
            {"token": {"type": "string", "description": "Shown this once."}, "item": ref("ApiToken")}
        ),
        "SweepResult": closed_object({"enqueued": COUNT, "resumed": COUNT, "failed": COUNT}),
        "Health": closed_object({"status": {"const": "ok"}}),
        "Readiness": closed_object(
            {"status": enum(["ok", "unavailable"]), "database": BOOLEAN, "redis": BOOLEAN}
        ),
    }


def job_schemas(max_batch_size: int) -> dict[str, Schema]:
    order_ids = array(UUID, minItems=1, maxItems=max_batch_size, description="Duplicates count once.")
    order_filter = closed_object(
        {
            "status": enum(ORDER_STATUSES, default="confirmed"),
            "invoiced": {"type": "boolean", "default": False},
            "order_date_from": {**DATE, "description": "Orders dated on or after this day."},
            "order_date_to": {**DATE, "description": "Orders dated on or before this day."},
            "customer_id": UUID,
            "currency": CURRENCY,
        },
        optional=("status", "invoiced", "order_date_from", "order_date_to", "customer_id", "currency"),
    )
    return {
        "BatchRequest": {
            "oneOf": [closed_object({"order_ids": order_ids}), closed_object({"filter": order_filter})]
        },
        "JobError": closed_object({"order_id": UUID, "code": TEXT, "message": TEXT}, optional=("order_id",)),
        "BatchJob": closed_object(
            {
                "id": UUID,
                "organization_id": UUID,
                "job_type": TEXT,
                "status": enum(JobStatus),
                "total_items": COUNT,
                "processed_items": COUNT,
                "successful_items": COUNT,
                "failed_items": COUNT,
                "cancelled_items": COUNT,
                "errors": array(ref("JobError"), description="A sample; every failure is in the items."),
                "created_at": INSTANT,
                "started_at": NULLABLE_INSTANT,
                "completed_at": NULLABLE_INSTANT,
                "created_by": UUID,
                "created_by_name": {
                    **TEXT,
                    "description": "Who started it, in words: their name, else their email; "
                    '"a former member" once they left the organization. Never an id.',
                },
                "cancel_requested": BOOLEAN,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "items_per_second": {"type": ["number", "null"], "minimum": 0},
                "eta_seconds": {"type": ["number", "null"], "minimum": 0},
                "seq": {"type": "integer", "description": "Grows with every change of the job."},
                "retry_of": {**NULLABLE_UUID, "description": "The finished job this one retries."},
                "retried_as": {**NULLABLE_UUID, "description": "The job that retried this one, if any."},
            }
        ),
        "BatchJobPage": paged("BatchJob"),
        "BatchJobItem": closed_object(
            {
                "position": POSITION,
                "order_id": UUID,
                "order_number": {"type": ["string", "null"]},
                "status": enum(ItemStatus),
                "invoice_id": NULLABLE_UUID,
                "invoice_number": {"type": ["string", "null"], "description": "The invoice created, if any."},
                "error": {"oneOf": [{"type": "null"}, closed_object({"code": TEXT, "message": TEXT})]},
                "processed_at": NULLABLE_INSTANT,
            }
        ),
        "BatchJobItemPage": paged("BatchJobItem"),
    }


def order_and_invoice_schemas() -> dict[str, Schema]:
    invoice = {
        "id": UUID,
        "number": {"type": "string", "examples": ["INV-2026-000123"]},
        "sales_order_id": UUID,
        "customer_id": UUID,
        "billing_name": TEXT,
        "billing_address": TEXT,
        "billing_email": TEXT,
        "issue_date": DATE,
        "due_date": DATE,
        "currency": CURRENCY,
        "subtotal": MONEY,
        "tax_total": MONEY,
        "total": MONEY,
        "taxes": array(ref("TaxAmount")),
        "created_by": UUID,
        "batch_job_id": NULLABLE_UUID,
        "created_at": INSTANT,
    }
    return {
        "SalesOrder": closed_object(
            {
                "id": UUID,
                "number": TEXT,
                "status": enum(ORDER_STATUSES),
                "customer_id": UUID,
                "customer_name": TEXT,
                "currency": CURRENCY,
                "order_date": DATE,
                "total": {
                    **MONEY,
                    "type": ["string", "null"],
                    "description": "Its invoice's total, or the total its invoice will have (the invoice "
                    "rules' arithmetic); null while its lines cannot be invoiced.",
                },
                "invoice_id": NULLABLE_UUID,
                "active_job_id": {
                    **NULLABLE_UUID,
                    "description": "The pending or processing job holding the order (no batch may take it).",
                },
            }
        ),
        "Customer": closed_object({"id": UUID, "name": TEXT, "currency": CURRENCY}),
        "CustomerPage": paged("Customer"),
        "SalesOrderPage": paged(
            "SalesOrder",
            total={**COUNT, "description": "With `include_total=true`: every matching order."},
            in_active_jobs={
                **COUNT,
                "description": "With `include_total=true`: how many of them running jobs hold "
                "(a filter batch leaves them out).",
            },
        ),
        "SalesOrderTotals": closed_object(
            {
                "currencies": array(closed_object({"currency": CURRENCY, "orders": COUNT, "total": MONEY})),
                "orders": {**COUNT, "description": "Orders a filter batch would take now."},
                "without_total": {**COUNT, "description": "Of those, orders whose lines cannot be invoiced."},
            }
        ),
        "TaxAmount": closed_object({"rate": TEXT, "base": TEXT, "tax": TEXT}),
        "InvoiceLine": closed_object(
            {
                "position": {"type": "integer"},
                "description": TEXT,
                "quantity": DECIMAL,
                "unit_price": DECIMAL,
                "discount_percent": DECIMAL,
                "tax_rate_percent": DECIMAL,
                "net_amount": MONEY,
            }
        ),
        # Lines only when one invoice is fetched (or created): a list leaves them out.
        "InvoiceSummary": closed_object(invoice),
        "Invoice": closed_object({**invoice, "lines": array(ref("InvoiceLine"))}),
        "InvoicePage": paged("InvoiceSummary"),
    }


def admin_schemas() -> dict[str, Schema]:
    nullable_count = {"type": ["number", "null"], "minimum": 0}
    return {
        "OperationalStats": closed_object(
            {
                "active": closed_object(
                    {
                        "pending": COUNT,
                        "processing": COUNT,
                        "stuck": COUNT,
                        "oldest_pending_seconds": nullable_count,
                    }
                ),
                "last_24h": closed_object(
                    {
                        "created": COUNT,
                        "completed": COUNT,
                        "failed": COUNT,
                        "cancelled": COUNT,
                        "items_succeeded": COUNT,
                        "items_failed": COUNT,
                        "orders_processed": COUNT,
                        "orders_invoiced": COUNT,
                        "success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    }
                ),
                "invoices_last_hour": COUNT,
                "error_patterns": array(
                    closed_object(
                        {
                            "code": TEXT,
                            "count": COUNT,
                            "last_seen": NULLABLE_INSTANT,
                            "example": {"type": ["string", "null"]},
                        }
                    )
                ),
                "stuck_jobs": array(
                    closed_object(
                        {"reason": enum(["lease_expired", "waiting_for_worker"]), "job": ref("BatchJob")}
                    )
                ),
            }
        ),
        "AuditEntry": closed_object(
            {
                "id": {**UUID, "description": "Random: it reveals nothing of other organizations' activity."},
                "created_at": INSTANT,
                "action": enum(["job_created", "job_cancel_requested", "job_retried"]),
                "job_id": NULLABLE_UUID,
                "user_email": {"type": ["string", "null"]},
                "detail": {"type": "object"},
            }
        ),
        "AuditEntryPage": paged("AuditEntry"),
    }


# --- parameters and responses ---------------------------------------------------------

#: The one error shape of ``server/errors.py``.
ERROR: Schema = closed_object(
    {
        "error": closed_object(
            {
                "code": {"type": "string", "description": "Stable, machine-readable."},
                "message": {"type": "string", "description": "Safe to show to a user."},
                "request_id": {"type": "string", "description": "Only on a 500; it is in the server log."},
                "count": {**COUNT, "description": "`orders_in_active_job`: how many of the orders are held."},
                "jobs": array(
                    closed_object({"id": UUID, "orders": COUNT}),
                    description="`orders_in_active_job`: the running jobs that hold them, and how many each.",
                ),
            },
            optional=("request_id", "count", "jobs"),
        )
    }
)
