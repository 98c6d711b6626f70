"""How values are written in the JSON every resource shares: times in ISO 8601, numbers as plain text."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


def iso_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def plain_number(number: Decimal) -> str:
    """A quantity or percentage without trailing zeros and never in exponent form."""
    return format(number.normalize(), "f")
