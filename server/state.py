"""Typed access to what the lifespan yields as request state (one place, not one per module)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from invoicing.infra.database import Database
from invoicing.infra.queue import JobQueue
from invoicing.infra.read_gate import ReadGate
from invoicing.infra.write_gate import WriteGate
from invoicing.kernel.settings import Settings


def database(connection: HTTPConnection) -> Database:
    found: Database = connection.state.database
    return found


def queue(connection: HTTPConnection) -> JobQueue:
    found: JobQueue = connection.state.queue
    return found


def settings(connection: HTTPConnection) -> Settings:
    found: Settings = connection.state.settings
    return found


def write_gate(connection: HTTPConnection) -> WriteGate:
    found: WriteGate = connection.state.write_gate
    return found


def read_gate(connection: HTTPConnection) -> ReadGate:
    found: ReadGate = connection.state.read_gate
    return found
