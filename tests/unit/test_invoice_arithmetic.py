"""Properties of the invoice arithmetic, for any valid order (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, localcontext
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.domain.invoice_rules import build_invoice_draft, order_total
from invoicing.domain.models import Customer, InvoiceDraft, SalesOrder
from invoicing.domain.money import minor_unit
from tests.unit.invoice_factories import ISSUE_DATE, lines_of, make_customer, make_line, make_order

# --- properties of the arithmetic ------------------------------------------------------------

CURRENCIES = ("EUR", "USD", "JPY", "KWD", "BHD")
COMMON_RATES = tuple(Decimal(rate) for rate in ("0", "5", "5.5", "7", "10", "19", "20", "21", "8.875"))


def _four_places(low: str, high: str) -> st.SearchStrategy[Decimal]:
    # numeric(18, 4) and numeric(7, 4) in the database: four decimals.
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=4, allow_nan=False, allow_infinity=False
    )


valid_lines = st.builds(
    make_line,
    description=st.sampled_from(["Widget", "Consulting", "  Shipping  "]),
    quantity=_four_places("0.0001", "100000"),
    unit_price=_four_places("0", "100000"),
    discount_percent=st.one_of(st.just(Decimal("0")), _four_places("0", "100")),
    tax_rate_percent=st.one_of(st.sampled_from(COMMON_RATES), _four_places("0", "100")),
)


@st.composite
def invoiceable(draw: st.DrawFn) -> tuple[SalesOrder, Customer]:
    currency = draw(st.sampled_from(CURRENCIES))
    lines = draw(st.lists(valid_lines, min_size=1, max_size=8))
    return make_order(currency=currency, lines=lines_of(*lines)), make_customer(currency=currency)


def exactly(amount: Decimal, percent: Decimal) -> Decimal:
    """``amount * percent / 100`` without rounding, computed independently of the code under test."""
    with localcontext() as context:
        context.prec = 100
        return amount * percent / 100


def half_minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency)) / 2


def draft_of(case: tuple[SalesOrder, Customer]) -> InvoiceDraft:
    order, customer = case
    return build_invoice_draft(order, customer, already_invoiced=False, issue_date=ISSUE_DATE)


properties = settings(max_examples=200, database=None)


@properties
@given(case=invoiceable())
def test_total_is_subtotal_plus_tax_total(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)

    assert draft.total == draft.subtotal + draft.tax_total


@properties
@given(case=invoiceable())
def test_subtotal_is_the_sum_of_line_nets(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)

    assert draft.subtotal == sum(line.net_amount for line in draft.lines)


@properties
@given(case=invoiceable())
def test_tax_total_is_the_sum_of_taxes_per_rate(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)

    assert draft.tax_total == sum(tax.tax for tax in draft.taxes)


@properties
@given(case=invoiceable())
def test_every_amount_has_the_currency_exponent(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)
    amounts = [draft.subtotal, draft.tax_total, draft.total]
    amounts += [line.net_amount for line in draft.lines]
    amounts += [amount for tax in draft.taxes for amount in (tax.base, tax.tax)]

    assert {amount.as_tuple().exponent for amount in amounts} == {-minor_unit(draft.currency)}


@properties
@given(case=invoiceable())
def test_each_net_is_within_half_a_minor_unit_of_the_exact_value(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)

    for line in draft.lines:
        exact = exactly(line.quantity * line.unit_price, 100 - line.discount_percent)
        assert abs(line.net_amount - exact) <= half_minor_unit(draft.currency)


@properties
@given(case=invoiceable())
def test_each_rate_taxes_the_sum_of_its_nets(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)

    assert [tax.rate_percent for tax in draft.taxes] == sorted(
        {line.tax_rate_percent for line in draft.lines}
    )
    for tax in draft.taxes:
        assert tax.base == sum(
            line.net_amount for line in draft.lines if line.tax_rate_percent == tax.rate_percent
        )
        assert abs(tax.tax - exactly(tax.base, tax.rate_percent)) <= half_minor_unit(draft.currency)


@properties
@given(case=invoiceable())
def test_valid_orders_never_produce_negative_amounts(case: tuple[SalesOrder, Customer]) -> None:
    draft = draft_of(case)
    amounts = [draft.subtotal, draft.tax_total, draft.total]
    amounts += [line.net_amount for line in draft.lines]
    amounts += [amount for tax in draft.taxes for amount in (tax.base, tax.tax)]

    assert all(amount >= 0 and not amount.is_signed() for amount in amounts)


# --- the total a person sees before there is an invoice ---------------------------------------


@properties
@given(case=invoiceable(), shuffled=st.randoms(use_true_random=False))
def test_the_order_total_shown_before_invoicing_is_the_invoice_total(
    case: tuple[SalesOrder, Customer], shuffled: Any
) -> None:
    order, customer = case
    # Lines may come in any order; both sort them by position.
    lines = list(order.lines)
    shuffled.shuffle(lines)

    assert order_total(replace(order, lines=tuple(lines))) == draft_of((order, customer)).total


@properties
@given(case=invoiceable())
def test_an_order_whose_lines_cannot_be_invoiced_has_no_total(case: tuple[SalesOrder, Customer]) -> None:
    order, _ = case
    broken = replace(order.lines[0], quantity=Decimal(0))

    assert order_total(replace(order, lines=(broken, *order.lines[1:]))) is None
    assert order_total(replace(order, lines=())) is None
    assert order_total(replace(order, currency="XYZ1")) is None
