"""The token bucket that limits a socket's messages: a burst at once, then a steady rate."""

from __future__ import annotations

import pytest

from invoicing.domain.token_bucket import TokenBucket


def takes(bucket: TokenBucket, count: int, now: float) -> list[bool]:
    return [bucket.take(now) for _ in range(count)]


def test_a_full_bucket_allows_its_burst_at_once_and_refuses_the_next() -> None:
    bucket = TokenBucket(rate=5, burst=10)
    assert takes(bucket, 11, now=100.0) == [True] * 10 + [False]


def test_tokens_come_back_at_the_rate() -> None:
    bucket = TokenBucket(rate=5, burst=10)
    takes(bucket, 10, now=0.0)
    assert takes(bucket, 2, now=0.2) == [True, False]  # 0.2 s at 5 a second: one token
    assert takes(bucket, 6, now=1.2) == [True] * 5 + [False]


def test_an_idle_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=5, burst=10)
    bucket.take(0.0)
    assert takes(bucket, 11, now=3600.0) == [True] * 10 + [False]


def test_refused_takes_spend_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take(0.0)
    assert takes(bucket, 100, now=0.5) == [False] * 100
    assert bucket.take(1.0), "a token a second, however many were refused meanwhile"


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    takes(bucket, 2, now=10.0)
    assert not bucket.take(5.0)
    assert bucket.take(6.0)  # one second after 5.0, the last time it was asked


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (5, 0.5)])
def test_a_bucket_that_could_never_allow_anything_is_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate=rate, burst=burst)
