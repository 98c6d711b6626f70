"""Who is calling: an API token (``Authorization: Bearer``) or the browser's session cookie.

Cookies are sent by the browser on cross-site requests too, so a cookie only counts on a
state-changing request, or a WebSocket handshake, whose ``Origin`` is this site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from invoicing.accounts.credentials import hash_session_token, hash_token
from invoicing.accounts.sessions import principal_for_session
from invoicing.accounts.store import principal_by_token, still_allows
from invoicing.infra.database import Database
from invoicing.kernel.errors import Forbidden, Unauthorized
from invoicing.kernel.principal import Principal
from server import state

SESSION_COOKIE = "invoicing_session"
MAX_TOKEN_LENGTH = 200
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(connection: HTTPConnection) -> bool:
    """The request's Origin (or, lacking it, Referer) is this very site."""
    origin = connection.headers.get("origin") or connection.headers.get("referer")
    host = connection.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    expected_scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return parts.netloc == host and parts.scheme == expected_scheme


def session_token(connection: HTTPConnection) -> str | None:
    token = connection.cookies.get(SESSION_COOKIE)
    return token if token and len(token) <= MAX_TOKEN_LENGTH else None


async def authenticate(connection: HTTPConnection, database: Database) -> Principal:
    header = connection.headers.get("authorization")
    if header is not None:
        return await _by_bearer_token(header, database)
    token = session_token(connection)
    if token is None:
        raise Unauthorized("Authentication required: log in, or send Authorization: Bearer <token>.")
    is_websocket = connection.scope["type"] == "websocket"
    if (is_websocket or connection.scope.get("method") not in SAFE_METHODS) and not same_origin(connection):
        raise Forbidden("This request must come from the application's own pages.", code="cross_site_request")
    principal = await principal_for_session(
        database, token, secret_key=state.services(connection).settings.secret_key
    )
    if principal is None:
        raise Unauthorized("Your session has ended; log in again.", code="session_expired")
    return principal


async def _by_bearer_token(header: str, database: Database) -> Principal:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "Authentication required: send Authorization: Bearer <token>.", code="unauthorized"
        )
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid_token()
    async with database.unscoped() as db:
        principal = await principal_by_token(db, hash_token(token))
    if principal is None:
        raise _invalid_token()
    return principal


def _invalid_token() -> Unauthorized:
    """An overlong token and an unknown one get the same answer: neither is any user's."""
    return Unauthorized("The token is not valid.", code="invalid_token")


async def still_authorized(connection: HTTPConnection, database: Database, principal: Principal) -> bool:
    """Whether the credential ``connection`` was authenticated with (its bearer token or session
    cookie) still lets ``principal`` act: a long-lived WebSocket asks this, read-only."""
    header = connection.headers.get("authorization")
    if header is not None:
        token, is_session = header.partition(" ")[2].strip(), False
    else:
        token, is_session = session_token(connection) or "", True
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    token_hash = (
        hash_session_token(token, state.services(connection).settings.secret_key)
        if is_session
        else hash_token(token)
    )
    async with database.unscoped() as db:
        return await still_allows(db, token_hash=token_hash, is_session=is_session, principal=principal)
