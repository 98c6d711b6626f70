"""The wait after failed logins: free failures, then doubling up to a cap (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.domain.login_backoff import (
    ACCOUNT_MAX_WAIT_SECONDS,
    ADDRESS_MAX_WAIT_SECONDS,
    UNTRUSTED_DEVICE_SECONDS,
    Backoff,
    account_backoff,
    address_backoff,
    device_trust,
)
from invoicing.infra.limits import login_retry_message


def test_the_free_failures_cost_nothing_then_the_wait_doubles_up_to_the_cap() -> None:
    backoff = account_backoff(10)
    waits = [backoff.wait_after(failures) for failures in range(25)]
    assert waits == [0] * 10 + [1, 2, 4, 8, 16, 32, 64, 128, 256] + [300] * 6


def test_the_address_waits_up_to_15_minutes_and_the_account_up_to_5() -> None:
    assert address_backoff(10).wait_after(10_000) == ADDRESS_MAX_WAIT_SECONDS == 900
    assert account_backoff(10).wait_after(10_000) == ACCOUNT_MAX_WAIT_SECONDS == 300


def test_a_device_past_its_free_failures_is_untrusted_for_a_fixed_while() -> None:
    trust = device_trust(3)
    assert [trust.wait_after(failures) for failures in range(6)] == [0, 0, 0] + [UNTRUSTED_DEVICE_SECONDS] * 3


def test_the_table_redis_reads_runs_from_the_free_failures_to_the_cap() -> None:
    assert account_backoff(10).waits() == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert address_backoff(1).waits() == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
    assert device_trust(10).waits() == [UNTRUSTED_DEVICE_SECONDS]


@given(
    free=st.integers(1, 10_000),
    first=st.integers(1, 3600),
    cap=st.integers(1, 86_400),
    failures=st.integers(0, 100_000),
)
def test_the_wait_never_shrinks_with_more_failures_and_stays_within_the_cap(
    free: int, first: int, cap: int, failures: int
) -> None:
    backoff = Backoff(free, first, max(first, cap))
    wait = backoff.wait_after(failures)
    assert 0 <= wait <= backoff.max_wait_seconds
    assert backoff.wait_after(failures + 1) >= wait
    table = backoff.waits()
    beyond = failures - free
    assert wait == (0 if beyond < 0 else table[min(beyond, len(table) - 1)]), "Redis reads the same"


@pytest.mark.parametrize(("first", "cap"), [(0, 10), (5, 4)])
def test_a_wait_that_could_not_grow_to_its_cap_is_refused(first: int, cap: int) -> None:
    with pytest.raises(ValueError, match="not a backoff"):
        Backoff(3, first, cap)


def test_the_login_page_says_how_long_in_words() -> None:
    assert login_retry_message(1) == "Too many failed attempts; try again in 1 second."
    assert login_retry_message(8) == "Too many failed attempts; try again in 8 seconds."
    assert login_retry_message(60) == "Too many failed attempts; try again in 1 minute."
    assert login_retry_message(61) == "Too many failed attempts; try again in 2 minutes."
    assert login_retry_message(900) == "Too many failed attempts; try again in 15 minutes."
