"""Which driver errors are an unavailable database (503 at the edge, a retry in the worker)."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base

from invoicing.infra.database_failures import is_unavailable


def lost_mid_transaction() -> asyncpg.InterfaceError:
    """What leaving a transaction raises when the server cut the connection during it."""
    try:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    except asyncpg.ConnectionDoesNotExistError:
        try:
            raise asyncpg.InterfaceError(
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            )
        except asyncpg.InterfaceError as error:
            return error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionRefusedError(111, "Connect call failed"), id="refused"),
        pytest.param(TimeoutError(), id="connect-or-command-timeout"),
        pytest.param(OSError(113, "No route to host"), id="no-route"),
        pytest.param(OSError("Multiple exceptions: [Errno 111] Connect call failed"), id="every-address"),
        pytest.param(socket.gaierror(-2, "Name or service not known"), id="unknown-host"),
        pytest.param(asyncpg.CannotConnectNowError("the database system is starting up"), id="starting"),
        pytest.param(
            asyncpg.AdminShutdownError("terminating connection due to administrator command"), id="shutdown"
        ),
        pytest.param(asyncpg.CrashShutdownError("terminating connection because of crash"), id="crash"),
        pytest.param(
            asyncpg.TooManyConnectionsError("sorry, too many clients already"), id="too-many-clients"
        ),
        pytest.param(asyncpg.DiskFullError("could not extend file"), id="disk-full"),
        pytest.param(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), id="lost"),
        pytest.param(asyncpg.ConnectionFailureError("connection failure"), id="failure"),
        pytest.param(asyncpg.InterfaceError("connection is closed"), id="closed"),
        pytest.param(asyncpg.InterfaceError("pool is closing"), id="pool-closing"),
        pytest.param(lost_mid_transaction(), id="lost-mid-transaction"),
        pytest.param(
            asyncpg.IdleInTransactionSessionTimeoutError("terminating connection due to idle-in-transaction"),
            id="session-ended",
        ),
        pytest.param(
            asyncpg_base.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            ),
            id="protocol-broken-by-a-shutdown",
        ),
    ],
)
def test_the_database_being_out_of_reach_is_unavailable(error: BaseException) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            asyncpg.QueryCanceledError("canceling statement due to statement timeout"), id="timeout"
        ),
        pytest.param(asyncpg.LockNotAvailableError("canceling statement due to lock timeout"), id="lock"),
        pytest.param(asyncpg.UniqueViolationError("duplicate key"), id="unique"),
        pytest.param(asyncpg.DataError("invalid input"), id="data"),
        pytest.param(asyncpg.UndefinedTableError("relation does not exist"), id="bug-in-sql"),
        pytest.param(asyncpg.ProtocolViolationError("bind message has 2 parameter formats"), id="protocol"),
        pytest.param(
            asyncpg_base.DataError("invalid input for query argument $1"), id="unencodable-argument"
        ),
        pytest.param(ValueError("not a driver error"), id="other"),
    ],
)
def test_refusals_and_bugs_are_not_unavailability(error: BaseException) -> None:
    assert not is_unavailable(error)
