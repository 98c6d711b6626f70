"""A running job's speed and time left, from its counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from invoicing.domain.job_states import FINISHED_VALUES


@dataclass(frozen=True, slots=True)
class ProgressMetrics:
    """What a progress bar shows: fraction done, throughput and estimated time left."""

    progress: float
    items_per_second: float | None
    eta_seconds: float | None


def progress_metrics(
    *, total: int, processed: int, started_at: datetime | None, now: datetime, status: str
) -> ProgressMetrics:
    """Compute the progress of a job from its counters.

    ``progress`` is ``processed / total`` clamped to [0, 1] (0.0 for an empty total), even for
    a finished job: a cancelled job stays at the fraction it reached. ``items_per_second`` is
    the mean rate since ``started_at``, None until the job has started and processed something.
    ``eta_seconds`` is 0.0 when nothing remains or the job is finished, None while the rate is
    unknown. Both are rounded to one decimal. For a finished job pass its finish time as
    ``now`` so the rate does not decay as the clock moves on.
    """
    processed = max(processed, 0)
    progress = min(max(processed / total, 0.0), 1.0) if total > 0 else 0.0
    rate = _rate(processed, started_at, now)
    remaining = max(total - processed, 0)
    eta: float | None
    if status in FINISHED_VALUES or remaining == 0:
        eta = 0.0
    elif rate is None:
        eta = None
    else:
        # From the unrounded rate: a slow job's rate may round to 0.0.
        eta = round(remaining / rate, 1)
    return ProgressMetrics(
        progress=progress,
        items_per_second=None if rate is None else round(rate, 1),
        eta_seconds=eta,
    )


def _rate(processed: int, started_at: datetime | None, now: datetime) -> float | None:
    if started_at is None or processed == 0:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    return processed / elapsed
