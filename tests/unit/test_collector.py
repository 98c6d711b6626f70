"""The garbage collector settings of the long-running processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from invoicing.infra.gc_tuning import YOUNG_GENERATION_THRESHOLD, tune_for_throughput


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_tuning_scans_the_young_generation_less_often_and_freezes_what_exists() -> None:
    before = gc.get_threshold()
    tune_for_throughput()
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, before[1], before[2])
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_tuning_are_still_collected() -> None:
    tune_for_throughput()

    class Node:
        partner: object = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second
    assert gc.collect() >= 2
