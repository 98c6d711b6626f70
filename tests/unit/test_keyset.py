"""The keyset condition of a list's next page: the rows after the previous page's last one."""

from __future__ import annotations

from invoicing.infra.keyset import after_key


def test_a_newest_first_list_continues_below_the_last_rows_key() -> None:
    assert after_key(("created_at", "id"), 2, descending=True) == "(created_at, id) < ($2, $3)"


def test_an_ascending_list_continues_above_it_numbering_the_parameters_from_the_first() -> None:
    assert after_key(("o.number", "o.id"), 5, descending=False) == "(o.number, o.id) > ($5, $6)"


def test_a_key_of_one_column_is_still_one_comparison() -> None:
    assert after_key(("position",), 3, descending=False) == "(position) > ($3)"
