"""A token bucket: at most ``rate`` events a second on average, ``burst`` of them at once.

Pure: the caller says what time it is (a monotonic clock), so tests need no clock of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """Starts full: a client may send ``burst`` at once, then ``rate`` a second."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    as_of: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False (nothing spent) when the bucket is empty."""
        if self.as_of is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.as_of) * self.rate)
        self.as_of = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
