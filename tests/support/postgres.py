"""A PostgreSQL server of one test's own, which the test may stop, restart, freeze and thaw.

The shared server on 127.0.0.1:5432 must never go down under other tests, so outage tests run
against this one: ``initdb`` into a fresh directory, ``postgres`` on a free TCP port of
127.0.0.1 (trust authentication, no Unix socket, no fsync), ``stop()``/``start()``/``restart()``
on the same port, so that URLs handed out stay valid across an outage.

Binaries: the machine's (``/usr/lib/postgresql/<newest>/bin``), else the ones in the
``pgserver`` wheel. PostgreSQL refuses to run as root; as root, the directory is given to the
``postgres`` account (else ``nobody``) and the server runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.embedded import free_port, port_answers

#: Speed over durability: the data is thrown away after the test.
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50 "
    "-c shared_buffers=16MB -c log_min_messages=warning"
)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries, else the pgserver wheel's."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True
    )
    for candidate in installed:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    import pgserver

    shipped = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if not (shipped / "initdb").exists():
        raise RuntimeError("no PostgreSQL binaries: install postgresql or the pgserver wheel")
    return shipped


def _server_account() -> pwd.struct_passwd | None:
    """Whom to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and no postgres or nobody account to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1:``port``; ``close()`` stops it and deletes its files.

    ``stop()`` and ``restart()`` use ``pg_ctl -m fast``: sessions are ended at once (clients see
    ``AdminShutdownError`` or a closed connection), as in a real failover or restart.
    ``freeze()`` stops the postmaster with SIGSTOP: new connections are accepted by the kernel
    and then hang, as with a server that stopped answering; ``thaw()`` resumes it.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin_dir = postgres_bin_dir()
        self._account = _server_account()
        # Our own directory in /tmp (not pytest's, which only root may enter), owned by the
        # account the server runs as.
        self.directory = Path(tempfile.mkdtemp(prefix="invoicing-postgres-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        if self._account is not None:
            os.chown(self.directory, self._account.pw_uid, self._account.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return port_answers("127.0.0.1", self.port, timeout=0.2)

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} {SERVER_OPTIONS}"
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
        )

    def stop(self) -> None:
        """Fast shutdown: sessions are terminated, nothing waits for clients."""
        self.thaw()
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """The postmaster stops (SIGSTOP): connecting hangs; sessions already open still work."""
        os.kill(self._postmaster_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        pid = self._postmaster_pid(missing_ok=True)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop (if running) and delete every file of the cluster."""
        try:
            if self._postmaster_pid(missing_ok=True) is not None:
                self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _postmaster_pid(self, *, missing_ok: bool = False) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            if missing_ok:
                return None
            raise

    def _run(self, program: str, *args: str) -> None:
        user = None if self._account is None else self._account.pw_uid
        group = None if self._account is None else self._account.pw_gid
        started = time.monotonic()
        # A file, not a pipe: the server pg_ctl starts inherits it and would hold a pipe open.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                [str(self.bin_dir / program), *args],
                user=user,
                group=group,
                extra_groups=[] if user is not None else None,
                cwd=self.directory,
                env={**os.environ, "LC_ALL": "C", "LANG": "C"},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
            output.seek(0)
            said = output.read().decode(errors="replace")[-2000:]
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            took = time.monotonic() - started
            raise RuntimeError(f"{program} failed after {took:.1f} s ({result.returncode}): {said}\n{log}")


@dataclass(frozen=True)
class PrivateDatabase:
    """A migrated database (``url``) on a ``server`` of the test's own (see ``private_postgres``)."""

    server: PostgresServer
    url: str
