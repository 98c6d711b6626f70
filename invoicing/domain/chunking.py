"""How many orders the next chunk takes: sized by measurement, to keep transactions short.

A chunk is one transaction. Too small and round trips dominate; too large and each
transaction holds its locks long, cancel waits longer, and progress arrives in big steps.
The worker aims at ``target_seconds`` per chunk (about 10 progress events a second at most),
growing or shrinking the size by at most a factor of two per chunk so one slow chunk (a
cold cache, a lock wait) cannot swing it wildly.
"""

from __future__ import annotations

from dataclasses import dataclass

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


#: Weight of the newest chunk in the running estimate of seconds per order.
SMOOTHING = 0.3


@dataclass
class ChunkSizer:
    """Chunk sizes for one job from a smoothed estimate of the time per order.

    One slow chunk (a checkpoint, autovacuum, a lock wait) moves the estimate by a third of
    the surprise instead of halving the next chunk, so sizes stop swinging between small
    chunks, whose fixed round trips cost throughput, and big ones. The step limits of
    :func:`next_chunk_size` still apply.
    """

    size: int
    target_seconds: float
    maximum: int
    seconds_per_order: float | None = None

    def observe(self, orders: int, elapsed_seconds: float) -> int:
        """Record that a chunk of ``orders`` took ``elapsed_seconds``; return the next size."""
        if self.target_seconds <= 0 or orders <= 0:
            return self.size
        sample = max(elapsed_seconds, 0.0) / orders
        previous = self.seconds_per_order
        self.seconds_per_order = sample if previous is None else previous + SMOOTHING * (sample - previous)
        expected = self.seconds_per_order * self.size
        self.size = next_chunk_size(
            self.size, expected, target_seconds=self.target_seconds, maximum=self.maximum
        )
        return self.size
