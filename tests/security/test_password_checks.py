"""Password checks (argon2id, 64 MiB each) run beside the event loop, a bounded few at a time:
a burst of logins neither stalls the server's other requests nor takes memory by the gigabyte.
"""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

import httpx

from invoicing.accounts.credentials import PASSWORD_CHECKS_AT_ONCE
from tests.conftest import make_settings
from tests.support.live_server import live_server

LOGINS = 10


async def test_a_burst_of_logins_does_not_stall_other_requests(database_url: str, redis_url: str) -> None:
    """Checked in the event loop, each check held every other request for its whole 0.1-0.2 s:
    the server answered about one health check per login meanwhile. Beside it, dozens."""
    settings = make_settings(database_url, redis_url, LOGIN_FAILURES_PER_15_MIN="1000")
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http) as client:

        async def log_in() -> int:
            # Unknown emails: the stand-in hash, made by the product's own hasher.
            response = await client.post(
                "/login",
                data={"email": f"nobody-{uuid4().hex}@example.test", "password": "wrong"},
                headers={"Origin": server.http},
            )
            return response.status_code

        assert await log_in() == 401  # the stand-in hash is made once, before the burst
        logins = asyncio.gather(*(log_in() for _ in range(LOGINS)))
        health_checks = 0
        while not logins.done():
            assert (await client.get("/healthz")).status_code == 200
            health_checks += 1
        statuses = await logins
        checkers = [thread for thread in threading.enumerate() if thread.name.startswith("password-check")]
    assert statuses == [401] * LOGINS
    assert health_checks >= 5 * LOGINS, f"{health_checks} health checks answered during {LOGINS} logins"
    assert 1 <= len(checkers) <= PASSWORD_CHECKS_AT_ONCE
