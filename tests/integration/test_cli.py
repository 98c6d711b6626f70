"""The `invoicing` command line against real services."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from devtools.embedded import DevServices, free_port, record_services
from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.support.workers import ROOT, environment_of


def invoicing(settings: Settings, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**environment_of(settings), **environment},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_seed_prints_one_json_document_with_credentials(settings: Settings, database: Database) -> None:
    result = invoicing(settings, "seed", "--orgs", "2", "--orders", "40", "--invalid-ratio", "0.25")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["organizations"]
    assert len(document["organizations"]) == 2
    for organization in document["organizations"]:
        assert set(organization) == {"id", "name", "users"}
        assert {user["role"] for user in organization["users"]} == {"admin", "member"}
        for user in organization["users"]:
            assert set(user) == {"email", "password", "role", "token"}
    async with database.connection() as connection:
        assert await connection.fetchval("SELECT count(*) FROM sales_orders") == 80


def test_migrate_reports_an_up_to_date_database(settings: Settings) -> None:
    result = invoicing(settings, "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_process_pending_prints_what_the_sweep_did(settings: Settings) -> None:
    result = invoicing(settings, "process-pending")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"enqueued": 0, "resumed": 0, "failed": 0}


def test_a_bad_setting_is_named_with_a_clear_message(settings: Settings) -> None:
    result = invoicing(settings, "migrate", CHUNK_SIZE="lots")
    assert result.returncode == 2
    assert "CHUNK_SIZE must be a number" in result.stderr


def test_a_missing_database_url_says_how_to_run_without_one(settings: Settings) -> None:
    result = invoicing(settings, "worker", DATABASE_URL="")
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr


def migrate_with_no_url_set(settings: Settings, data_dir: Path) -> subprocess.CompletedProcess[str]:
    no_urls = {"DATABASE_URL": "", "MIGRATION_DATABASE_URL": "", "REDIS_URL": ""}
    return invoicing(settings, "migrate", INVOICING_DATA_DIR=str(data_dir), **no_urls)


def test_services_of_a_dev_that_no_longer_answers_are_not_used(settings: Settings, tmp_path: Path) -> None:
    """A `services.json` left by a killed `invoicing dev` is ignored: its ports are dead."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/invoicing"
    record_services(tmp_path, DevServices(dead, f"redis://127.0.0.1:{free_port()}/0"))

    result = migrate_with_no_url_set(settings, tmp_path)

    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr


def test_a_running_devs_services_are_used_when_no_url_is_set(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    record_services(
        tmp_path, DevServices(settings.database_url, settings.redis_url, settings.migration_database_url)
    )

    result = migrate_with_no_url_set(settings, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_the_server_runs_as_several_processes_sharing_one_port(settings: Settings) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "server", "--port", str(port), "--processes", "2"],
        env=environment_of(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        assert response.json() == {"status": "ok", "database": True, "redis": True}
        assert len(psutil.Process(process.pid).children()) >= 2
    finally:
        process.terminate()
        process.wait(timeout=30)
