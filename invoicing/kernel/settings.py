"""The one settings object, built from the environment and passed explicitly everywhere."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from invoicing.kernel.errors import ConfigurationError

#: Every environment variable the product reads, with its default (None: optional).
ENVIRONMENT: dict[str, str | None] = {
    "DATABASE_URL": None,
    "MIGRATION_DATABASE_URL": None,
    "REDIS_URL": None,
    "SECRET_KEY": None,
    "INVOICING_DATA_DIR": ".data",
    "MAX_BATCH_SIZE": "100000",
    "CHUNK_SIZE": "100",
    "CHUNK_TARGET_SECONDS": "0.15",
    "MAX_CHUNK_SIZE": "2000",
    "LEASE_SECONDS": "30",
    "PRIORITY_AGING_SECONDS": "300",
    "JOB_PART_SIZE": "5000",
    "MAX_WORKERS_PER_JOB": "0",
    "MAX_JOB_ATTEMPTS": "5",
    "RETRY_BACKOFF_SECONDS": "1",
    "RETRY_BACKOFF_MAX_SECONDS": "60",
    "LOCKED_ORDER_WAIT_SECONDS": "30",
    "SWEEP_INTERVAL_SECONDS": "10",
    "DB_STATEMENT_TIMEOUT_SECONDS": "30",
    "DB_LOCK_TIMEOUT_SECONDS": "2",
    "DB_READ_TIMEOUT_SECONDS": "10",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "10",
    "WORKER_MAX_JOBS": "4",
    "WORKER_POLL_DELAY": "0.1",
    "SWEEP_PENDING_AFTER_SECONDS": "5",
    "QUEUE_NAME": "invoicing:queue",
    "REDIS_PREFIX": "invoicing",
    "DB_POOL_SIZE": "10",
    "LOG_LEVEL": "INFO",
    "SESSION_COOKIE_SECURE": "auto",
    "JOB_CREATE_PER_MINUTE": "30",
    "BAD_REQUESTS_PER_MINUTE": "300",
    "MAX_ACTIVE_JOBS_PER_ORG": "20",
    "LOGIN_FAILURES_PER_15_MIN": "10",
    "WS_MAX_SOCKETS_PER_USER": "60",
    "WS_MAX_SOCKETS_PER_ORG": "500",
    "WS_MESSAGES_PER_SECOND": "5",
    "WS_MESSAGE_BURST": "10",
    "TRUSTED_PROXIES": "",
    "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    "SMTP_URL": None,
    "MAIL_FROM": "Batch invoicing <invoicing@localhost>",
    "BASE_URL": "http://localhost:8000",
    "WEBHOOK_RETRY_BASE_SECONDS": "10",
    "WEBHOOK_MAX_ATTEMPTS": "12",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
    "DEV_MAILBOX_DIR": None,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of one process. Build it with :meth:`from_env`; never read os.environ elsewhere."""

    #: What the server and the workers log in with: a role that owns nothing (least privilege).
    database_url: str | None
    redis_url: str | None
    secret_key: str | None
    data_dir: Path
    max_batch_size: int
    chunk_size: int
    chunk_target_seconds: float
    max_chunk_size: int
    lease_seconds: float
    #: A waiting job climbs one priority class per this many seconds (low work is never starved).
    priority_aging_seconds: float
    #: Orders in one part of a job: the unit a worker slot claims, under its own lease.
    job_part_size: int
    #: How many parts of one job may run at once; 0 is no limit.
    max_workers_per_job: int
    #: Failures in a row at the same place (no item processed between them) that end a job.
    max_job_attempts: int
    #: First pause after a failed run of a job; doubled (with jitter) per failure in a row.
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    #: How long a job keeps retrying orders locked by someone else before failing them.
    locked_order_wait_seconds: float
    sweep_interval_seconds: float
    #: PostgreSQL session limits of the server's and workers' connections (0: none).
    db_statement_timeout_seconds: float
    db_lock_timeout_seconds: float
    #: statement_timeout of the server's list and count reads: none outlives its client by long.
    db_read_timeout_seconds: float
    db_idle_in_transaction_timeout_seconds: float
    worker_max_jobs: int
    worker_poll_delay: float
    sweep_pending_after_seconds: float
    queue_name: str
    redis_prefix: str
    db_pool_size: int
    log_level: str
    #: "auto" (Secure when the request came over HTTPS), "true" or "false".
    session_cookie_secure: str
    job_create_per_minute: int
    #: Refused batch-job requests (malformed, over a limit, nothing to do) one user may send a minute.
    bad_requests_per_minute: int
    max_active_jobs_per_org: int
    login_failures_per_15_min: int
    #: Open WebSockets one user, and one organization, may hold across every server process.
    ws_max_sockets_per_user: int
    ws_max_sockets_per_org: int
    #: Client messages one socket may send: ``ws_message_burst`` at once, then this many a second.
    ws_messages_per_second: float
    ws_message_burst: int
    #: Reverse proxies whose X-Forwarded-For is believed (empty: none, the peer is the client).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    #: Host names (``Host`` header, port aside) the server answers; others get 400. ``*``: any.
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
    #: The tables' owner, for migrations (and the development tools' seeding); None: DATABASE_URL.
    migration_database_url: str | None = None
    #: ``smtp://user:pass@host:587`` (STARTTLS when offered) or ``smtps://`` (implicit TLS);
    #: None: emails are recorded as skipped (``invoicing dev`` runs a server of its own).
    smtp_url: str | None = None
    mail_from: str = "Batch invoicing <invoicing@localhost>"
    #: Where people reach the app: the links in emails start with it.
    base_url: str = "http://localhost:8000"
    #: First wait before a failed webhook call is tried again (each next one 2.3 times longer).
    webhook_retry_base_seconds: float = 10.0
    webhook_max_attempts: int = 12
    #: Let webhooks call http:// URLs and loopback, private and link-local addresses (dev, tests).
    webhook_allow_private_networks: bool = False
    #: Development only (``invoicing dev`` sets it): the folder its SMTP server keeps mail in,
    #: which the server then shows at /dev/mailbox. Never set it in production.
    dev_mailbox_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read, cast and check every setting; raise ConfigurationError naming the bad variable."""
        env = os.environ if environ is None else environ

        def raw(name: str) -> str | None:
            value = env.get(name)
            if value is None or value.strip() == "":
                return ENVIRONMENT[name]
            return value.strip()

        def integer(name: str, low: int, high: int) -> int:
            return int(_number(name, raw(name), int, low, high))

        def real(name: str, low: float, high: float) -> float:
            return float(_number(name, raw(name), float, low, high))

        log_level = (raw("LOG_LEVEL") or "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigurationError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR; got {log_level!r}.")
        database_url, migration_database_url = raw("DATABASE_URL"), raw("MIGRATION_DATABASE_URL")
        for name, url in (("DATABASE_URL", database_url), ("MIGRATION_DATABASE_URL", migration_database_url)):
            if url is not None and not url.startswith(("postgresql://", "postgres://")):
                raise ConfigurationError(f"{name} must start with postgresql://.")
        redis_url = raw("REDIS_URL")
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError("REDIS_URL must start with redis://, rediss:// or unix://.")
        secret_key = raw("SECRET_KEY")
        if secret_key is not None and len(secret_key) < 16:
            raise ConfigurationError("SECRET_KEY must be at least 16 characters long.")
        return cls(
            database_url=database_url,
            migration_database_url=migration_database_url,
            redis_url=redis_url,
            secret_key=secret_key,
            data_dir=Path(raw("INVOICING_DATA_DIR") or ".data"),
            max_batch_size=integer("MAX_BATCH_SIZE", 1, 1_000_000),
            chunk_size=integer("CHUNK_SIZE", 1, 10_000),
            chunk_target_seconds=real("CHUNK_TARGET_SECONDS", 0, 60),
            max_chunk_size=integer("MAX_CHUNK_SIZE", 1, 10_000),
            lease_seconds=real("LEASE_SECONDS", 1, 3600),
            priority_aging_seconds=real("PRIORITY_AGING_SECONDS", 1, 86_400),
            job_part_size=integer("JOB_PART_SIZE", 10, 1_000_000),
            max_workers_per_job=integer("MAX_WORKERS_PER_JOB", 0, 10_000),
            max_job_attempts=integer("MAX_JOB_ATTEMPTS", 1, 100),
            retry_backoff_seconds=real("RETRY_BACKOFF_SECONDS", 0.01, 3600),
            retry_backoff_max_seconds=real("RETRY_BACKOFF_MAX_SECONDS", 0.01, 86_400),
            locked_order_wait_seconds=real("LOCKED_ORDER_WAIT_SECONDS", 0, 86_400),
            sweep_interval_seconds=real("SWEEP_INTERVAL_SECONDS", 0.1, 3600),
            db_statement_timeout_seconds=real("DB_STATEMENT_TIMEOUT_SECONDS", 0, 86_400),
            db_lock_timeout_seconds=real("DB_LOCK_TIMEOUT_SECONDS", 0, 3600),
            db_read_timeout_seconds=real("DB_READ_TIMEOUT_SECONDS", 0.1, 3600),
            db_idle_in_transaction_timeout_seconds=real("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 0, 86_400),
            worker_max_jobs=integer("WORKER_MAX_JOBS", 1, 100),
            worker_poll_delay=real("WORKER_POLL_DELAY", 0.01, 10),
            sweep_pending_after_seconds=real("SWEEP_PENDING_AFTER_SECONDS", 0, 3600),
            queue_name=raw("QUEUE_NAME") or "invoicing:queue",
            redis_prefix=raw("REDIS_PREFIX") or "invoicing",
            db_pool_size=integer("DB_POOL_SIZE", 2, 200),
            log_level=log_level,
            session_cookie_secure=_choice(
                "SESSION_COOKIE_SECURE", raw("SESSION_COOKIE_SECURE"), ("auto", "true", "false")
            ),
            job_create_per_minute=integer("JOB_CREATE_PER_MINUTE", 1, 1_000_000),
            bad_requests_per_minute=integer("BAD_REQUESTS_PER_MINUTE", 1, 1_000_000),
            max_active_jobs_per_org=integer("MAX_ACTIVE_JOBS_PER_ORG", 1, 1_000_000),
            login_failures_per_15_min=integer("LOGIN_FAILURES_PER_15_MIN", 1, 10_000),
            ws_max_sockets_per_user=integer("WS_MAX_SOCKETS_PER_USER", 1, 1_000_000),
            ws_max_sockets_per_org=integer("WS_MAX_SOCKETS_PER_ORG", 1, 1_000_000),
            ws_messages_per_second=real("WS_MESSAGES_PER_SECOND", 0.01, 10_000),
            ws_message_burst=integer("WS_MESSAGE_BURST", 1, 10_000),
            trusted_proxies=_networks("TRUSTED_PROXIES", raw("TRUSTED_PROXIES")),
            allowed_hosts=_hosts("ALLOWED_HOSTS", raw("ALLOWED_HOSTS")),
            smtp_url=_smtp_url(raw("SMTP_URL")),
            mail_from=raw("MAIL_FROM") or "",
            base_url=_base_url(raw("BASE_URL")),
            webhook_retry_base_seconds=real("WEBHOOK_RETRY_BASE_SECONDS", 0.01, 86_400),
            webhook_max_attempts=integer("WEBHOOK_MAX_ATTEMPTS", 1, 100),
            webhook_allow_private_networks=_choice(
                "WEBHOOK_ALLOW_PRIVATE_NETWORKS", raw("WEBHOOK_ALLOW_PRIVATE_NETWORKS"), ("false", "true")
            )
            == "true",
            dev_mailbox_dir=None if raw("DEV_MAILBOX_DIR") is None else Path(str(raw("DEV_MAILBOX_DIR"))),
        )

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def require_database(self) -> str:
        """The database URL, or a clear error for commands that need it."""
        if not self.database_url:
            raise ConfigurationError(
                "DATABASE_URL is not set (or use `invoicing dev` for embedded services)."
            )
        return self.database_url

    def require_owner_database(self) -> str:
        """The URL that migrates: MIGRATION_DATABASE_URL, else DATABASE_URL."""
        if self.migration_database_url:
            return self.migration_database_url
        return self.require_database()

    def require_services(self) -> tuple[str, str]:
        """The database and Redis URLs, or a clear error for commands that need both."""
        database_url = self.require_database()
        if not self.redis_url:
            raise ConfigurationError("REDIS_URL is not set (or use `invoicing dev` for embedded services).")
        return database_url, self.redis_url


def _number(name: str, value: str | None, kind: type[int] | type[float], low: float, high: float) -> float:
    try:
        number = kind(value or "")
    except ValueError:
        raise ConfigurationError(f"{name} must be a number; got {value!r}.") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}; got {value}.")
    return number


def _choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    normalized = (value or choices[0]).lower()
    if normalized not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return normalized


def _smtp_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("smtp://", "smtps://")):
        raise ConfigurationError("SMTP_URL must start with smtp:// or smtps://.")
    return value


def _base_url(value: str | None) -> str:
    url = (value or "").rstrip("/")
    if not url.startswith(("http://", "https://")) or "?" in url or "#" in url:
        raise ConfigurationError(f"BASE_URL must be an http:// or https:// URL with no query; got {value!r}.")
    return url


def _networks(name: str, value: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses (one host each) and CIDR networks, e.g. ``10.0.0.0/8, ::1``.

    Strict: a network with host bits set (``10.0.0.1/8``) is refused rather than widened, since
    trusting more proxies than meant would let clients choose their own address.
    """
    networks: list[IPv4Network | IPv6Network] = []
    for part in (value or "").split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ip_network(text))
        except ValueError as exc:
            raise ConfigurationError(
                f"{name} must be comma-separated IP addresses or CIDR networks; {exc}."
            ) from None
    return tuple(networks)


#: A host name or IPv4 address, ``[IPv6]``, ``*.domain`` (any subdomain), or ``*`` alone.
_HOST_PATTERN = re.compile(
    r"(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?|\[[0-9a-f:.]+\])"
)


def _hosts(name: str, value: str | None) -> tuple[str, ...]:
    """Comma-separated host names without scheme or port, e.g. ``invoices.example.com, localhost``."""
    hosts = tuple(part.strip().lower() for part in (value or "").split(",") if part.strip())
    for host in hosts:
        if not _HOST_PATTERN.fullmatch(host):
            raise ConfigurationError(
                f"{name} must be comma-separated host names (no scheme, no port; `*.example.com` "
                f"for subdomains, `*` for any); got {host!r}."
            )
    if not hosts:
        raise ConfigurationError(f"{name} must name at least one host (`*` for any).")
    return hosts
