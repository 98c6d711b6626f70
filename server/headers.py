"""Security headers on every HTTP response (pages add their Content-Security-Policy too).

Answers to a request that carries credentials (``Authorization``, or the session cookie) are
``Cache-Control: no-store`` unless the route chose its own (``GET /api/batch-jobs/{id}``:
``private, no-cache`` with its ETag), so no invoice, customer or page of a logged-in user stays
on a shared computer's disk or in a proxy. Static files are left cacheable: the browser sends
the cookie with them too, and they hold nothing private.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import SESSION_COOKIE

SECURITY_HEADERS = {
    # Never sniff a JSON or text answer into something executable.
    "X-Content-Type-Options": "nosniff",
    # No framing anywhere (CSP frame-ancestors on pages; this for older browsers and the API).
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

#: Sent when SESSION_COOKIE_SECURE=true: the site is only ever reached over HTTPS (a year).
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"
NO_STORE = "no-store"
#: Paths whose answers hold nothing private, cacheable even for a logged-in user.
PUBLIC_PREFIXES = ("/static/",)


def carries_credentials(scope: Scope) -> bool:
    """The request sends an ``Authorization`` header or the session cookie."""
    headers = Headers(scope=scope)
    if "authorization" in headers:
        return True
    return SESSION_COOKIE in cookie_parser(headers.get("cookie", ""))


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers without buffering bodies or touching WebSockets."""

    def __init__(self, app: ASGIApp, *, strict_transport_security: bool = False) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if strict_transport_security:
            self.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        private = carries_credentials(scope) and not str(scope.get("path", "")).startswith(PUBLIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if private:
                    headers.setdefault("Cache-Control", NO_STORE)
            await send(message)

        await self.app(scope, receive, send_with_headers)
