"""/dev/mailbox: the mail `invoicing dev`'s own SMTP server received, for a newcomer to see the
emails the product sends. Routed only when ``DEV_MAILBOX_DIR`` is set (`invoicing dev` sets it)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from invoicing.kernel.errors import NotFound
from server import state
from server.pages import render_page

#: Messages listed, newest first.
SHOWN = 50
#: An email's HTML part runs nothing and loads nothing but its own inline styles.
EMAIL_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


@dataclass(frozen=True, slots=True)
class Mail:
    name: str
    to: str
    subject: str
    date: str
    text: str
    has_html: bool


def _folder(request: Request) -> Path:
    folder = state.services(request).settings.dev_mailbox_dir
    assert folder is not None, "routed only with DEV_MAILBOX_DIR"
    return folder


def _parse(path: Path) -> EmailMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _mail(path: Path) -> Mail:
    message = _parse(path)
    text = message.get_body(("plain",))
    return Mail(
        name=path.stem,
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        date=str(message["Date"] or ""),
        text="" if text is None else str(text.get_content()),
        has_html=message.get_body(("html",)) is not None,
    )


async def mailbox(request: Request) -> Response:
    folder = _folder(request)
    paths = sorted(folder.glob("*.eml"), reverse=True)[:SHOWN] if folder.is_dir() else []
    return render_page(request, "dev_mailbox.html", mails=[_mail(path) for path in paths])


async def mail_html(request: Request) -> Response:
    name = str(request.path_params["name"])
    path = _folder(request) / f"{name}.eml"
    if not name.replace("-", "").isdigit() or not path.is_file():
        raise NotFound("No such message.", code="message_not_found")
    html = _parse(path).get_body(("html",))
    if html is None:
        raise NotFound("That message has no HTML part.", code="message_not_found")
    content = str(html.get_content())
    return HTMLResponse(content, headers={"Content-Security-Policy": EMAIL_POLICY})


routes = [
    Route("/dev/mailbox", mailbox, methods=["GET"]),
    Route("/dev/mailbox/{name}.html", mail_html, methods=["GET"]),
]
