"""How many orders the next chunk takes: sized by measurement, to keep transactions short.

A chunk is one transaction. Too small and round trips dominate; too large and each
transaction holds its locks long, cancel waits longer, and progress arrives in big steps.
The worker aims at ``target_seconds`` per chunk (about 10 progress events a second at most),
growing or shrinking the size by at most a factor of two per chunk so one slow chunk (a
cold cache, a lock wait) cannot swing it wildly.
"""

from __future__ import annotations

MIN_CHUNK_SIZE = 10
MAX_STEP = 2.0


def next_chunk_size(current: int, elapsed_seconds: float, *, target_seconds: float, maximum: int) -> int:
    """The next chunk's size after one of ``current`` orders took ``elapsed_seconds``.

    A ``target_seconds`` of 0 turns the adaptation off (the size stays as configured).
    """
    if target_seconds <= 0:
        return current
    if elapsed_seconds <= 0:
        return min(maximum, max(MIN_CHUNK_SIZE, int(current * MAX_STEP)))
    ratio = min(MAX_STEP, max(1 / MAX_STEP, target_seconds / elapsed_seconds))
    return min(maximum, max(MIN_CHUNK_SIZE, round(current * ratio)))
