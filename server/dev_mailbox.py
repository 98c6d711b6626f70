"""/dev/mailbox: the mail `invoicing dev`'s own SMTP server received, for a newcomer to see the
emails the product sends. Routed only when ``DEV_MAILBOX_DIR`` is set (`invoicing dev` sets it),
and even there each signed-in user sees only the mail sent to them."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from invoicing.domain.emails import normalized_email
from invoicing.kernel.errors import NotFound
from server import state
from server.pages import account_context, principal_or_none, render_page

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


def _addressed_to(message: EmailMessage, email: str) -> bool:
    return normalized_email(parseaddr(str(message["To"] or ""))[1]) == normalized_email(email)


async def mailbox(request: Request) -> Response:
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    folder = _folder(request)
    paths = sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []
    mine = [path for path in paths if _addressed_to(_parse(path), principal.email)][:SHOWN]
    context = await account_context(request, principal)
    return render_page(
        request, "dev_mailbox.html", page="mailbox", mails=[_mail(path) for path in mine], **context
    )


async def mail_html(request: Request) -> Response:
    principal = await principal_or_none(request)
    name = str(request.path_params["name"])
    path = _folder(request) / f"{name}.eml"
    if principal is None or not name.replace("-", "").isdigit() or not path.is_file():
        raise NotFound("No such message.", code="message_not_found")
    message = _parse(path)
    if not _addressed_to(message, principal.email):
        raise NotFound("No such message.", code="message_not_found")
    html = message.get_body(("html",))
    if html is None:
        raise NotFound("That message has no HTML part.", code="message_not_found")
    content = str(html.get_content())
    return HTMLResponse(content, headers={"Content-Security-Policy": EMAIL_POLICY})


routes = [
    Route("/dev/mailbox", mailbox, methods=["GET"]),
    Route("/dev/mailbox/{name}.html", mail_html, methods=["GET"]),
]
