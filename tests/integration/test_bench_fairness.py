"""`invoicing bench-fairness` at a tiny size, so the command never rots (no timing assertions)."""

from __future__ import annotations

import json
import subprocess

import pytest

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.workers import run_command

DOCUMENT = {
    "options", "scratch_database", "small_job_seconds", "urgent_overtakes", "urgent_note", "urgent_workers",
    "urgent_seconds", "earlier_jobs_finished_first", "scaling",
}  # fmt: skip
SMALL_JOB = {"workers", "seconds", "big_jobs_seconds"}
SCALING = {
    "workers", "seconds", "invoices_per_second", "busiest_worker_cpu_share", "worker_cpu_shares",
    "server_cpu_share", "postgres_cpu_share", "machine_busy_share", "active_workers_max",
    "counter_held_share", "counter_queued_average", "counter_queued_max",
}  # fmt: skip
TINY = (
    "--big-jobs", "2", "--big-size", "40", "--small-size", "10", "--workers-list", "1",
    "--scaling-size", "60", "--scaling-workers", "1,2",
)  # fmt: skip


def bench_fairness(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(settings, "bench-fairness", *args, timeout=200)


def check_urgent(document: dict[str, object]) -> None:
    """Today's server refuses the priority field; one that accepts it gets an answer."""
    assert document["urgent_workers"] == 1
    if document["urgent_overtakes"] is None:
        assert document["urgent_note"] == "priorities not supported by this server"
        assert document["urgent_seconds"] is None
        assert document["earlier_jobs_finished_first"] is None
    else:
        assert isinstance(document["urgent_overtakes"], bool)
        assert document["urgent_note"] is None
        assert isinstance(document["earlier_jobs_finished_first"], int)


@pytest.mark.slow
@pytest.mark.timeout(220)
async def test_bench_fairness_prints_one_json_document_and_drops_its_database(
    settings: Settings, database: Database
) -> None:
    result = bench_fairness(settings, *TINY, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(result.stdout)
    assert set(document) == DOCUMENT
    assert document["options"]["big_jobs"] == 2
    [small] = document["small_job_seconds"]
    assert set(small) == SMALL_JOB
    assert small["workers"] == 1
    assert small["seconds"] > 0
    assert isinstance(small["big_jobs_seconds"], float)  # negative if A's were done before B's submit
    check_urgent(document)
    assert [row["workers"] for row in document["scaling"]] == [1, 2]
    for row in document["scaling"]:
        assert set(row) == SCALING
        assert len(row["worker_cpu_shares"]) == row["workers"]
        assert row["busiest_worker_cpu_share"] == max(row["worker_cpu_shares"])
        assert row["seconds"] > 0
        assert row["invoices_per_second"] > 0
        assert row["busiest_worker_cpu_share"] > 0  # the job's worker did the work
        assert 0 <= row["machine_busy_share"] <= 1
        assert 0 <= row["counter_held_share"] <= 1
        assert row["counter_queued_max"] >= 0
    # It worked in a database of its own, dropped at the end; the one it was pointed at is as
    # empty as before.
    async with database.connection() as connection:
        scratch = document["scratch_database"]
        assert not await connection.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", scratch)
        assert await connection.fetchval("SELECT count(*) FROM organizations") == 0


def test_bench_fairness_refuses_impossible_options(settings: Settings) -> None:
    result = bench_fairness(settings, "--scaling-workers", "0")
    assert result.returncode == 2
    assert "--scaling-workers" in result.stderr
