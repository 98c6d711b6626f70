"""Logging in and out of the browser UI: server-side sessions behind a random cookie token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

from invoicing.accounts import store as accounts
from invoicing.accounts.credentials import check_password, check_stand_in_password, hash_session_token
from invoicing.domain.emails import normalized_email
from invoicing.infra.database import Database
from invoicing.infra.limits import Limiter, login_retry_message
from invoicing.kernel.errors import Forbidden, TooManyRequests, Unauthorized
from invoicing.kernel.principal import Principal

SESSION_LIFETIME_SECONDS = 12 * 3600
# Verifying against a real hash when the email is unknown keeps both answers equally slow, so
# response times do not reveal which emails have accounts: the stand-in is made once, lazily
# (nothing slow at import), by the same hasher and parameters as every account's hash.
INVALID_CREDENTIALS = "Email or password is not correct."


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # goes into the cookie, never stored
    principal: Principal
    organization_name: str


async def login(
    database: Database,
    limiter: Limiter,
    email: str,
    password: str,
    *,
    address: str,
    device: str | None,
    secret_key: str | None,
    user_agent: str = "",
) -> Session:
    """A new session for the email and password, within the failed-login limits.

    The attempt is counted as failed before the password is checked, on the counters of
    ``address`` and the account, or of ``device`` (the nonce of a device cookie valid for this
    email); it is given back once the password is right. While a counter's wait runs, the
    attempt is refused with TooManyRequests, its password not checked. Unauthorized
    ``invalid_credentials`` for a wrong email or password, alike.
    """
    attempt = await limiter.reserve_login_attempt(limiter.login_counters(email, address, device))
    if not attempt.allowed:
        raise TooManyRequests(login_retry_message(attempt.retry_after), retry_after=attempt.retry_after)
    session = await _open_session(database, email, password, secret_key=secret_key, user_agent=user_agent)
    await limiter.refund_login_attempt(attempt)  # a successful login is no failure
    return session


async def _open_session(
    database: Database, email: str, password: str, *, secret_key: str | None, user_agent: str
) -> Session:
    email = normalized_email(email)
    async with database.unscoped() as connection:
        candidate = await accounts.login_candidate(connection, email)
    if candidate is None:
        await check_stand_in_password(password)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    if not await check_password(candidate.password_hash, password) or not candidate.memberships:
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    organization_id, organization_name, role = candidate.memberships[0]
    token = secrets.token_urlsafe(32)
    async with database.scoped(organization_id) as connection:
        await accounts.create_session(
            connection,
            token_hash=hash_session_token(token, secret_key),
            user_id=candidate.user_id,
            organization_id=organization_id,
            lifetime_seconds=SESSION_LIFETIME_SECONDS,
            user_agent=user_agent,
        )
    principal = Principal(candidate.user_id, organization_id, role, candidate.email)
    return Session(token, principal, organization_name)


async def logout(database: Database, token: str, *, secret_key: str | None) -> None:
    async with database.unscoped() as connection:
        await accounts.delete_session(connection, hash_session_token(token, secret_key))


async def principal_for_session(
    database: Database, token: str, *, secret_key: str | None
) -> Principal | None:
    async with database.unscoped() as connection:
        return await accounts.principal_by_session(connection, hash_session_token(token, secret_key))


async def memberships(database: Database, principal: Principal) -> list[tuple[UUID, str, str]]:
    """The organizations the user can act in, for choosing one."""
    async with database.unscoped() as connection:
        return await accounts.memberships_of(connection, principal.user_id)


async def switch_organization(
    database: Database, token: str, organization_id: UUID, *, secret_key: str | None
) -> None:
    """Act in another organization of the user's, chosen explicitly; Forbidden otherwise."""
    async with database.unscoped() as connection:
        switched = await accounts.switch_session_organization(
            connection, hash_session_token(token, secret_key), organization_id
        )
    if not switched:
        raise Forbidden("You are not a member of that organization.", code="not_a_member")
