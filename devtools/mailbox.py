"""An SMTP server that keeps what it receives: `invoicing dev` runs one when no SMTP_URL is
given (the captured mail shows at /dev/mailbox), and the tests run one to read what was sent."""

from __future__ import annotations

import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from devtools.embedded import free_port


class Mailbox:
    """aiosmtpd's handler: each message accepted is kept in memory and, with a folder, written
    there as ``<time>-<n>.eml`` (what /dev/mailbox reads)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        raw = bytes(envelope.original_content or envelope.content)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._messages.append(parsed)
            count = len(self._messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.time_ns()}-{count}.eml").write_bytes(raw)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)


class SmtpServer:
    """A started aiosmtpd server on loopback (its own thread); ``url`` is its SMTP_URL."""

    def __init__(self, handler: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)
        self.url = f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
