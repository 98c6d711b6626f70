"""Chunk sizing: aim at the target duration, in bounded steps, within bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from invoicing.domain.chunking import MIN_CHUNK_SIZE, ChunkSizer, next_chunk_size


def test_a_fast_chunk_makes_the_next_one_bigger() -> None:
    assert next_chunk_size(100, 0.05, target_seconds=0.1, maximum=2000) == 200


def test_a_slow_chunk_makes_the_next_one_smaller() -> None:
    assert next_chunk_size(100, 0.2, target_seconds=0.1, maximum=2000) == 50


def test_one_step_never_more_than_doubles_or_halves() -> None:
    assert next_chunk_size(100, 0.001, target_seconds=0.1, maximum=2000) == 200
    assert next_chunk_size(100, 10.0, target_seconds=0.1, maximum=2000) == 50


def test_a_chunk_on_target_keeps_its_size() -> None:
    assert next_chunk_size(120, 0.1, target_seconds=0.1, maximum=2000) == 120


def test_the_size_stays_within_its_bounds() -> None:
    assert next_chunk_size(1500, 0.01, target_seconds=0.1, maximum=2000) == 2000
    assert next_chunk_size(12, 1.0, target_seconds=0.1, maximum=2000) == MIN_CHUNK_SIZE


def test_a_target_of_zero_keeps_the_configured_size() -> None:
    assert next_chunk_size(25, 0.001, target_seconds=0, maximum=2000) == 25


@given(
    current=st.integers(MIN_CHUNK_SIZE, 5000),
    elapsed=st.floats(0, 100, allow_nan=False),
    target=st.floats(0.01, 5, allow_nan=False),
)
def test_the_next_size_is_always_bounded_and_within_a_factor_of_two(
    current: int, elapsed: float, target: float
) -> None:
    size = next_chunk_size(current, elapsed, target_seconds=target, maximum=5000)
    assert MIN_CHUNK_SIZE <= size <= 5000
    assert current / 2 - 1 <= size <= current * 2 + 1


def test_the_sizer_settles_on_the_size_that_meets_the_target() -> None:
    sizer = ChunkSizer(size=100, target_seconds=0.15, maximum=2000)
    for _ in range(20):
        sizer.observe(sizer.size, sizer.size * 0.0005)  # 0.5 ms an order
    assert sizer.size == 300


def test_one_slow_chunk_moves_the_size_by_less_than_half() -> None:
    sizer = ChunkSizer(size=300, target_seconds=0.15, maximum=2000, seconds_per_order=0.0005)
    sizer.observe(300, 0.6)  # four times too slow, once
    assert 150 < sizer.size < 300


def test_a_sizer_with_a_target_of_zero_keeps_the_configured_size() -> None:
    sizer = ChunkSizer(size=25, target_seconds=0, maximum=2000)
    assert sizer.observe(25, 5.0) == 25
