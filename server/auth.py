"""Authentication of API clients by bearer token (the browser's session cookie comes later)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from invoicing.accounts import hash_token
from invoicing.errors import Unauthorized
from invoicing.principal import Principal
from invoicing.storage.accounts import principal_by_token
from invoicing.storage.database import Database

MAX_TOKEN_LENGTH = 200


async def authenticate(connection: HTTPConnection, database: Database) -> Principal:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "Authentication required: send Authorization: Bearer <token>.", code="unauthorized"
        )
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("The token is not valid.", code="invalid_token")
    async with database.connection() as db:
        principal = await principal_by_token(db, hash_token(token))
    if principal is None:
        raise Unauthorized("The token is not valid.", code="invalid_token")
    return principal
