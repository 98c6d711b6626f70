"""A missing resource is answered one way wherever it is missed, by an exception built at each raise."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from invoicing.domain.invoice_rules import order_not_found
from invoicing.kernel.errors import InvoicingError, NotFound


def raised(make: Callable[[], InvoicingError]) -> InvoicingError:
    with pytest.raises(InvoicingError) as caught:
        raise make()
    return caught.value


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (NotFound.job, "job_not_found", "Batch job not found."),
        (NotFound.invoice, "invoice_not_found", "Invoice not found."),
        (NotFound.token, "token_not_found", "API token not found."),
        (order_not_found, "order_not_found", "Sales order not found."),
    ],
)
def test_each_resource_has_one_not_found_answer(
    make: Callable[[], InvoicingError], code: str, message: str
) -> None:
    error = raised(make)
    assert (error.code, error.message) == (code, message)


def test_every_raise_is_a_new_exception_whose_traceback_is_its_own() -> None:
    first, second = raised(NotFound.job), raised(NotFound.job)
    assert first is not second
    assert first.__traceback__ is not second.__traceback__
