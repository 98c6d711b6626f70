"""Values for ``COPY … FROM STDIN`` in PostgreSQL's text format, for rows built by hand.

asyncpg's ``copy_records_to_table`` encodes every value through its binary codec, a
``Decimal`` by way of its digit tuple: for the worker's invoice rows (28 numerics an invoice)
that was a quarter of the worker's time. ``str()`` of a ``Decimal``, a date or an int is
already valid text-format input, so only text needs escaping, and ``NULL`` has a spelling.
"""

from __future__ import annotations

NULL = "\\N"


def escape(value: str) -> str:
    """``value`` as one column of a text-format row: a backslash starts an escape, a tab
    separates columns, a newline or carriage return ends the row."""
    # Chained replace() beats str.translate several times over (translate is slow on
    # non-ASCII text such as addresses); the backslash goes first, so
    # that the backslashes the others add stay single.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def optional(value: object | None) -> str:
    """A value whose ``str()`` needs no escaping (a uuid, a number), or ``NULL``."""
    return NULL if value is None else str(value)
