"""`invoicing bench-load` at a tiny size, so the command never rots (no timing assertions)."""

from __future__ import annotations

import json
import subprocess

import asyncpg
import pytest

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.workers import run_command

DOCUMENT = {"options", "db_pool_size", "scratch_database", "burst_seconds", "submits", "phases"}
LATENCY = {"count", "p50_ms", "p99_ms", "max_ms", "outcomes"}
PROBES = {
    "cpu_percent", "client_loop_lag_max_ms", "server_connections_busy_max", "advisory_lock_waiters_max",
}  # fmt: skip
CPU = {"machine", "client", "server", "worker", "postgres", "other"}
READS = {"all", "job", "jobs list", "orders list", "other org job"}
TINY = (
    "--pollers", "5", "--list-readers", "2", "--other-pollers", "2", "--submitters", "2",
    "--batches", "3", "--batch-size", "50", "--orders", "300", "--poll-interval", "0.5",
    "--baseline-seconds", "1.5", "--after-seconds", "1.5",
)  # fmt: skip


def bench_load(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(settings, "bench-load", *args, timeout=100)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_bench_load_prints_one_json_document_and_drops_its_database(
    settings: Settings, database: Database
) -> None:
    result = bench_load(settings, *TINY, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(result.stdout)
    assert set(document) == DOCUMENT
    assert (document["options"]["pollers"], document["options"]["batch_size"]) == (5, 50)
    assert document["db_pool_size"] == settings.db_pool_size
    assert set(document["submits"]) == LATENCY
    assert document["submits"]["count"] == 3
    assert sum(document["submits"]["outcomes"].values()) == 3
    assert document["burst_seconds"] > 0
    assert [phase["phase"] for phase in document["phases"]] == ["baseline", "burst", "after"]
    for phase in document["phases"]:
        assert set(phase) == {"phase", "seconds", "reads", "probes"}
        assert set(phase["probes"]) == PROBES
        assert set(phase["probes"]["cpu_percent"]) == CPU
        assert set(phase["reads"]) <= READS
        for latency in phase["reads"].values():
            assert set(latency) == LATENCY
    baseline = document["phases"][0]["reads"]
    # 9 readers every 0.5 s for 1.5 s: each kind of read was made, and answered.
    assert set(baseline) == READS
    assert baseline["all"]["count"] == sum(baseline[kind]["count"] for kind in READS - {"all"})
    assert set(baseline["all"]["outcomes"]) == {"200"}
    # It worked in a database of its own, dropped at the end; the one it was pointed at is as
    # empty as before.
    admin = await asyncpg.connect(settings.require_database())
    try:
        name = document["scratch_database"]
        assert not await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM organizations") == 0


def test_bench_load_refuses_impossible_options(settings: Settings) -> None:
    result = bench_load(settings, "--batch-size", "500", "--orders", "100")
    assert result.returncode == 2
    assert "--batch-size" in result.stderr
