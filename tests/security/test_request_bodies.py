"""Bodies over the 8 MB cap, on a real uvicorn server over loopback, with a real client.

A refusal is only useful if the client can read it: the server must not close the
connection with part of the body unread (the kernel would reset it, and the client would see
"connection reset" instead of the 413). The client asks for ``Connection: close``, which is
what made the server close at once after answering.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from invoicing.infra.database import Database
from invoicing.kernel.settings import Settings
from tests.security.test_bad_input import rows_written
from tests.support.app import error_of
from tests.support.factories import Organization
from tests.support.live_server import live_server

MB = 1024 * 1024
NINE_MB = 9 * MB
CLOSE = {"Connection": "close"}


async def nine_megabytes() -> AsyncIterator[bytes]:
    """Without a length, so httpx sends it chunked."""
    for _ in range(NINE_MB // MB):
        yield b" " * MB


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_8_mb_is_answered_413_and_the_client_reads_the_answer(
    settings: Settings, database: Database, organization: Organization, framing: str
) -> None:
    body = b" " * NINE_MB if framing == "content-length" else nine_megabytes()
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        response = await client.post(
            "/api/batch-jobs", content=body, headers={**organization.member.headers, **CLOSE}
        )
    assert ("transfer-encoding" in response.request.headers) == (framing == "chunked")
    assert error_of(response) == (413, "body_too_large")
    assert response.headers["Connection"] == "close"
    assert await rows_written(database) == (0, 0)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/login", {"Content-Type": "application/x-www-form-urlencoded"}, id="login-form"),
        pytest.param("/api/me", {}, id="route-without-a-body"),
        pytest.param("/no-such-page", {}, id="unknown-path"),
    ],
)
async def test_every_route_refuses_a_declared_body_over_8_mb_readably(
    settings: Settings, path: str, headers: dict[str, str]
) -> None:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        response = await client.post(path, content=b"x" * NINE_MB, headers={**headers, **CLOSE})
    assert error_of(response) == (413, "body_too_large")


async def test_an_early_answer_to_a_body_under_the_cap_is_readable_too(settings: Settings) -> None:
    # Refused before the body is read (no credentials): the rest is read and dropped first.
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        response = await client.post("/api/batch-jobs", content=b" " * (5 * MB), headers=CLOSE)
    assert error_of(response) == (401, "unauthorized")


async def test_the_connection_stays_usable_after_a_refused_chunked_body_without_close(
    settings: Settings, organization: Organization
) -> None:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        refused = await client.post(
            "/api/batch-jobs", content=nine_megabytes(), headers=organization.member.headers
        )
        after = await client.get("/api/batch-jobs", headers=organization.member.headers)
    assert error_of(refused) == (413, "body_too_large")
    assert after.status_code == 200


@pytest.mark.parametrize(
    "curl_options",
    [
        pytest.param([], id="content-length-with-expect-100-continue"),
        pytest.param(["-H", "Expect:"], id="content-length"),
        pytest.param(["-H", "Transfer-Encoding: chunked"], id="chunked"),
    ],
)
async def test_curl_reads_the_413_too(
    settings: Settings, organization: Organization, tmp_path: Path, curl_options: list[str]
) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl on this machine")
    payload = tmp_path / "nine-megabytes.json"
    payload.write_bytes(b" " * NINE_MB)
    async with live_server(settings) as server:
        command = [
            curl, "--silent", "--show-error", "--max-time", "30", "--write-out", "\n%{http_code}",
            "--data-binary", f"@{payload}", *curl_options, "-H", "Connection: close",
            "-H", f"Authorization: Bearer {organization.member.token}", f"{server.http}/api/batch-jobs",
        ]  # fmt: skip
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "413"
    assert '"code":"body_too_large"' in body
