"""What happens after a failed run: backoff, and giving up only on failure without progress."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.domain.retries import WORKER_CRASHED, RetryPolicy, final_message, retry_delay


def decide(
    stalled: int, *, progressed: bool, max_attempts: int = 5, jitter: float = 0.5
) -> tuple[int, bool, float]:
    policy = RetryPolicy(max_attempts=max_attempts, base_seconds=1, max_seconds=60)
    decision = policy.after_failure(stalled, progressed=progressed, jitter=jitter)
    return decision.stalled_attempts, decision.give_up, decision.delay_seconds


def test_failures_at_the_same_place_back_off_exponentially_then_give_up() -> None:
    stalled, seen = 0, []
    while True:
        stalled, give_up, delay = decide(stalled, progressed=False)
        seen.append((stalled, give_up, delay))
        if give_up:
            break
    assert seen == [(1, False, 1.0), (2, False, 2.0), (3, False, 4.0), (4, False, 8.0), (5, True, 0.0)]


def test_a_run_that_made_progress_starts_the_count_again() -> None:
    assert decide(4, progressed=True) == (1, False, 1.0)


def test_a_job_that_progresses_between_every_crash_is_never_given_up() -> None:
    stalled = 0
    for _ in range(100):
        stalled, give_up, _ = decide(stalled, progressed=True, max_attempts=2)
        assert not give_up


def test_one_attempt_means_the_first_failure_ends_the_job() -> None:
    assert decide(0, progressed=True, max_attempts=1)[1]


@given(failures=st.integers(min_value=1, max_value=10_000), jitter=st.floats(min_value=0, max_value=0.999999))
def test_the_delay_is_bounded_and_jittered(failures: int, jitter: float) -> None:
    delay = retry_delay(failures, 0.5, 30, jitter)
    assert 0.25 <= delay < 45
    assert delay == pytest.approx(min(30, 0.5 * 2 ** min(failures - 1, 10)) * (0.5 + jitter))


def test_jobs_failing_together_do_not_retry_together() -> None:
    assert retry_delay(3, 1, 60, 0.0) == 2.0
    assert retry_delay(3, 1, 60, 0.99) == pytest.approx(5.96)


def test_the_final_message_says_what_happened() -> None:
    assert final_message(WORKER_CRASHED, "ignored", 5) == (
        "The job stopped after failing 5 times in a row at the same place: its worker stopped"
        " (crashed or froze). The rest was not invoiced."
    )
    assert final_message("database_error", "A chunk was stopped by a deadlock.", 1) == (
        "The job stopped after failing once at the same place: A chunk was stopped by a deadlock."
        " The rest was not invoiced."
    )
