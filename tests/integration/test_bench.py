"""`invoicing bench` at a tiny size, so the command never rots (no timing assertions)."""

from __future__ import annotations

import json
import subprocess

import pytest

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.workers import run_command

FIELDS = {
    "size", "workers", "ceiling_per_s", "end_to_end_per_s", "naive_per_s", "first_event_ms",
    "submit_ms", "worker_peak_rss_mb",
}  # fmt: skip


def bench(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(settings, "bench", *args, timeout=220)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_bench_prints_one_json_document_and_leaves_the_database_alone(
    settings: Settings, database: Database
) -> None:
    result = bench(settings, "--sizes", "30", "--workers-list", "1", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(result.stdout)
    assert list(document) == ["results"]
    [row] = document["results"]
    assert set(row) == FIELDS
    assert (row["size"], row["workers"]) == (30, 1)
    for name in FIELDS - {"size", "workers", "first_event_ms"}:
        assert row[name] > 0, name
    assert row["first_event_ms"] >= 0
    # It worked in a database of its own: the one it was pointed at is as empty as before.
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM organizations") == 0
