"""Pure rules that turn a sales order into an invoice draft, or say why it cannot be invoiced."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from invoicing.domain.models import (
    Customer,
    InvoiceDraft,
    InvoiceLineDraft,
    OrderLine,
    SalesOrder,
    TaxAmount,
)
from invoicing.domain.money import exact_arithmetic, is_valid_currency, money_quantum, round_to
from invoicing.kernel.errors import InvoiceRuleError

INVOICE_NUMBER_PREFIX = "INV"

ORDER_NOT_FOUND = "order_not_found"
ORDER_NOT_CONFIRMED = "order_not_confirmed"
ALREADY_INVOICED = "already_invoiced"
NO_LINES = "no_lines"
INVALID_LINE = "invalid_line"
MISSING_BILLING_INFO = "missing_billing_info"
CURRENCY_MISMATCH = "currency_mismatch"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"

# In the order ``build_invoice_draft`` checks them: the first failure is the one reported.
INVOICE_ERROR_CODES: tuple[str, ...] = (
    ORDER_NOT_FOUND,
    ORDER_NOT_CONFIRMED,
    ALREADY_INVOICED,
    NO_LINES,
    INVALID_LINE,
    MISSING_BILLING_INFO,
    CURRENCY_MISMATCH,
    AMOUNT_OUT_OF_RANGE,
)

#: Invoice amounts are stored as numeric(18, 4): at most 14 digits before the point. Every
#: amount is non-negative and none exceeds the total, so the total is the one to check.
MAX_AMOUNT = Decimal(10) ** 14

_INVOICEABLE_STATUS = "confirmed"
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_NUMBER_NAMES = ("quantity", "unit price", "discount", "tax rate")


def format_invoice_number(year: int, sequence: int) -> str:
    """Return the invoice number for ``sequence`` in ``year``, e.g. ``INV-2026-000123``.

    The sequence is zero-padded to six digits and grows past them when it has to.
    """
    if not 1 <= year <= 9999:
        raise ValueError(f"year out of range: {year}")
    if sequence < 1:
        raise ValueError(f"invoice sequence must be positive: {sequence}")
    return f"{INVOICE_NUMBER_PREFIX}-{year:04d}-{sequence:06d}"


def order_not_found() -> InvoiceRuleError:
    """A missing order, another organization's, or (at the edge) a malformed id: one answer for
    all three, a rule error so that a batch records it on the order's item (404 over HTTP)."""
    return InvoiceRuleError("Sales order not found.", code=ORDER_NOT_FOUND)


def build_invoice_draft(
    order: SalesOrder | None,
    customer: Customer | None,
    *,
    already_invoiced: bool,
    issue_date: date,
) -> InvoiceDraft:
    """Check that ``order`` can be invoiced to ``customer`` and compute the invoice draft.

    Pass ``None`` for an order that does not exist or belongs to another organization: both
    get the same ``order_not_found`` answer. Raises ``InvoiceRuleError`` with the code of the
    first failed check, in the order of ``INVOICE_ERROR_CODES``.

    Each line's net is rounded half-up to the currency's minor unit; tax is computed once per
    rate on the sum of that rate's nets, so the invoice shows one rounding per rate.
    """
    if order is None:
        raise order_not_found()
    _check_order(order, already_invoiced=already_invoiced)
    lines = tuple(sorted(order.lines, key=_position))
    _check_lines(lines)
    if customer is None:
        raise InvoiceRuleError("The order's customer has no billing information.", code=MISSING_BILLING_INFO)
    billing_name, billing_address, billing_email = _billing_details(customer)
    _check_currency(order, customer)

    currency = order.currency
    amounts = invoice_amounts(lines, currency)
    total = amounts.total
    if total >= MAX_AMOUNT:
        raise InvoiceRuleError(
            f"Sales order {order.number} totals {total} {currency}; an invoice can hold at most"
            f" {MAX_AMOUNT - money_quantum(currency)} {currency}.",
            code=AMOUNT_OUT_OF_RANGE,
        )

    return InvoiceDraft(
        sales_order_id=order.id,
        customer_id=customer.id,
        billing_name=billing_name,
        billing_address=billing_address,
        billing_email=billing_email,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=customer.payment_terms_days),
        currency=currency,
        lines=amounts.lines,
        taxes=amounts.taxes,
        subtotal=amounts.subtotal,
        tax_total=amounts.tax_total,
        total=total,
    )


@dataclass(frozen=True, slots=True)
class InvoiceAmounts:
    lines: tuple[InvoiceLineDraft, ...]
    taxes: tuple[TaxAmount, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


def invoice_amounts(lines: Sequence[OrderLine], currency: str) -> InvoiceAmounts:
    """The amounts of an invoice of valid ``lines`` (sorted by position) in ``currency``.

    The one formula for money: the invoice is built with it, and every total a person sees
    before there is an invoice (the order list, a selection's sum) comes from it too.
    """
    quantum = money_quantum(currency)
    with exact_arithmetic():
        line_drafts = tuple([_line_draft(line, quantum) for line in lines])
        taxes = _taxes_per_rate(line_drafts, quantum)
        subtotal = _money_sum([line.net_amount for line in line_drafts], quantum)
        tax_total = _money_sum([tax.tax for tax in taxes], quantum)
        total = round_to(subtotal + tax_total, quantum)
    return InvoiceAmounts(line_drafts, taxes, subtotal, tax_total, total)


def order_total(order: SalesOrder) -> Decimal | None:
    """The total the order's invoice will have, or None while its lines or currency cannot be
    invoiced (no lines, an invalid line, an unknown currency) or no invoice could hold it
    (``amount_out_of_range``).

    What else may still refuse the invoice (the customer's billing details, a currency that
    differs from the customer's) does not change its amount.
    """
    if not order.lines or not is_valid_currency(order.currency):
        return None
    lines = tuple(sorted(order.lines, key=_position))
    if any(_line_problem(line) is not None for line in lines):
        return None
    total = invoice_amounts(lines, order.currency).total
    return None if total >= MAX_AMOUNT else total


def _check_order(order: SalesOrder, *, already_invoiced: bool) -> None:
    if order.status != _INVOICEABLE_STATUS:
        raise InvoiceRuleError(
            f"Sales order {order.number} is {order.status}; only confirmed orders can be invoiced.",
            code=ORDER_NOT_CONFIRMED,
        )
    if already_invoiced:
        raise InvoiceRuleError(
            f"Sales order {order.number} has already been invoiced.", code=ALREADY_INVOICED
        )
    if not order.lines:
        raise InvoiceRuleError(f"Sales order {order.number} has no lines.", code=NO_LINES)


def _check_lines(lines: Iterable[OrderLine]) -> None:
    for line in lines:
        problem = _line_problem(line)
        if problem is not None:
            raise InvoiceRuleError(f"Line {line.position}: {problem}.", code=INVALID_LINE)


def _line_problem(line: OrderLine) -> str | None:
    """Describe the first thing wrong with ``line``, or return ``None`` if it can be invoiced."""
    if not line.description.strip():
        return "description must not be empty"
    quantity, unit_price = line.quantity, line.unit_price
    discount, tax_rate = line.discount_percent, line.tax_rate_percent
    # Checked first: comparing a NaN raises InvalidOperation instead of answering.
    if not (
        quantity.is_finite() and unit_price.is_finite() and discount.is_finite() and tax_rate.is_finite()
    ):
        numbers = (quantity, unit_price, discount, tax_rate)
        name = next(name for name, value in zip(_NUMBER_NAMES, numbers, strict=True) if not value.is_finite())
        return f"{name} must be a finite number"
    # Against Decimal constants: comparing a Decimal with an int converts the int every time
    # (this runs for every line of every order, in the worker and in the order list).
    if quantity <= _ZERO:
        return "quantity must be greater than zero"
    if unit_price < _ZERO:
        return "unit price must not be negative"
    if not _ZERO <= discount <= _HUNDRED:
        return "discount must be between 0 and 100 percent"
    if not _ZERO <= tax_rate <= _HUNDRED:
        return "tax rate must be between 0 and 100 percent"
    return None


def _position(line: OrderLine) -> int:
    return line.position


def _billing_details(customer: Customer) -> tuple[str, str, str]:
    """Return the stripped billing name, address and email, or refuse if any is blank."""
    fields = {
        "billing name": (customer.billing_name or "").strip(),
        "billing address": (customer.billing_address or "").strip(),
        "billing email": (customer.billing_email or "").strip(),
    }
    missing = [label for label, value in fields.items() if not value]
    if missing:
        raise InvoiceRuleError(
            f"Customer {customer.name} has no {', '.join(missing)}.", code=MISSING_BILLING_INFO
        )
    return fields["billing name"], fields["billing address"], fields["billing email"]


def _check_currency(order: SalesOrder, customer: Customer) -> None:
    if order.currency != customer.currency:
        raise InvoiceRuleError(
            f"Sales order {order.number} is in {order.currency} but customer {customer.name}"
            f" is billed in {customer.currency}.",
            code=CURRENCY_MISMATCH,
        )
    if not is_valid_currency(order.currency):
        raise InvoiceRuleError(
            f"Sales order {order.number} has an invalid currency code {order.currency!r}.",
            code=CURRENCY_MISMATCH,
        )


def _line_draft(line: OrderLine, quantum: Decimal) -> InvoiceLineDraft:
    gross = line.quantity * line.unit_price
    net = round_to(_percent_of(gross, _HUNDRED - line.discount_percent), quantum)
    return InvoiceLineDraft(
        position=line.position,
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        discount_percent=line.discount_percent,
        tax_rate_percent=line.tax_rate_percent,
        net_amount=_unsigned(net),
    )


def _taxes_per_rate(lines: Iterable[InvoiceLineDraft], quantum: Decimal) -> tuple[TaxAmount, ...]:
    # Decimal("20") and Decimal("20.00") are equal and hash alike, so they share one group;
    # the group keeps the spelling of its first line.
    bases: dict[Decimal, list[Decimal]] = {}
    for line in lines:
        bases.setdefault(line.tax_rate_percent, []).append(line.net_amount)
    taxes = []
    for rate in sorted(bases):
        base = _money_sum(bases[rate], quantum)
        tax = round_to(_percent_of(base, rate), quantum)
        taxes.append(TaxAmount(rate_percent=rate, base=base, tax=_unsigned(tax)))
    return tuple(taxes)


def _percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    # scaleb shifts the exponent, so dividing by 100 never rounds.
    return (amount * percent).scaleb(-2)


def _money_sum(amounts: Iterable[Decimal], quantum: Decimal) -> Decimal:
    return round_to(sum(amounts, _ZERO), quantum)


def _unsigned(amount: Decimal) -> Decimal:
    # Inputs are validated non-negative, so this only turns a signed zero (a unit price of
    # Decimal("-0") passes the "not negative" check) into a plain 0.00 on the invoice.
    return amount.copy_abs()
