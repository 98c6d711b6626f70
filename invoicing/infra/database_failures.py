"""What a driver error means: the database is unreachable, or it refused what we asked.

The difference matters to everyone upstream. While PostgreSQL is unreachable (down, restarting,
the connection cut) nothing is wrong with the request or the job: the server answers 503 and a
worker waits for the database and carries on. Any other error is about the work itself: the
client's input (``DataError``), a refusal the code expects and handles where it occurs (a unique
violation, a lock or statement timeout), or a bug, which must stay loud.
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

# Connection-level failures, and the server's own "I am going away / not yet up / full"
# answers (class 08, 57P01–57P03, class 53: too many connections, out of memory or disk). An
# ended session (idle_in_transaction_session_timeout, 25P03) is the same for its client: that
# connection is gone.
_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect or command timeout) too
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError: the connection was cut
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InsufficientResourcesError,
    asyncpg.IdleInTransactionSessionTimeoutError,
    # The connection's protocol broke mid-request: seen when the server shut down while a
    # statement's error was being read and the transaction's COMMIT followed ("cannot switch
    # to state 15; another operation (2) is in progress"). That connection is as good as cut.
    asyncpg_base.InternalClientError,
)

# Among those classes, what is our mistake and no outage: a value asyncpg cannot encode for a
# parameter, a client misconfiguration, a malformed message (08P01).
_MISTAKES = (
    asyncpg_base.DataError,
    asyncpg_base.ClientConfigurationError,
    asyncpg_base.UnsupportedClientFeatureError,
    asyncpg.ProtocolViolationError,
)

_REASONS = {
    "40P01": "a deadlock with another transaction",
    "40001": "a serialization conflict with another transaction",
    "55P03": "a lock held elsewhere for longer than the lock timeout",
    "57014": "a statement running past the statement timeout",
    "22003": "a number out of the range it can hold",
    "22001": "a text too long",
    "23505": "a duplicate of an existing row",
    "23514": "a value breaking a check",
    "23502": "a required value missing",
    "23503": "a reference to something that does not exist",
}


def is_unavailable(error: BaseException) -> bool:
    """True if ``error`` says the database cannot be reached right now (not that it refused).

    A refused, reset or timed-out connection, a server starting up or shutting down, out of
    connections, a connection cut mid-request. Not a statement stopped by ``statement_timeout``
    (``QueryCanceledError``) or ``lock_timeout`` (``LockNotAvailableError``): the server is up
    and answered; callers decide what those mean.
    """
    return isinstance(error, _UNAVAILABLE) and not isinstance(error, _MISTAKES)


#: Transactions that got in each other's way: the same work succeeds when tried again.
_CONTENTION = (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def is_contention(error: BaseException) -> bool:
    """True if ``error`` is a wait for a lock that ran out, a deadlock or a serialization
    conflict: another transaction was in the way, not the work itself at fault."""
    return isinstance(error, _CONTENTION)


def database_reason(error: asyncpg.PostgresError, *, otherwise: str = "an error in the database") -> str:
    """A short description of a database error that is safe to show (no values, no SQL)."""
    state = str(getattr(error, "sqlstate", "") or "")
    return f"{_REASONS.get(state, otherwise)} (SQLSTATE {state or 'unknown'})"
