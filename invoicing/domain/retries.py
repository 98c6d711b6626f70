"""What happens to a job after one of its runs fails: try again after a pause, or give up.

A run fails when its worker crashes or freezes (its lease expires) or when a chunk raises
something that is not one order's fault (a deadlock, a timeout, a bug). What ends a job is
failure *without progress*: the same place failing again and again. A job that invoices some
orders between two failures is not stuck, however many times its workers die.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoicing.kernel.settings import Settings

#: Job-level reasons, recorded as ``last_error_code`` and, if the job ends failed, in its errors.
WORKER_CRASHED = "worker_crashed"
DATABASE_ERROR = "database_error"
INTERNAL_ERROR = "internal_error"

#: The code of the items a failed job leaves unprocessed.
JOB_FAILED = "job_failed"


@dataclass(frozen=True, slots=True)
class FailureDecision:
    #: Failures in a row at the same place, this one included.
    stalled_attempts: int
    give_up: bool
    #: Seconds before the job may run again (when not giving up).
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed runs are retried: ``MAX_JOB_ATTEMPTS`` and the backoff's bounds."""

    max_attempts: int
    base_seconds: float
    max_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.max_job_attempts, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds
        )

    def after_failure(self, stalled_attempts: int, *, progressed: bool, jitter: float) -> FailureDecision:
        """Decide after a failed run. ``stalled_attempts`` is the count before it; ``progressed``
        says whether the run processed any item; ``jitter`` is uniform in [0, 1) (random in
        production, fixed in tests)."""
        stalled = 1 if progressed else stalled_attempts + 1
        give_up = stalled >= self.max_attempts
        delay = 0.0 if give_up else retry_delay(stalled, self.base_seconds, self.max_seconds, jitter)
        return FailureDecision(stalled_attempts=stalled, give_up=give_up, delay_seconds=delay)


def retry_delay(failures: int, base_seconds: float, max_seconds: float, jitter: float) -> float:
    """Exponential backoff with jitter: ``base × 2^(failures − 1)``, capped at ``max_seconds``,
    then scaled by a factor in [0.5, 1.5) so that jobs failing together do not retry together."""
    exponent = min(max(failures - 1, 0), 32)  # 2^32 × any base is past any sensible cap
    return min(max_seconds, base_seconds * 2.0**exponent) * (0.5 + jitter)


def final_message(code: str, message: str, stalled_attempts: int) -> str:
    """What the job's errors say when it is given up."""
    times = "once" if stalled_attempts == 1 else f"{stalled_attempts} times in a row"
    reason = "its worker stopped (crashed or froze)" if code == WORKER_CRASHED else message.rstrip(".")
    return f"The job stopped after failing {times} at the same place: {reason}. The rest was not invoiced."
