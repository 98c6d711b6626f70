"""Specification of currency minor units, half-up rounding and currency codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.domain.money import exact_arithmetic, is_valid_currency, minor_unit, round_money

CURRENCIES = ("EUR", "USD", "JPY", "KRW", "KWD", "BHD", "CLF")


@pytest.mark.parametrize(
    "currency",
    ["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "XPF", "PYG", "BIF", "RWF", "VUV"],
)
def test_zero_decimal_currencies_have_no_minor_unit(currency: str) -> None:
    assert minor_unit(currency) == 0


@pytest.mark.parametrize("currency", ["BHD", "KWD", "OMR", "JOD", "TND", "IQD", "LYD"])
def test_three_decimal_currencies_have_three_decimals(currency: str) -> None:
    assert minor_unit(currency) == 3


@pytest.mark.parametrize("currency", ["EUR", "USD", "GBP", "CHF", "SEK", "CNY", "INR", "XYZ"])
def test_other_currencies_have_two_decimals(currency: str) -> None:
    assert minor_unit(currency) == 2


def test_chilean_unit_of_account_has_four_decimals() -> None:
    assert minor_unit("CLF") == 4


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.005", "EUR", "0.01"),
        ("0.004", "EUR", "0.00"),
        ("1.015", "EUR", "1.02"),
        ("1.025", "EUR", "1.03"),
        ("2.5", "JPY", "3"),
        ("3.5", "JPY", "4"),
        ("2.4999", "JPY", "2"),
        ("1.0005", "KWD", "1.001"),
        ("1.00049", "KWD", "1.000"),
    ],
)
def test_round_money_rounds_ties_up(amount: str, currency: str, expected: str) -> None:
    assert str(round_money(Decimal(amount), currency)) == expected


def test_round_money_rounds_negative_ties_away_from_zero() -> None:
    assert round_money(Decimal("-0.005"), "EUR") == Decimal("-0.01")


@pytest.mark.parametrize(
    ("currency", "expected"), [("EUR", "7.00"), ("JPY", "7"), ("KWD", "7.000"), ("CLF", "7.0000")]
)
def test_round_money_pads_to_the_currency_exponent(currency: str, expected: str) -> None:
    assert str(round_money(Decimal(7), currency)) == expected


def test_round_money_keeps_more_than_28_significant_digits() -> None:
    amount = Decimal("123456789012345678901234567890.125")

    assert round_money(amount, "EUR") == Decimal("123456789012345678901234567890.13")


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_round_money_refuses_non_finite_amounts(amount: str) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        round_money(Decimal(amount), "EUR")


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "XYZ"])
def test_three_uppercase_letters_are_a_valid_currency(code: str) -> None:
    assert is_valid_currency(code)


@pytest.mark.parametrize("code", ["", "EU", "EURO", "eur", "Eur", "E1R", "EU ", " EUR", "ÉUR", "ＥＵＲ"])
def test_anything_else_is_not_a_valid_currency(code: str) -> None:
    assert not is_valid_currency(code)


def test_exact_arithmetic_does_not_round_large_products() -> None:
    quantity = Decimal("99999999999999.9999")
    price = Decimal("99999999999999.9999")

    with exact_arithmetic():
        product = quantity * price

    assert product == Decimal("9999999999999999980000000000.00000001")


amounts = st.decimals(
    min_value=Decimal("-1000000000"),
    max_value=Decimal("1000000000"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=200, database=None)
@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_round_money_is_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    rounded = round_money(amount, currency)

    assert rounded.as_tuple().exponent == -minor_unit(currency)
    assert abs(rounded - amount) <= Decimal(1).scaleb(-minor_unit(currency)) / 2


@settings(max_examples=200, database=None)
@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_round_money_is_idempotent(amount: Decimal, currency: str) -> None:
    once = round_money(amount, currency)

    assert round_money(once, currency) == once


@settings(max_examples=200, database=None)
@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_round_money_is_symmetric_around_zero(amount: Decimal, currency: str) -> None:
    assert round_money(-amount, currency) == -round_money(amount, currency)
