"""`invoicing dev` on a bare machine: embedded PostgreSQL and Redis, server, worker, demo data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devtools.embedded import free_port, port_answers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait_for(pattern: str, log: Path, process: subprocess.Popen[bytes], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        assert process.poll() is None, f"invoicing dev exited early:\n{log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in the output within {timeout} s:\n{log.read_text()}")


def _workers(dev_process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The live worker processes `dev` runs (a killed one is a zombie until `dev` reaps it)."""
    found = []
    for child in psutil.Process(dev_process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "worker" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def _invoice_next_orders(client: httpx.Client, count: int) -> dict[str, Any]:
    orders = client.get("/api/sales-orders", params={"invoiced": "false", "limit": count}).json()["items"]
    job = client.post("/api/batch-jobs", json={"order_ids": [o["id"] for o in orders]}).json()
    deadline = time.monotonic() + 60
    while (state := client.get(f"/api/batch-jobs/{job['id']}").json())["status"] != "completed":
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    result: dict[str, Any] = state
    return result


def _wait_for_mail(folder: Path, recipient: str) -> EmailMessage:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if isinstance(message, EmailMessage) and message["To"] == recipient:
                return message
        time.sleep(0.1)
    raise AssertionError(f"no email to {recipient} in {folder}")


def _invoicing_beside_dev(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An `invoicing` command run from the folder `dev` runs in, with no service variable set."""
    unset = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "INVOICING_DATA_DIR"}
    environment = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    port = free_port()
    log = tmp_path / "dev.log"
    inherited = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    environment = {k: v for k, v in os.environ.items() if k not in inherited}
    environment |= {"INVOICING_DATA_DIR": str(tmp_path / ".data"), "PYTHONPATH": str(ROOT)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "dev", "--port", str(port)],
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    yield process, tmp_path, port
    if process.poll() is None:
        # SIGTERM first: `dev` then stops its server, workers and embedded services itself.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_dev_runs_the_product_on_embedded_services_and_stops_cleanly(
    dev: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    process, folder, port = dev
    log = folder / "dev.log"
    url = _wait_for(r"running at (http://\S+)", log, process, timeout=120)[1]
    assert url == f"http://127.0.0.1:{port}"
    demo = json.loads((folder / ".data" / "demo-logins.json").read_text())
    admin = demo["organizations"][0]["users"][0]
    assert admin["email"] in log.read_text()
    assert admin["role"] == "admin"
    headers = {"Authorization": f"Bearer {admin['token']}"}

    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        assert client.get("/readyz").json() == {"status": "ok", "database": True, "redis": True}
        state = _invoice_next_orders(client, 100)
        assert state["processed_items"] == 100
        assert state["successful_items"] + state["failed_items"] == 100
        # Its starter's email reached `dev`'s own SMTP server, which /dev/mailbox shows.
        mail = _wait_for_mail(folder / ".data" / "mailbox", admin["email"])
        assert mail["Subject"].startswith("100 orders: ")
        assert f"{url}/jobs/{state['id']}" in mail.get_body(("plain",)).get_content()
        assert client.get("/dev/mailbox", headers={"Authorization": ""}).status_code == 303

        # `dev` supervises its worker: a worker that dies is replaced, and work goes on.
        (worker,) = _workers(process)
        worker.kill()
        deadline = time.monotonic() + 30
        while not [w for w in _workers(process) if w.pid != worker.pid]:
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.1)
        assert _invoice_next_orders(client, 20)["processed_items"] == 20

    # Beside it, in the same folder, the database commands work with no variable set.
    created = _invoicing_beside_dev(folder, "create-token", "--email", admin["email"], "--name", "shell")
    assert created.returncode == 0, created.stderr
    with httpx.Client(base_url=url, timeout=10) as client:
        me = client.get("/api/me", headers={"Authorization": f"Bearer {created.stdout.strip()}"})
        assert me.json()["user"]["email"] == admin["email"]
    swept = _invoicing_beside_dev(folder, "process-pending")
    assert swept.returncode == 0, swept.stderr

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) in (0, 130)
    assert not port_answers("127.0.0.1", port)
    assert not (folder / ".data" / "postgres" / "postmaster.pid").exists()
    # Once it stopped, its services are no longer offered.
    assert not (folder / ".data" / "services.json").exists()
    after = _invoicing_beside_dev(folder, "create-token", "--email", admin["email"])
    assert after.returncode == 2
    assert "DATABASE_URL is not set" in after.stderr
