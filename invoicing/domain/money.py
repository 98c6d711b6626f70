"""Currency minor units and half-up rounding of money amounts (``Decimal`` only, never float)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from functools import cache

from invoicing.kernel.json_schema import Schema
from invoicing.kernel.json_values import DECIMAL

# ISO 4217 exponents that differ from the usual two decimals.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
# Unidades de fomento (Chile) and the Uruguayan wage index unit are quoted to four decimals.
_FOUR_DECIMAL_CURRENCIES = frozenset({"CLF", "UYW"})

# The default context keeps 28 significant digits, so a quantity times a price at the
# database's numeric(18, 4) could be rounded silently before we round to the minor unit.
# Multiplication, addition and scaleb are exact under this context (no inexact operation
# is ever asked of it), so the only rounding left is the explicit half-up one.
_EXACT = Context(
    prec=MAX_PREC,
    rounding=ROUND_HALF_UP,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


def minor_unit(currency: str) -> int:
    """Return the ISO 4217 exponent of ``currency``: 0 for JPY, 3 for KWD, 2 for EUR and others."""
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in _THREE_DECIMAL_CURRENCIES:
        return 3
    if currency in _FOUR_DECIMAL_CURRENCIES:
        return 4
    return 2


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up (ties away from zero) to the minor unit of ``currency``.

    The result always carries the currency's exponent: ``round_money(Decimal("1"), "EUR")``
    is ``Decimal("1.00")``. Raises ``ValueError`` for NaN or infinity.
    """
    if not amount.is_finite():
        raise ValueError(f"cannot round a non-finite amount: {amount}")
    return round_to(amount, money_quantum(currency))


def round_to(amount: Decimal, quantum: Decimal) -> Decimal:
    """Round a finite ``amount`` half-up to ``quantum`` (a ``money_quantum``).

    ``round_money`` for hot loops that round many amounts of one currency: the caller looks
    the quantum up once and has checked that the amounts are finite.
    """
    return amount.quantize(quantum, rounding=ROUND_HALF_UP, context=_EXACT)


@cache
def money_quantum(currency: str) -> Decimal:
    """``Decimal("0.01")`` for EUR: the currency's minor unit, built once per currency."""
    return Decimal(1).scaleb(-minor_unit(currency))


def is_valid_currency(code: str) -> bool:
    """Tell whether ``code`` has the shape of an ISO 4217 code: three uppercase ASCII letters."""
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()


def exact_arithmetic() -> AbstractContextManager[Context]:
    """Context manager under which ``Decimal`` products and sums of amounts are exact."""
    return localcontext(_EXACT)


def money_text(amount: Decimal, currency: str) -> str:
    """An amount as a string with exactly the currency's minor digits (JSON has no decimals)."""
    return str(round_money(amount, currency))


#: What ``money_text`` writes, as the OpenAPI document describes it.
MONEY: Schema = {**DECIMAL, "description": "An amount with exactly the currency's minor digits."}
