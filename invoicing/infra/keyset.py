"""Keyset paging in SQL: the one condition that starts a page after the previous page's last row."""

from __future__ import annotations

from collections.abc import Sequence


def after_key(columns: Sequence[str], first_parameter: int, *, descending: bool) -> str:
    """The WHERE condition of the rows after a page's last row, in a list ordered by
    ``columns``, all ascending or all ``descending``; that row's values of them are the
    parameters from ``$first_parameter`` on. ``after_key(("created_at", "id"), 2,
    descending=True)`` is ``(created_at, id) < ($2, $3)``.

    One row comparison, not ``a < $2 OR (a = $2 AND b < $3)``: PostgreSQL reads it as a single
    range of an index on those columns, so a page deep in the list costs what the first does.
    Each parameter takes its column's type.
    """
    parameters = ", ".join(f"${first_parameter + offset}" for offset in range(len(columns)))
    return f"({', '.join(columns)}) {'<' if descending else '>'} ({parameters})"
