"""Text-format COPY values: what PostgreSQL reads back is what was written."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from invoicing.infra.copy_text import NULL, escape, optional


def test_plain_text_is_left_as_it_is() -> None:
    assert escape("Calle de Alcalá, 5 · €") == "Calle de Alcalá, 5 · €"


def test_backslash_tab_newline_and_carriage_return_are_escaped() -> None:
    assert escape("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"


def test_an_escape_spelled_in_the_text_stays_text() -> None:
    assert escape("\\N and \\t") == "\\\\N and \\\\t"


def test_a_missing_value_is_null_and_others_are_their_text() -> None:
    assert optional(None) == NULL == "\\N"
    assert optional(Decimal("12.30")) == "12.30"
    assert optional(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
