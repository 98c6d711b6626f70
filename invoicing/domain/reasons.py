"""Words for the stable codes a failed order or job carries (the codes stay in the API and the
emails; people read these). ``web/static/reasons.js`` holds the same table for the browser;
``tests/unit/test_reasons.py`` keeps the two equal."""

from __future__ import annotations

REASON_WORDS: dict[str, str] = {
    "order_not_found": "Order not found",
    "order_not_confirmed": "Order not confirmed",
    "already_invoiced": "Already invoiced",
    "no_lines": "Order has no lines",
    "invalid_line": "Invalid order line",
    "missing_billing_info": "Customer billing details missing",
    "currency_mismatch": "Currency differs from the customer's",
    "amount_out_of_range": "Amount too large for an invoice",
    "order_locked": "Order busy elsewhere",
    "storage_rejected": "Refused by the database",
    "processing_error": "Processing error",
    "worker_crashed": "Worker stopped unexpectedly",
    "database_error": "Database unavailable",
    "internal_error": "Internal error",
    "job_failed": "Job failed",
    "cancelled": "Cancelled",
}


def reason_label(code: str) -> str:
    """The words for ``code``; an unknown code, made readable (``customer_blocked``: "Customer blocked")."""
    if not code:
        return ""
    found = REASON_WORDS.get(code)
    if found is not None:
        return found
    text = code.replace("_", " ")
    return text[:1].upper() + text[1:]
