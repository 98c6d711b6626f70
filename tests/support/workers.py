"""Real workers: in-process burst runs, and separate OS processes that tests may kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoicing.kernel.settings import Settings
from worker.main import run_worker

ROOT = Path(__file__).resolve().parents[2]

ENVIRONMENT_NAMES = {
    "database_url": "DATABASE_URL",
    "migration_database_url": "MIGRATION_DATABASE_URL",
    "redis_url": "REDIS_URL",
    "secret_key": "SECRET_KEY",
    "chunk_size": "CHUNK_SIZE",
    "chunk_target_seconds": "CHUNK_TARGET_SECONDS",
    "max_chunk_size": "MAX_CHUNK_SIZE",
    "lease_seconds": "LEASE_SECONDS",
    "priority_aging_seconds": "PRIORITY_AGING_SECONDS",
    "job_part_size": "JOB_PART_SIZE",
    "max_workers_per_job": "MAX_WORKERS_PER_JOB",
    "max_job_attempts": "MAX_JOB_ATTEMPTS",
    "worker_max_jobs": "WORKER_MAX_JOBS",
    "worker_poll_delay": "WORKER_POLL_DELAY",
    "sweep_pending_after_seconds": "SWEEP_PENDING_AFTER_SECONDS",
    "queue_name": "QUEUE_NAME",
    "redis_prefix": "REDIS_PREFIX",
    "max_batch_size": "MAX_BATCH_SIZE",
    "retry_backoff_seconds": "RETRY_BACKOFF_SECONDS",
    "retry_backoff_max_seconds": "RETRY_BACKOFF_MAX_SECONDS",
    "locked_order_wait_seconds": "LOCKED_ORDER_WAIT_SECONDS",
    "smtp_url": "SMTP_URL",
    "mail_from": "MAIL_FROM",
    "base_url": "BASE_URL",
    "webhook_retry_base_seconds": "WEBHOOK_RETRY_BASE_SECONDS",
    "webhook_max_attempts": "WEBHOOK_MAX_ATTEMPTS",
    "webhook_allow_private_networks": "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
    "sweep_interval_seconds": "SWEEP_INTERVAL_SECONDS",
    "db_statement_timeout_seconds": "DB_STATEMENT_TIMEOUT_SECONDS",
    "db_lock_timeout_seconds": "DB_LOCK_TIMEOUT_SECONDS",
    "db_idle_in_transaction_timeout_seconds": "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
}


def environment_of(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings."""
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT_NAMES.values()}
    for attribute, name in ENVIRONMENT_NAMES.items():
        value = getattr(settings, attribute)
        if value is not None:
            env[name] = str(value)
    env["LOG_LEVEL"] = "INFO"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_command(settings: Settings, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``invoicing ARGS`` as a child process with these settings, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=environment_of(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def drain_queue(settings: Settings) -> None:
    """Run an in-process worker until the queue is empty (arq's burst mode)."""
    await run_worker(settings, burst=True, handle_signals=False)


class WorkerProcess:
    """``invoicing worker`` as a child process, logging to a file the test can show on failure."""

    def __init__(self, settings: Settings, log_dir: Path, name: str = "worker") -> None:
        self.log_path = log_dir / f"{name}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=environment_of(settings),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, exactly like a crashed machine."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


LOG_TAIL_CHARS = 6000
# A clean stop takes well under a second; after this a worker is killed so the suite goes on.
STOP_GRACE_SECONDS = 5.0


class Workers:
    """The worker processes of one test: started on demand, stopped at teardown, logs at hand."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[WorkerProcess] = []

    def start(self, settings: Settings, count: int = 1) -> list[WorkerProcess]:
        started = [
            WorkerProcess(settings, self.log_dir, name=f"worker-{len(self.processes) + n}")
            for n in range(count)
        ]
        self.processes += started
        return started

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name} (pid {p.pid}, exit {p.process.poll()}) ---\n{p.log()[-LOG_TAIL_CHARS:]}"
            for p in self.processes
        )

    @contextmanager
    def explaining_failures(self) -> Iterator[None]:
        """Append the workers' logs to any assertion failing inside the block."""
        try:
            yield
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n\n{self.logs()}") from failure

    def stop_all(self) -> None:
        """SIGTERM to all at once, then SIGKILL to any still running after the grace period.

        Not ``WorkerProcess.stop`` one by one: a worker now and then misses its SIGTERM (its
        cancellation is swallowed inside redis-py), and each such miss would cost 15 s.
        """
        running = [p.process for p in self.processes if p.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
