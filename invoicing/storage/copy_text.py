"""Values for ``COPY … FROM STDIN`` in PostgreSQL's text format, for rows built by hand.

asyncpg's ``copy_records_to_table`` encodes every value through its binary codec, a
``Decimal`` by way of its digit tuple: for the worker's invoice rows (28 numerics an invoice)
that was a quarter of the worker's time. ``str()`` of a ``Decimal``, a date or an int is
already valid text-format input, so only text needs escaping, and ``NULL`` has a spelling.
"""

from __future__ import annotations

NULL = "\\N"

# The text format's escapes: a backslash starts one, tab separates columns, newline ends rows.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape(value: str) -> str:
    """``value`` as one column of a text-format row."""
    return value.translate(_ESCAPES)


def optional(value: object | None) -> str:
    """A value whose ``str()`` needs no escaping (a uuid, a number), or ``NULL``."""
    return NULL if value is None else str(value)
