"""WebSockets: live job progress. Snapshot first, then ordered events, cancel from the client.

Protocol (JSON text frames). Server → client: ``{"type": "snapshot", "job": {...}}`` (or
``"jobs": [...]`` on the organization socket), ``{"type": "progress", ...}``,
``{"type": "finished", "job": {...}}`` and ``{"type": "error", "error": {code, message}}``.
Client → server: ``{"type": "cancel"}`` (``"job_id"`` too on the organization socket).

A bad message gets an ``error`` and the socket stays open. These errors close it, with a close
code mirroring the HTTP status: ``session_ended`` (4401), ``job_not_found`` (4404),
``too_many_sockets`` (4429: the user or the organization already has ``WS_MAX_SOCKETS_PER_USER``
or ``WS_MAX_SOCKETS_PER_ORG`` open), ``rate_limited`` (4429: more client messages than
``WS_MESSAGE_BURST`` at once, then ``WS_MESSAGES_PER_SECOND``), and ``service_unavailable``
(1013, PostgreSQL cannot be read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from typing import Any
from uuid import UUID

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from invoicing.domain.token_bucket import TokenBucket
from invoicing.infra.socket_slots import SocketSlot
from invoicing.jobs import actions
from invoicing.jobs import store as jobs
from invoicing.jobs.events import event_for
from invoicing.kernel.errors import (
    BadRequest,
    Forbidden,
    InvoicingError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from invoicing.kernel.principal import Principal
from server import state
from server.auth import authenticate, same_origin, still_authorized
from server.errors import database_failures_translated, response_for
from server.hub import Event, Subscription

MAX_CLIENT_MESSAGE = 4096
#: uvicorn's ``ws_max_size``: 4096 characters are at most 16 KiB of UTF-8. A bigger frame closes
#: the socket with 1009 (message too big) before it is buffered.
MAX_CLIENT_FRAME_BYTES = 4 * MAX_CLIENT_MESSAGE
#: Close codes in the private range, mirroring HTTP statuses.
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_TOO_MANY_REQUESTS = 4401, 4403, 4404, 4429
#: RFC 6455's "Try Again Later": the database is unavailable; poll, or reconnect in a while.
CLOSE_TRY_AGAIN_LATER = 1013
#: How often, at most, an open socket checks that its credential still allows it (a revoked
#: token, a logout, a removed membership): events stop, and the socket closes 4401, within
#: this. Each wait is drawn from its last quarter, so that sockets opened together do not all
#: check at once (1,000 sockets: about 290 one-row reads a second).
RECHECK_SECONDS = 4.0
#: How long a socket's slot counts against its user's and organization's caps unless renewed
#: (the guard renews it at every recheck): a server process that dies frees its sockets' slots
#: within this.
SOCKET_LEASE_SECONDS = 3 * RECHECK_SECONDS


class JobWatcher:
    """Sends one socket what it should see, in order, each job's ``seq`` strictly growing."""

    def __init__(self, websocket: WebSocket, principal: Principal, job_id: UUID | None) -> None:
        self.websocket = websocket
        self.principal = principal
        self.job_id = job_id
        self.last_seq: dict[str, int] = {}
        self._send_lock = asyncio.Lock()
        self.services = state.services(websocket)
        settings = self.services.settings
        self.slot = SocketSlot(
            self.services.queue.redis, settings, principal, lease_seconds=SOCKET_LEASE_SECONDS
        )
        self.messages = TokenBucket(settings.ws_messages_per_second, settings.ws_message_burst)

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        async with self._send_lock:
            await self.websocket.send_text(text)

    async def send_error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "error": {"code": code, "message": message}})

    async def snapshot(self) -> bool:
        """Send the current state from PostgreSQL; True if the watched job has finished.

        ServiceUnavailable while PostgreSQL cannot answer.
        """
        with database_failures_translated(self.websocket):
            return await self._snapshot()

    async def _snapshot(self) -> bool:
        async with self.services.database.scoped(self.principal.organization_id) as connection:
            if self.job_id is not None:
                job = await jobs.get_job(connection, self.principal.organization_id, self.job_id)
                self.last_seq[str(job.id)] = job.progress_seq
                await self.send({"type": "snapshot", "job": job.to_json()})
                if job.is_finished:
                    await self.send(dict(event_for(job)))
                return job.is_finished
            active = await jobs.list_active_jobs(connection, self.principal.organization_id)
        for job in active:
            self.last_seq[str(job.id)] = job.progress_seq
        await self.send({"type": "snapshot", "jobs": [job.to_json() for job in active]})
        return False

    async def forward(self, subscription: Subscription) -> None:
        """Relay events until the watched job finishes (or forever on the organization socket).

        The hub already coalesced them per job; what piles up while a send is slow collapses
        to the newest state per job in the subscription.
        """
        while True:
            events, resync = await subscription.next()
            if resync and await self.snapshot():
                return
            for delivery in events:
                if await self._relay(delivery.event, delivery.text):
                    return

    async def _relay(self, event: Event, text: str | None = None) -> bool:
        """Send an event unless the client already has this job's state at or past its seq."""
        job_id, seq = str(event["job_id"]), int(event["seq"])
        if seq <= self.last_seq.get(job_id, -1):
            return False
        self.last_seq[job_id] = seq
        await self.send(text or event)
        return event["type"] == "finished" and self.job_id is not None

    async def keep_authorized(self) -> None:
        """Return once the socket's credential no longer allows it (checked every
        ``RECHECK_SECONDS``, read-only); a check PostgreSQL cannot answer is tried again later.
        Each wake renews the socket's slot first, so it keeps counting while the socket is open."""
        while True:
            await asyncio.sleep(RECHECK_SECONDS * random.uniform(0.75, 1.0))
            await self.slot.renew()
            if not await self._authorized():
                return

    async def _authorized(self) -> bool:
        try:
            with database_failures_translated(self.websocket):
                return await still_authorized(self.websocket, self.services.database, self.principal)
        except ServiceUnavailable:
            return True  # not known now: the next check, or the outage handling, decides

    async def receive(self) -> None:
        """Handle client messages until the client goes away or cancels the watched job."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            # Every frame counts, malformed or not, before anything is done for it: nothing of
            # a message over the limit is acted on, and the socket closes.
            if not self.messages.take(time.monotonic()):
                raise TooManyMessages(self.messages)
            try:
                with database_failures_translated(self.websocket):
                    if await self._handle(message.get("text")):
                        return
            except CredentialEnded:
                raise
            except InvoicingError as error:
                # The socket stays open: a cancel refused, or failed in an outage, may be sent again.
                await self.send_error(error.code, error.message)

    async def _handle(self, raw: str | None) -> bool:
        if raw is None:
            raise BadRequest("Messages must be JSON text frames.", code="invalid_message")
        if len(raw) > MAX_CLIENT_MESSAGE:
            raise BadRequest("Message too large.", code="message_too_large")
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            raise BadRequest("Messages must be JSON objects.", code="invalid_message") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise BadRequest('Messages must be JSON objects with a "type".', code="invalid_message")
        if message["type"] != "cancel":
            raise BadRequest(f"Unknown message type {message['type'][:40]!r}.", code="unknown_message")
        job_id = self.job_id or actions.parse_job_id(str(message.get("job_id")))
        if not await self._authorized():
            raise CredentialEnded()
        job = await actions.cancel_job(self.services, self.principal, job_id)
        return await self._relay(dict(event_for(job)))


class CredentialEnded(Unauthorized):
    """The token was revoked, the session ended, or the user left the organization."""

    code = "session_ended"

    def __init__(self) -> None:
        super().__init__(
            "Your access has ended (signed out, token revoked or membership removed); log in again."
        )


class TooManyMessages(TooManyRequests):
    """The client sent messages faster than its socket allows (``rate_limited``)."""

    def __init__(self, bucket: TokenBucket) -> None:
        super().__init__(
            f"More than {bucket.burst:g} messages at once, or {bucket.rate:g} a second; "
            "this connection is closed.",
            retry_after=1,
        )


async def _admit(websocket: WebSocket) -> Principal | None:
    """Authenticate before accepting; a refused handshake gets an HTTP 403 and nothing else.

    While PostgreSQL is unavailable the handshake is answered like an HTTP request: 503 with
    ``Retry-After`` and the error body (403 from a server without the denial extension).
    """
    if "origin" in websocket.headers and not same_origin(websocket):
        await websocket.close(code=CLOSE_FORBIDDEN)
        return None
    try:
        with database_failures_translated(websocket):
            return await authenticate(websocket, state.services(websocket).database)
    except (Unauthorized, Forbidden):
        await websocket.close(code=CLOSE_UNAUTHORIZED)
        return None
    except ServiceUnavailable as error:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(response_for(error))
        else:
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER)
        return None


async def _serve(websocket: WebSocket, principal: Principal, job_id: UUID | None) -> None:
    watcher = JobWatcher(websocket, principal, job_id)
    try:
        # Counted once the principal is known, before any work for the socket (the snapshot).
        await watcher.slot.take()
    except TooManyRequests as error:
        # Accepted, told why, then closed: a browser cannot read why a handshake was refused.
        await _close_with(watcher, error)
        return
    try:
        await _watch(watcher)
    finally:
        await watcher.slot.release()


async def _watch(watcher: JobWatcher) -> None:
    websocket, hub = watcher.websocket, watcher.services.hub
    async with hub.subscribe(watcher.principal.organization_id, watcher.job_id) as subscription:
        # Subscribed before the snapshot is read: nothing committed after it can be missed.
        try:
            if await watcher.snapshot():
                await close_normally(websocket)
                return
        except (NotFound, ServiceUnavailable) as error:
            await _close_with(watcher, error)
            return
        receiver = asyncio.create_task(watcher.receive())
        sender = asyncio.create_task(watcher.forward(subscription))
        guard = asyncio.create_task(watcher.keep_authorized())
        done, pending = await asyncio.wait({receiver, sender, guard}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failures = [task.exception() for task in done]
        await _close_after(watcher, credential_ended=guard in done, failures=failures)


async def _close_after(
    watcher: JobWatcher, *, credential_ended: bool, failures: list[BaseException | None]
) -> None:
    """Close the socket as its first task to end says.

    Its right to the organization's events ended: say so (the UI sends the user to log in) and
    close, before anything more is sent. Too many messages: say so and close. A resync (after a
    Redis reconnect) could not read PostgreSQL: say so and close, the client reconnects or
    polls. A task that returned means the watched job finished: close normally. One that raised
    otherwise means the client went away (or the send failed): nothing left to close.
    """
    refusals = [error for error in failures if isinstance(error, (TooManyRequests, ServiceUnavailable))]
    if credential_ended or any(isinstance(error, CredentialEnded) for error in failures):
        await _close_with(watcher, CredentialEnded())
    elif refusals:
        await _close_with(watcher, refusals[0])
    elif any(error is None for error in failures):
        await close_normally(watcher.websocket)


async def close_normally(websocket: WebSocket) -> None:
    """Close with 1000 unless either side already closed: a client that hung up first (after
    ``finished``, or leaving the page) is a normal end, not an error to send into or log."""
    if WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state):
        return
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.close(code=1000)


#: The close code after each kind of error that ends a socket; any other: try again later.
_CLOSE_CODES: tuple[tuple[type[InvoicingError], int], ...] = (
    (NotFound, CLOSE_NOT_FOUND),
    (Unauthorized, CLOSE_UNAUTHORIZED),
    (TooManyRequests, CLOSE_TOO_MANY_REQUESTS),
)


async def _close_with(watcher: JobWatcher, error: InvoicingError) -> None:
    await watcher.send_error(error.code, error.message)
    code = next((code for kind, code in _CLOSE_CODES if isinstance(error, kind)), CLOSE_TRY_AGAIN_LATER)
    await watcher.websocket.close(code=code)


async def job_socket(websocket: WebSocket) -> None:
    principal = await _admit(websocket)
    if principal is None:
        return
    await websocket.accept()
    try:
        job_id = actions.parse_job_id(websocket.path_params["job_id"])
    except NotFound as missing:
        error = {"code": missing.code, "message": missing.message}
        await websocket.send_json({"type": "error", "error": error})
        await websocket.close(code=CLOSE_NOT_FOUND)
        return
    with contextlib.suppress(WebSocketDisconnect):
        await _serve(websocket, principal, job_id)


async def organization_socket(websocket: WebSocket) -> None:
    principal = await _admit(websocket)
    if principal is None:
        return
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await _serve(websocket, principal, None)


routes = [
    WebSocketRoute("/ws/batch-jobs/{job_id}", job_socket),
    WebSocketRoute("/ws/batch-jobs", organization_socket),
]
