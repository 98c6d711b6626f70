"""What the lifespan opens, as one typed object: every handler reads it through ``services()``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.templating import Jinja2Templates

from invoicing.infra.database import Database
from invoicing.infra.limits import Limiter
from invoicing.infra.queue import JobQueue
from invoicing.infra.read_gate import ReadGate
from invoicing.infra.write_gate import WriteGate
from invoicing.kernel.settings import Settings
from server.hub import EventHub


@dataclass(frozen=True, slots=True)
class Services:
    """One server process's connections and shared state, opened and closed by its lifespan.

    It is also the ``JobServices`` that the job use cases are handed (invoicing/jobs/actions.py).
    """

    settings: Settings
    database: Database
    #: Redis connects lazily: the server starts, and accepts jobs, while Redis is down.
    queue: JobQueue
    #: The per-user counters of job requests and failed logins, on the queue's Redis client.
    limiter: Limiter
    #: Submits' and retries' turns, so that they never take the connections reads need.
    write_gate: WriteGate
    #: Heavy reads' turns per organization, likewise.
    read_gate: ReadGate
    hub: EventHub
    templates: Jinja2Templates


def services(connection: HTTPConnection) -> Services:
    """The services of the process serving ``connection`` (what the lifespan yielded)."""
    found: Services = connection.state.services
    return found
