"""The connection pool.

``databases`` owns the pool and the task-scoped connection and transaction handling; every query
then runs on its raw asyncpg connection, because the hot paths need what only asyncpg offers
(COPY, array parameters, typed codecs) and one query style beats two.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import asyncpg
import databases
from asyncpg.pgproto.pgproto import UUID as _ASYNCPG_UUID

from invoicing.infra.scopes import NAME_SCOPE, NAME_SCOPE_WITH_TIMEOUT, ScopeKey, ticket_of
from invoicing.kernel.errors import ServiceUnavailable
from invoicing.kernel.settings import Settings

Connection = asyncpg.Connection
#: asyncpg's UUID: a subclass of uuid.UUID built in C, five times faster to make from text
#: (100,000 ids: 50 ms instead of 250 ms of a submit's budget). Still a plain value.
FAST_UUID: Callable[[str], UUID] = _ASYNCPG_UUID
logger = logging.getLogger(__name__)


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(connection: asyncpg.Connection) -> None:
    # Binary format (a version byte, then the text) so that COPY can write jsonb columns too.
    await connection.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


def _initializer(
    on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None,
) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """The pool's hook for each new connection: our codecs, then the caller's own set-up."""
    if on_connect is None:
        return _init_connection

    async def initialize(connection: asyncpg.Connection) -> None:
        await _init_connection(connection)
        await on_connect(connection)

    return initialize


def _socket_options(url: str) -> dict[str, Any]:
    # databases passes host/port from the URL's netloc only; a Unix socket directory given as
    # `?host=/path` (what the embedded PostgreSQL hands out) must be forwarded by hand.
    query = parse_qs(urlsplit(url).query)
    options: dict[str, Any] = {}
    if "host" in query:
        options["host"] = query["host"][0]
    if "port" in query:
        options["port"] = int(query["port"][0])
    return options


def with_database_name(url: str, name: str) -> str:
    """The same server (host, socket, credentials) with another database."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query="").geturl()


#: How a connection of the application's pool must look when it goes back to the pool, past
#: asyncpg's reset: acting as the application role, every statement asyncpg prepared still
#: there, none prepared by SQL (PREPARE), and no temporary object but the staging tables.
CLEAN_CONNECTION = """
SELECT current_user = $1
   AND (SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND name = ANY($2::text[]))
       = cardinality($2::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql)
   AND NOT EXISTS (
       SELECT 1 FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND NOT (relname = ANY($3::text[]))
   )
   AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = pg_my_temp_schema())
"""


#: A server that has not accepted a new connection by then is treated as down (a 503 at the
#: HTTP edge) rather than waited on for asyncpg's default minute.
CONNECT_TIMEOUT_SECONDS = 5.0

#: The role the server and the worker act as: it owns no table, so row-level security applies.
#: They log in as a role that is a member of it (``RUNTIME_ROLE`` unless configured otherwise,
#: see invoicing/infra/roles.py) and act as it from the start of every connection.
APP_ROLE = "invoicing_app"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """PostgreSQL's own bounds on a session, in seconds (0: none).

    They make the database end what a stuck or frozen client started: a statement running too
    long, a wait for a lock, and above all a transaction left open by a process that stopped
    (SIGSTOP, a VM pause, a partition): its session is closed and its row locks freed, so no
    other worker waits on it for longer than the idle limit.
    """

    statement_timeout: float = 0
    lock_timeout: float = 0
    idle_in_transaction_timeout: float = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        return cls(
            statement_timeout=settings.db_statement_timeout_seconds,
            lock_timeout=settings.db_lock_timeout_seconds,
            idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
        )

    def server_settings(self) -> dict[str, str]:
        def milliseconds(seconds: float) -> str:
            return str(round(seconds * 1000))

        return {
            "statement_timeout": milliseconds(self.statement_timeout),
            "lock_timeout": milliseconds(self.lock_timeout),
            "idle_in_transaction_session_timeout": milliseconds(self.idle_in_transaction_timeout),
        }

    @property
    def command_timeout(self) -> float | None:
        """The client's own bound, past the server's: a connection whose server went silent (a
        network partition) must not wait forever for an answer."""
        return None if self.statement_timeout <= 0 else self.statement_timeout + 10


class Database:
    """A PostgreSQL pool yielding raw asyncpg connections.

    With ``app_role`` (the server and the worker), every connection acts as that role, and
    row-level security hides every organization's rows unless a transaction names one:
    use ``scoped(organization_id)`` for a request or a job, ``unscoped()`` for the few
    questions that span organizations (answered by the owner's functions, never by reading
    tables). ``connection()`` and ``transaction()`` name none either. Without ``app_role``
    (migrations, seeding, tests' own setup) the connecting user is used.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        app_role: str | None = None,
        min_size: int = 1,
        limits: SessionLimits | None = None,
        application_name: str | None = None,
        on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
        scope_key: ScopeKey | None = None,
        temporary_tables: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.scope_key = scope_key
        self.temporary_tables = temporary_tables
        self.app_role = app_role
        self._probe_target: dict[str, Any] = {"dsn": _without_query(url), **_socket_options(url)}
        self.limits = limits or SessionLimits()
        # Set at connection start-up, the role and the limits are also what RESET ALL (run by
        # the pool when a connection is released) returns to.
        # No JIT: its compile time (~10 ms a statement) only pays off for long analytic queries,
        # and a stale row estimate after a bulk import could trigger it on every chunk.
        server_settings = {
            "jit": "off",
            # pg_temp last: an unqualified name is always ours, never a temporary table that
            # SQL run earlier on this pooled connection left behind to stand in for it.
            "search_path": "public, pg_temp",
            **({"role": app_role} if app_role else {}),
            **self.limits.server_settings(),
            # Names the process in pg_stat_activity: who holds a lock, who is idle in a transaction.
            **({"application_name": application_name} if application_name else {}),
        }
        startup: dict[str, Any] = {"server_settings": server_settings, "timeout": CONNECT_TIMEOUT_SECONDS}
        if app_role:
            startup["reset"] = self._reset_application_connection
        if self.limits.command_timeout is not None:
            startup["command_timeout"] = self.limits.command_timeout
        self._database = databases.Database(
            _without_query(url),
            min_size=min(min_size, pool_size),
            max_size=pool_size,
            init=_initializer(on_connect),
            **startup,
            **_socket_options(url),
        )

    async def _reset_application_connection(self, connection: asyncpg.Connection) -> None:
        """Give a connection of the application's pool back only as it was handed out.

        asyncpg's own reset (RESET ALL, CLOSE ALL, UNLISTEN *, advisory locks) leaves what SQL
        run on the connection may have made to outlast its transaction for the next request,
        another organization's: a prepared statement of asyncpg's swapped for one of the same
        name (a later request's scope and ticket would run through it), a temporary table or
        function, another role. Any of those, or a statement asyncpg prepared gone missing,
        and the connection is closed instead (the pool opens a fresh one when it is next needed)."""
        await connection.execute(connection.get_reset_query())
        prepared = [statement.name for statement in connection._stmt_cache.iter_statements()]
        clean = await connection.fetchval(
            CLEAN_CONNECTION, self.app_role, prepared, list(self.temporary_tables)
        )
        if not clean:
            logger.warning(
                "a pooled connection came back altered (a statement, a temporary object, the role): closed"
            )
            connection.terminate()

    async def connect(self) -> None:
        try:
            await self._database.connect()
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServiceUnavailable("The database cannot be reached.") from exc

    async def disconnect(self) -> None:
        if self._database.is_connected:
            await self._database.disconnect()

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._database.connection() as connection:
            yield connection.raw_connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        # asyncpg's own transaction, not the wrapper's: a task cancelled during the wrapper's
        # BEGIN never gives its connection back to the pool (it counts the use before BEGIN
        # and does not undo it), and the pool then cannot close.
        async with self._database.connection() as connection:
            raw: asyncpg.Connection = connection.raw_connection
            async with raw.transaction():
                yield raw

    @asynccontextmanager
    async def scoped(
        self, organization_id: UUID, *, statement_timeout: float | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that sees and writes only this organization's rows; its statements
        stop after ``statement_timeout`` seconds when given (else the session's limit)."""
        async with self.transaction() as connection:
            await self.act_in(connection, organization_id, statement_timeout=statement_timeout)
            yield connection

    async def act_in(
        self, connection: asyncpg.Connection, organization_id: UUID, *, statement_timeout: float | None = None
    ) -> None:
        """From now until the transaction ends (or the next call), see and write only this
        organization's rows (with its ticket: invoicing/infra/scopes.py); how one
        transaction visits several organizations in turn."""
        ticket = ticket_of(self.scope_key, organization_id)
        if statement_timeout is None:
            await connection.execute(NAME_SCOPE, str(organization_id), ticket)
        else:
            milliseconds = f"{max(1, round(statement_timeout * 1000))}ms"
            await connection.execute(NAME_SCOPE_WITH_TIMEOUT, str(organization_id), ticket, milliseconds)

    @asynccontextmanager
    async def unscoped(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that names no organization.

        As the application role it sees no organization's rows: only the functions that answer
        one narrow question across organizations (finding a credential, a job's organization,
        the organizations with unfinished jobs; migrations/0011_least_privilege.sql) answer
        there. With the owner's login (migrations, seeding, tests' own setup) it sees every row.
        """
        async with self.transaction() as connection:
            yield connection

    async def ping(self, within: float = 2.0) -> bool:
        """PostgreSQL accepts a connection and answers within ``within`` seconds.

        On a connection of its own, not the pool's: a probe must not queue behind busy requests
        for a pooled connection, nor leave one stuck on a query to a server that froze.
        """
        connection: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(within):
                connection = await asyncpg.connect(**self._probe_target)
                answered = bool(await connection.fetchval("SELECT true"))
                await connection.close()
                return answered
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if connection is not None:
                connection.terminate()
            return False
