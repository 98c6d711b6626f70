"""Fixtures of the tests that run real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workers import Workers


@pytest.fixture
def workers(tmp_path: Path, database_url: str) -> Iterator[Workers]:
    # Depends on database_url so the processes stop before the test database is dropped.
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()
