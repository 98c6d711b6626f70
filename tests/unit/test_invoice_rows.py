"""A chunk's invoice rows, built before the chunk's numbers are known."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest

from invoicing.invoices.store import InvoiceRows
from tests.unit.invoice_factories import ISSUE_DATE, build, lines_of, make_line, make_order


def test_rows_keep_the_order_of_the_drafts_and_one_line_row_per_line() -> None:
    drafts = [build(make_order(id=uuid4(), lines=lines_of(make_line(), make_line()))) for _ in range(3)]
    rows = InvoiceRows(uuid4(), ISSUE_DATE.year)
    rows.add(drafts[:1])
    rows.add(drafts[1:])
    assert len(rows) == 3
    assert list(rows.invoice_ids) == [draft.sales_order_id for draft in drafts]
    assert rows.order_ids == [draft.sales_order_id for draft in drafts]
    first_invoice = str(rows.invoice_ids[drafts[0].sales_order_id])
    assert rows.invoices[0][0].startswith(first_invoice)
    first_lines = rows.lines[0].splitlines()
    assert len(first_lines) == 2
    assert all(line.startswith(first_invoice) for line in first_lines)
    assert sum(len(text.splitlines()) for text in rows.lines) == 6


def test_halves_split_invoices_with_their_lines_and_ids() -> None:
    drafts = [build(make_order(id=uuid4(), lines=lines_of(make_line(), make_line()))) for _ in range(5)]
    rows = InvoiceRows(uuid4(), ISSUE_DATE.year)
    rows.add(drafts)

    first, second = rows.halves()

    assert (len(first), len(second)) == (2, 3)
    assert first.order_ids + second.order_ids == rows.order_ids
    assert first.invoices + second.invoices == rows.invoices
    assert first.lines + second.lines == rows.lines
    assert first.invoice_ids | second.invoice_ids == rows.invoice_ids
    assert set(first.invoice_ids) == set(first.order_ids)


def test_a_draft_of_another_year_is_refused() -> None:
    rows = InvoiceRows(uuid4(), ISSUE_DATE.year)
    with pytest.raises(ValueError, match="issued in 2027"):
        rows.add([build(issue_date=date(2027, 1, 1))])
    assert len(rows) == 0
