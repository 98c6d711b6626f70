"""Request bodies too large, or left unread: answer so that the client can read the answer.

A server that answers before it has read the whole request body and then closes the
connection makes the kernel reset it (unread data in the receive buffer): the client sees
"connection reset" while still sending, never the answer. So, for every route:

* a declared ``Content-Length`` over the cap is answered 413 ``body_too_large`` here, before
  routing, once the body has been read and thrown away;
* any other answer given before the body was read to its end (a 413 from ``read_json`` on a
  chunked body, a 401 to a POST with a body) first reads and throws away the rest.

Both close the connection afterwards (``Connection: close``). Draining is bounded
(``DRAIN_BYTES``, ``DRAIN_SECONDS``): past either the connection is closed as it is, since a
client sending that much more than any route accepts is owed no answer. A client that sent
``Expect: 100-continue`` has not sent its body yet; it is answered at once.

A client that goes away before its body is complete (Starlette's ``ClientDisconnect``) is
not an error: one DEBUG line, no answer (there is no one to read it) and no traceback.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_response
from server.requests import MAX_BODY_BYTES, too_large_message

#: Read and thrown away to let the client read a refusal; beyond, the connection is cut.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 20.0

logger = logging.getLogger(__name__)


class _Body:
    """The request's ``receive``, remembering how much was read and whether it was all."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.read = 0
        self.complete = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.complete = True
        return message

    async def drain(self) -> None:
        """Read the rest and throw it away, within the bounds."""
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self.complete and self.read <= DRAIN_BYTES:
                    await self.receive()
        except TimeoutError:
            pass


class BodyLimit:
    """Pure ASGI middleware: the body cap for every route, and refusals the client can read."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and not declared:
            await self.app(scope, receive, send)  # no body: nothing can be left unread
            return
        body = _Body(receive)
        if declared is not None and declared > self.max_bytes:
            if headers.get("expect", "").lower() != "100-continue" and declared <= DRAIN_BYTES:
                await body.drain()
            response = error_response(413, "body_too_large", too_large_message(self.max_bytes))
            response.headers["Connection"] = "close"
            await response(scope, body.receive, send)
            return

        async def send_once_read(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.complete:
                await body.drain()
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        try:
            await self.app(scope, body.receive, send_once_read)
        except ClientDisconnect:
            logger.debug(
                "client went away during the body of %s %s (%d bytes read)",
                scope.get("method"),
                scope.get("path"),
                body.read,
            )


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None
