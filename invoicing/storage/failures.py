"""What a driver error means: the database is unreachable, or it refused what we asked.

The difference matters to everyone upstream. While PostgreSQL is unreachable (down, restarting,
the connection cut) nothing is wrong with the request or the job: the server answers 503 and a
worker waits for the database and carries on. Any other error is about the work itself.
"""

from __future__ import annotations

import asyncpg

# Connection-level failures, and the server's own "I am going away / not yet up" answers
# (class 08, 57P01–57P03, 53300). An ended session (idle_in_transaction_session_timeout,
# 25P03) is the same for its client: that connection is gone.
_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect or command timeout) too
    asyncpg.InterfaceError,  # "connection is closed", ConnectionDoesNotExistError
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.IdleInTransactionSessionTimeoutError,
)

_REASONS = {
    "40P01": "a deadlock with another transaction",
    "40001": "a serialization conflict with another transaction",
    "55P03": "a lock held elsewhere for longer than the lock timeout",
    "57014": "a statement running past the statement timeout",
}


def is_unavailable(error: BaseException) -> bool:
    """True if ``error`` says the database cannot be reached right now (not that it refused)."""
    return isinstance(error, _UNAVAILABLE)


def database_reason(error: asyncpg.PostgresError) -> str:
    """A short description of a database error that is safe to show (no values, no SQL)."""
    state = str(getattr(error, "sqlstate", "") or "")
    return f"{_REASONS.get(state, 'an error in the database')} (SQLSTATE {state or 'unknown'})"
