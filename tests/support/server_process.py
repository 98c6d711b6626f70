"""``invoicing server`` as a child process: uvicorn started exactly as an operator starts it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.embedded import free_port
from invoicing.kernel.settings import Settings
from tests.support.live_server import LiveServer
from tests.support.workers import ROOT, environment_of


@dataclass
class ServerProcess:
    server: LiveServer
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> str:
        """SIGTERM, wait for the exit, and return everything the server wrote."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(settings: Settings, log: Path, *, log_level: str = "INFO") -> Iterator[ServerProcess]:
    """The server on a free port, logging (stdout and stderr) to ``log`` from ``log_level`` up;
    stopped afterwards."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "server", "--port", str(port)],
            env={**environment_of(settings), "LOG_LEVEL": log_level},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = ServerProcess(LiveServer(f"127.0.0.1:{port}"), process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.05)
        yield running
    finally:
        running.stop()
