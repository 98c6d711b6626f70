from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.domain.job_progress import ProgressMetrics, progress_metrics
from invoicing.domain.job_states import JobStatus

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def metrics(
    *,
    total: int = 100,
    processed: int = 0,
    started_seconds_ago: float | None = 10.0,
    status: str = JobStatus.processing,
) -> ProgressMetrics:
    started_at = None if started_seconds_ago is None else NOW - timedelta(seconds=started_seconds_ago)
    return progress_metrics(total=total, processed=processed, started_at=started_at, now=NOW, status=status)


def test_running_job_reports_fraction_rate_and_eta() -> None:
    assert metrics(total=100, processed=25, started_seconds_ago=10) == ProgressMetrics(
        progress=0.25, items_per_second=2.5, eta_seconds=30.0
    )


def test_pending_job_has_no_rate_and_no_eta() -> None:
    assert metrics(processed=0, started_seconds_ago=None, status=JobStatus.pending) == ProgressMetrics(
        progress=0.0, items_per_second=None, eta_seconds=None
    )


def test_started_job_with_nothing_processed_has_unknown_rate() -> None:
    result = metrics(processed=0, started_seconds_ago=5)
    assert (result.items_per_second, result.eta_seconds) == (None, None)


def test_start_in_the_future_gives_unknown_rate() -> None:
    result = metrics(processed=10, started_seconds_ago=-5)
    assert (result.items_per_second, result.eta_seconds) == (None, None)


def test_zero_elapsed_gives_unknown_rate() -> None:
    assert metrics(processed=10, started_seconds_ago=0).items_per_second is None


def test_rate_and_eta_are_rounded_to_one_decimal() -> None:
    result = metrics(total=10, processed=1, started_seconds_ago=3)
    assert result.items_per_second == 0.3
    assert result.eta_seconds == 27.0


def test_slow_rate_rounding_to_zero_still_gives_an_eta() -> None:
    result = metrics(total=3, processed=1, started_seconds_ago=100)
    assert result.items_per_second == 0.0
    assert result.eta_seconds == 200.0


def test_nothing_remaining_gives_eta_zero() -> None:
    assert metrics(total=10, processed=10).eta_seconds == 0.0


@pytest.mark.parametrize("status", [JobStatus.completed, JobStatus.failed, JobStatus.cancelled])
def test_finished_job_has_eta_zero(status: JobStatus) -> None:
    assert metrics(total=10, processed=4, status=status).eta_seconds == 0.0


def test_cancelled_job_keeps_the_fraction_it_reached() -> None:
    assert metrics(total=10, processed=4, status=JobStatus.cancelled).progress == 0.4


def test_plain_string_status_is_understood() -> None:
    assert metrics(total=10, processed=4, status="failed").eta_seconds == 0.0


def test_processed_above_total_is_clamped_to_one() -> None:
    assert metrics(total=10, processed=12).progress == 1.0


def test_negative_processed_is_clamped_to_zero() -> None:
    assert metrics(total=10, processed=-3).progress == 0.0


def test_zero_total_gives_zero_progress() -> None:
    assert metrics(total=0, processed=0).progress == 0.0


@settings(max_examples=200)
@given(
    total=st.integers(min_value=-5, max_value=10**6),
    processed=st.integers(min_value=-5, max_value=10**6),
    seconds_ago=st.none() | st.floats(min_value=-100, max_value=10**6, allow_nan=False),
    status=st.sampled_from(list(JobStatus)),
)
def test_metrics_stay_in_range(
    total: int, processed: int, seconds_ago: float | None, status: JobStatus
) -> None:
    result = metrics(total=total, processed=processed, started_seconds_ago=seconds_ago, status=status)
    assert 0.0 <= result.progress <= 1.0
    assert result.items_per_second is None or result.items_per_second >= 0.0
    assert result.eta_seconds is None or result.eta_seconds >= 0.0
    if status.is_finished:
        assert result.eta_seconds == 0.0
