"""Specification of when a sales order can be invoiced and how its invoice draft adds up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from invoicing.domain.invoice_rules import INVOICE_ERROR_CODES, INVOICE_NUMBER_PREFIX, format_invoice_number
from invoicing.domain.models import Customer, SalesOrder
from tests.unit.invoice_factories import (
    CUSTOMER_ID,
    ISSUE_DATE,
    ORDER_ID,
    build,
    draft_with_lines,
    lines_of,
    make_customer,
    make_line,
    make_order,
    refusal,
)

# --- invoice numbers -------------------------------------------------------------------------


def test_invoice_number_prefix_is_inv() -> None:
    assert INVOICE_NUMBER_PREFIX == "INV"


@pytest.mark.parametrize(
    ("year", "sequence", "expected"),
    [
        (2026, 1, "INV-2026-000001"),
        (2026, 123, "INV-2026-000123"),
        (2026, 999_999, "INV-2026-999999"),
        (2027, 1_234_567, "INV-2027-1234567"),
    ],
)
def test_invoice_number_pads_the_sequence_to_six_digits(year: int, sequence: int, expected: str) -> None:
    assert format_invoice_number(year, sequence) == expected


@pytest.mark.parametrize("sequence", [0, -1])
def test_invoice_number_refuses_a_sequence_below_one(sequence: int) -> None:
    with pytest.raises(ValueError, match="sequence"):
        format_invoice_number(2026, sequence)


@pytest.mark.parametrize("year", [0, -2026, 10_000])
def test_invoice_number_refuses_a_year_without_four_digits(year: int) -> None:
    with pytest.raises(ValueError, match="year"):
        format_invoice_number(year, 1)


# --- refusals --------------------------------------------------------------------------------


def test_error_codes_are_listed_in_check_order() -> None:
    assert INVOICE_ERROR_CODES == (
        "order_not_found",
        "order_not_confirmed",
        "already_invoiced",
        "no_lines",
        "invalid_line",
        "missing_billing_info",
        "currency_mismatch",
        "amount_out_of_range",
    )


def test_a_missing_order_is_not_found_without_details() -> None:
    error = refusal(None, make_customer())

    assert error.code == "order_not_found"
    assert error.message == "Sales order not found."


@pytest.mark.parametrize("status", ["draft", "cancelled"])
def test_only_confirmed_orders_can_be_invoiced(status: str) -> None:
    error = refusal(make_order(status=status), make_customer())

    assert error.code == "order_not_confirmed"
    assert error.message == f"Sales order SO-000012 is {status}; only confirmed orders can be invoiced."


def test_an_order_is_invoiced_only_once() -> None:
    error = refusal(make_order(), make_customer(), already_invoiced=True)

    assert error.code == "already_invoiced"
    assert "SO-000012" in error.message


def test_an_order_without_lines_cannot_be_invoiced() -> None:
    error = refusal(make_order(lines=()), make_customer())

    assert error.code == "no_lines"
    assert "SO-000012" in error.message


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"description": ""}, "description must not be empty"),
        ({"description": " \t\n"}, "description must not be empty"),
        ({"quantity": Decimal("0")}, "quantity must be greater than zero"),
        ({"quantity": Decimal("-1")}, "quantity must be greater than zero"),
        ({"unit_price": Decimal("-0.01")}, "unit price must not be negative"),
        ({"discount_percent": Decimal("-0.01")}, "discount must be between 0 and 100 percent"),
        ({"discount_percent": Decimal("100.01")}, "discount must be between 0 and 100 percent"),
        ({"tax_rate_percent": Decimal("-1")}, "tax rate must be between 0 and 100 percent"),
        ({"tax_rate_percent": Decimal("100.5")}, "tax rate must be between 0 and 100 percent"),
        ({"quantity": Decimal("NaN")}, "quantity must be a finite number"),
        ({"unit_price": Decimal("Infinity")}, "unit price must be a finite number"),
        ({"discount_percent": Decimal("sNaN")}, "discount must be a finite number"),
        ({"tax_rate_percent": Decimal("-Infinity")}, "tax rate must be a finite number"),
    ],
)
def test_an_invalid_line_is_refused_with_its_position_and_problem(
    overrides: dict[str, Any], problem: str
) -> None:
    order = make_order(lines=lines_of(make_line(), make_line(**overrides)))

    error = refusal(order, make_customer())

    assert error.code == "invalid_line"
    assert error.message == f"Line 2: {problem}."


def test_a_non_finite_number_is_reported_before_a_range_problem() -> None:
    line = make_line(quantity=Decimal("-1"), unit_price=Decimal("NaN"))

    error = refusal(make_order(lines=(line,)), make_customer())

    assert error.message == "Line 1: unit price must be a finite number."


def test_the_first_invalid_line_by_position_is_reported() -> None:
    lines = (
        make_line(position=3, quantity=Decimal("0")),
        make_line(position=1),
        make_line(position=2, description=""),
    )

    error = refusal(make_order(lines=lines), make_customer())

    assert error.message == "Line 2: description must not be empty."


@pytest.mark.parametrize(
    "overrides",
    [
        {"unit_price": Decimal("0")},
        {"discount_percent": Decimal("0")},
        {"discount_percent": Decimal("100")},
        {"tax_rate_percent": Decimal("0")},
        {"tax_rate_percent": Decimal("100")},
        {"quantity": Decimal("0.0001")},
    ],
)
def test_boundary_values_are_valid(overrides: dict[str, Any]) -> None:
    draft = draft_with_lines(make_line(**overrides))

    assert len(draft.lines) == 1


def test_an_order_without_a_customer_misses_billing_info() -> None:
    error = refusal(make_order(), None)

    assert error.code == "missing_billing_info"


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"billing_name": None}, "billing name"),
        ({"billing_address": "   "}, "billing address"),
        ({"billing_email": ""}, "billing email"),
        ({"billing_address": None, "billing_email": " "}, "billing address, billing email"),
        (
            {"billing_name": "", "billing_address": None, "billing_email": None},
            "billing name, billing address, billing email",
        ),
    ],
)
def test_missing_billing_fields_are_named(overrides: dict[str, Any], missing: str) -> None:
    error = refusal(make_order(), make_customer(**overrides))

    assert error.code == "missing_billing_info"
    assert error.message == f"Customer Acme has no {missing}."


def test_order_and_customer_currencies_must_match() -> None:
    error = refusal(make_order(currency="EUR"), make_customer(currency="USD"))

    assert error.code == "currency_mismatch"
    assert error.message == "Sales order SO-000012 is in EUR but customer Acme is billed in USD."


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "E1R"])
def test_the_currency_must_be_a_valid_code(currency: str) -> None:
    error = refusal(make_order(currency=currency), make_customer(currency=currency))

    assert error.code == "currency_mismatch"


@dataclass(frozen=True)
class Attempt:
    order: SalesOrder | None
    customer: Customer | None
    already_invoiced: bool


def _break_currency(attempt: Attempt) -> Attempt:
    return replace(attempt, customer=replace(make_customer(), currency="USD"))


def _break_billing(attempt: Attempt) -> Attempt:
    assert attempt.customer is not None
    return replace(attempt, customer=replace(attempt.customer, billing_email=None))


def _break_lines(attempt: Attempt) -> Attempt:
    return replace(attempt, order=make_order(lines=(make_line(quantity=Decimal("0")),)))


def _remove_lines(attempt: Attempt) -> Attempt:
    assert attempt.order is not None
    return replace(attempt, order=replace(attempt.order, lines=()))


def _invoice_already(attempt: Attempt) -> Attempt:
    return replace(attempt, already_invoiced=True)


def _unconfirm(attempt: Attempt) -> Attempt:
    assert attempt.order is not None
    return replace(attempt, order=replace(attempt.order, status="draft"))


def _lose_order(attempt: Attempt) -> Attempt:
    return replace(attempt, order=None)


# One breaker per error code, in the order of INVOICE_ERROR_CODES.
BREAKERS: tuple[Callable[[Attempt], Attempt], ...] = (
    _lose_order,
    _unconfirm,
    _invoice_already,
    _remove_lines,
    _break_lines,
    _break_billing,
    _break_currency,
)


@pytest.mark.parametrize("first_broken", range(len(BREAKERS)))
def test_the_first_failed_check_wins(first_broken: int) -> None:
    # Break this rule and every later one: only this rule's code may come out.
    attempt = Attempt(make_order(), make_customer(), already_invoiced=False)
    for breaker in reversed(BREAKERS[first_broken:]):
        attempt = breaker(attempt)

    error = refusal(attempt.order, attempt.customer, already_invoiced=attempt.already_invoiced)

    assert error.code == INVOICE_ERROR_CODES[first_broken]


# --- the draft -------------------------------------------------------------------------------


def test_draft_copies_order_customer_and_dates() -> None:
    draft = build()

    assert draft.sales_order_id == ORDER_ID
    assert draft.customer_id == CUSTOMER_ID
    assert draft.currency == "EUR"
    assert draft.issue_date == ISSUE_DATE


def test_billing_fields_are_copied_stripped() -> None:
    customer = make_customer(
        billing_name="  Acme GmbH ", billing_address="\nHauptstraße 1 ", billing_email=" a@acme.example\t"
    )

    draft = build(customer=customer)

    assert (draft.billing_name, draft.billing_address, draft.billing_email) == (
        "Acme GmbH",
        "Hauptstraße 1",
        "a@acme.example",
    )


@pytest.mark.parametrize(
    ("issue_date", "terms", "due_date"),
    [
        (date(2026, 3, 15), 30, date(2026, 4, 14)),
        (date(2026, 1, 31), 30, date(2026, 3, 2)),
        (date(2026, 12, 20), 14, date(2027, 1, 3)),
        (date(2026, 3, 15), 0, date(2026, 3, 15)),
    ],
)
def test_due_date_is_issue_date_plus_payment_terms(issue_date: date, terms: int, due_date: date) -> None:
    draft = build(customer=make_customer(payment_terms_days=terms), issue_date=issue_date)

    assert draft.due_date == due_date


def test_line_drafts_copy_the_order_lines() -> None:
    line = make_line(
        position=7,
        description="Consulting",
        quantity=Decimal("2.5"),
        unit_price=Decimal("80.00"),
        discount_percent=Decimal("10"),
        tax_rate_percent=Decimal("19"),
    )

    (drafted,) = build(make_order(lines=(line,))).lines

    assert (drafted.position, drafted.description) == (7, "Consulting")
    assert drafted.quantity == Decimal("2.5")
    assert drafted.unit_price == Decimal("80.00")
    assert drafted.discount_percent == Decimal("10")
    assert drafted.tax_rate_percent == Decimal("19")


def test_lines_are_in_position_order() -> None:
    lines = (make_line(position=3), make_line(position=1), make_line(position=2))

    draft = build(make_order(lines=lines))

    assert [line.position for line in draft.lines] == [1, 2, 3]


def test_net_amount_is_quantity_times_unit_price() -> None:
    draft = draft_with_lines(make_line(quantity=Decimal("3"), unit_price=Decimal("19.99")))

    assert str(draft.lines[0].net_amount) == "59.97"


def test_discount_reduces_the_net_amount() -> None:
    line = make_line(quantity=Decimal("3"), unit_price=Decimal("10.00"), discount_percent=Decimal("15"))

    draft = draft_with_lines(line)

    assert str(draft.lines[0].net_amount) == "25.50"


def test_full_discount_makes_a_free_line() -> None:
    draft = draft_with_lines(make_line(discount_percent=Decimal("100")))

    assert str(draft.lines[0].net_amount) == "0.00"
    assert str(draft.total) == "0.00"


def test_net_amount_rounds_half_up() -> None:
    draft = draft_with_lines(make_line(quantity=Decimal("1"), unit_price=Decimal("0.005")))

    assert str(draft.lines[0].net_amount) == "0.01"


def test_discounted_net_amount_rounds_half_up() -> None:
    line = make_line(quantity=Decimal("1"), unit_price=Decimal("0.10"), discount_percent=Decimal("5"))

    draft = draft_with_lines(line)

    assert str(draft.lines[0].net_amount) == "0.10"


def test_each_line_is_rounded_before_the_subtotal() -> None:
    half_cent_line = make_line(unit_price=Decimal("0.125"), tax_rate_percent=Decimal("0"))

    draft = draft_with_lines(half_cent_line, half_cent_line)

    # Summing first would give 0.25.
    assert str(draft.subtotal) == "0.26"


def test_zero_decimal_currency_rounds_to_whole_units() -> None:
    line = make_line(quantity=Decimal("1"), unit_price=Decimal("2.5"), tax_rate_percent=Decimal("10"))

    draft = draft_with_lines(line, currency="JPY")

    assert str(draft.lines[0].net_amount) == "3"
    assert str(draft.subtotal) == "3"
    assert str(draft.tax_total) == "0"
    assert str(draft.total) == "3"


def test_three_decimal_currency_rounds_to_fils() -> None:
    line = make_line(quantity=Decimal("1"), unit_price=Decimal("1.2345"), tax_rate_percent=Decimal("5"))

    draft = draft_with_lines(line, currency="KWD")

    assert str(draft.lines[0].net_amount) == "1.235"
    # 5 % of 1.235 is 0.06175.
    assert str(draft.tax_total) == "0.062"
    assert str(draft.total) == "1.297"


def test_tax_is_computed_once_per_rate_not_per_line() -> None:
    nickel = make_line(unit_price=Decimal("0.05"), tax_rate_percent=Decimal("10"))

    draft = draft_with_lines(nickel, nickel, nickel)

    # Per line, 0.005 would round up three times to 0.03; per rate, 0.015 rounds to 0.02.
    (tax,) = draft.taxes
    assert (str(tax.base), str(tax.tax)) == ("0.15", "0.02")
    assert str(draft.tax_total) == "0.02"


def test_taxes_are_grouped_by_rate_and_sorted_ascending() -> None:
    draft = draft_with_lines(
        make_line(unit_price=Decimal("100.00"), tax_rate_percent=Decimal("20")),
        make_line(unit_price=Decimal("50.00"), tax_rate_percent=Decimal("7")),
        make_line(unit_price=Decimal("10.00"), tax_rate_percent=Decimal("20")),
        make_line(unit_price=Decimal("5.00"), tax_rate_percent=Decimal("0")),
    )

    summary = [(str(t.rate_percent), str(t.base), str(t.tax)) for t in draft.taxes]
    assert summary == [("0", "5.00", "0.00"), ("7", "50.00", "3.50"), ("20", "110.00", "22.00")]


def test_equal_rates_written_differently_share_one_tax() -> None:
    draft = draft_with_lines(
        make_line(tax_rate_percent=Decimal("20")), make_line(tax_rate_percent=Decimal("20.00"))
    )

    (tax,) = draft.taxes
    assert str(tax.base) == "20.00"
    assert str(tax.tax) == "4.00"


def test_totals_add_up() -> None:
    draft = draft_with_lines(
        make_line(quantity=Decimal("2"), unit_price=Decimal("49.99"), tax_rate_percent=Decimal("19")),
        make_line(quantity=Decimal("1"), unit_price=Decimal("12.50"), tax_rate_percent=Decimal("7")),
    )

    # 19 % of 99.98 = 18.9962; 7 % of 12.50 = 0.875.
    assert str(draft.subtotal) == "112.48"
    assert str(draft.tax_total) == "19.88"
    assert str(draft.total) == "132.36"


def test_a_negative_zero_price_gives_a_plain_zero() -> None:
    draft = draft_with_lines(make_line(unit_price=Decimal("-0")))

    assert str(draft.lines[0].net_amount) == "0.00"
    assert str(draft.taxes[0].tax) == "0.00"


def test_amounts_beyond_the_database_columns_are_refused_with_the_exact_total() -> None:
    line = make_line(
        quantity=Decimal("99999999999999.9999"),
        unit_price=Decimal("99999999999999.9999"),
        tax_rate_percent=Decimal("0"),
    )

    error = refusal(make_order(lines=lines_of(line)), make_customer())

    assert error.code == "amount_out_of_range"
    # The exact product is 9999999999999999980000000000.00000001: not rounded to 28 digits.
    assert "totals 9999999999999999980000000000.00 EUR" in error.message
    assert "at most 99999999999999.99 EUR" in error.message


def test_a_price_whose_tax_overflows_the_total_is_refused() -> None:
    # The order that made a whole batch loop: its net fits the column, its total does not.
    line = make_line(
        quantity=Decimal("1"), unit_price=Decimal("99999999999999"), tax_rate_percent=Decimal("20")
    )

    assert refusal(make_order(lines=lines_of(line)), make_customer()).code == "amount_out_of_range"


def test_the_largest_total_a_column_holds_is_invoiced() -> None:
    line = make_line(
        quantity=Decimal("1"), unit_price=Decimal("99999999999999.99"), tax_rate_percent=Decimal("0")
    )

    assert str(draft_with_lines(line).total) == "99999999999999.99"
    bigger = make_line(
        quantity=Decimal("1"), unit_price=Decimal("99999999999999.995"), tax_rate_percent=Decimal("0")
    )
    assert refusal(make_order(lines=lines_of(bigger)), make_customer()).code == "amount_out_of_range"


def test_the_limit_holds_in_every_currency_exponent() -> None:
    for currency, price in (
        ("JPY", "99999999999999"),
        ("KWD", "99999999999999.999"),
        ("CLF", "99999999999999.9999"),
    ):
        line = make_line(quantity=Decimal("1"), unit_price=Decimal(price), tax_rate_percent=Decimal("0"))
        order = make_order(currency=currency, lines=lines_of(line))
        draft = build(order, make_customer(currency=currency))
        assert str(draft.total) == price
