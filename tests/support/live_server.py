"""The real application on a real uvicorn server, in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from cli.commands import uvicorn_security_options
from devtools.embedded import free_port
from invoicing.kernel.settings import Settings
from server.app import create_app


@dataclass(frozen=True)
class LiveServer:
    host: str

    @property
    def http(self) -> str:
        return f"http://{self.host}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}"


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=5,
        ws_ping_timeout=5,
        **uvicorn_security_options(settings),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield LiveServer(f"127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
