"""How values are written in the JSON every resource shares: times in ISO 8601, numbers as
plain text; each with its schema."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from invoicing.kernel.json_schema import Schema

INSTANT: Schema = {"type": "string", "format": "date-time"}
NULLABLE_INSTANT: Schema = {"type": ["string", "null"], "format": "date-time"}


def iso_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


DECIMAL: Schema = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "A decimal number as a string (JSON numbers would lose cents).",
}


def plain_number(number: Decimal) -> str:
    """A quantity or percentage without trailing zeros and never in exponent form."""
    return format(number.normalize(), "f")
