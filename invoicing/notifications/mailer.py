"""Email out through an SMTP server (``SMTP_URL``), with aiosmtplib."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from invoicing.domain.notice_emails import EmailContent

SEND_TIMEOUT_SECONDS = 10.0


class EmailRefused(Exception):
    """The server refused the message for good (a 5xx answer): trying again would not help."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    #: smtps://: TLS from the first byte; smtp://: STARTTLS when the server offers it.
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit_tls else 587),
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            implicit_tls=implicit_tls,
        )


def build_message(content: EmailContent, *, sender: str, recipient: str) -> EmailMessage:
    """A plain-text and HTML message, marked as automatic (no out-of-office replies)."""
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message


async def send(server: SmtpServer, message: EmailMessage) -> None:
    """Send, or raise: EmailRefused when the server refuses it for good, another exception
    (connection, timeout, a 4xx answer) when a later attempt may succeed."""
    try:
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=_start_tls(server),
            timeout=SEND_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPAuthenticationError:
        raise  # our credentials: tried again, so mail waits for the fix instead of being lost
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise EmailRefused(f"{exc.code} {exc.message}"[:300]) from exc
        raise
    except aiosmtplib.SMTPRecipientsRefused as exc:
        # Greylisting and a full mailbox (4xx) pass; only a refusal of every recipient for good fails.
        if all(500 <= refused.code < 600 for refused in exc.recipients):
            raise EmailRefused(str(exc)[:300]) from exc
        raise


def _start_tls(server: SmtpServer) -> bool | None:
    """smtps: TLS already; smtp:// with a password: STARTTLS required (a server, or someone in
    between, that does not offer it gets no password in clear); without: when offered."""
    if server.implicit_tls:
        return False
    return True if server.username is not None else None
