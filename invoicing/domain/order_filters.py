"""Which orders a list shows or a batch takes: one filter for the order list's query string
and a batch's ``{"filter": ...}``, validated in one place."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from invoicing.kernel.errors import BadRequest

ORDER_STATUSES = ("draft", "confirmed", "cancelled")
#: Month-end filters, beside ``status`` and ``invoiced``.
PERIOD_FIELDS = ("order_date_from", "order_date_to", "customer_id", "currency")
FILTER_FIELDS = ("status", "invoiced", *PERIOD_FIELDS)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Za-z]{3}", re.ASCII)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Each field None means "any"; a date range includes both ends."""

    status: str | None = None
    invoiced: bool | None = None
    order_date_from: date | None = None
    order_date_to: date | None = None
    customer_id: UUID | None = None
    currency: str | None = None

    def to_json(self) -> dict[str, object]:
        """The fields that are set, as the JSON a batch's ``filter`` accepts."""
        values: dict[str, object] = {"status": self.status, "invoiced": self.invoiced}
        if self.order_date_from is not None:
            values["order_date_from"] = self.order_date_from.isoformat()
        if self.order_date_to is not None:
            values["order_date_to"] = self.order_date_to.isoformat()
        if self.customer_id is not None:
            values["customer_id"] = str(self.customer_id)
        if self.currency is not None:
            values["currency"] = self.currency
        return {name: value for name, value in values.items() if value is not None}


#: What a batch's filter selects when a field is left out: the orders still to invoice.
BATCH_DEFAULTS = OrderFilter(status="confirmed", invoiced=False)


def parse_order_filter(
    values: Mapping[str, object], *, defaults: OrderFilter, refuse: Callable[[str], BadRequest]
) -> OrderFilter:
    """A filter from decoded values (JSON, or a query string's strings with ``invoiced`` made a
    bool by the caller); a field left out keeps its default. ``refuse(message)`` makes the error
    a bad value raises, so each edge keeps its code."""
    fields: dict[str, Any] = {name: getattr(defaults, name) for name in FILTER_FIELDS}
    for name, raw in values.items():
        if raw is None and name in PERIOD_FIELDS:
            continue
        fields[name] = _field(name, raw, refuse)
    found = OrderFilter(**fields)
    if found.order_date_from and found.order_date_to and found.order_date_from > found.order_date_to:
        raise refuse("order_date_from must not be after order_date_to.")
    return found


def _field(name: str, raw: object, refuse: Callable[[str], BadRequest]) -> object:
    if name == "status":
        if raw not in ORDER_STATUSES:
            raise refuse("status must be draft, confirmed or cancelled.")
        return raw
    if name == "invoiced":
        if not isinstance(raw, bool):
            raise refuse("invoiced must be true or false.")
        return raw
    if name in ("order_date_from", "order_date_to"):
        return _date(name, raw, refuse)
    if name == "customer_id":
        if not isinstance(raw, str) or _UUID.fullmatch(raw) is None:
            raise refuse("customer_id must be a UUID.")
        return UUID(raw)
    if name == "currency":
        if not isinstance(raw, str) or _CURRENCY.fullmatch(raw) is None:
            raise refuse("currency must be a three-letter code such as EUR.")
        return raw.upper()
    raise refuse(f"Unknown filter field: {name[:40]!r}.")


def _date(name: str, raw: object, refuse: Callable[[str], BadRequest]) -> date:
    if isinstance(raw, str) and _DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise refuse(f"{name} must be a date written YYYY-MM-DD.")
