"""Looking up who a credential belongs to.

A credential names no organization until it is found, so these questions span organizations:
each is a function of migrations/0011_least_privilege.sql (run as the tables' owner), the
only way the application role reads across organizations. Writing a session is an ordinary
insert in the organization it is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from invoicing.kernel.principal import Principal

# A revoked token, or one whose user has left the organization, authenticates nobody.
PRINCIPAL_BY_TOKEN = "SELECT * FROM principal_by_token($1)"


async def principal_by_token(connection: asyncpg.Connection, token_hash: bytes) -> Principal | None:
    row = await connection.fetchrow(PRINCIPAL_BY_TOKEN, token_hash)
    return None if row is None else _principal(row)


def _principal(row: asyncpg.Record) -> Principal:
    return Principal(row["user_id"], row["organization_id"], row["role"], row["email"])


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    user_id: UUID
    email: str
    password_hash: str
    memberships: tuple[tuple[UUID, str, str], ...]  # (organization id, organization name, role)


LOGIN_CANDIDATE = """
SELECT id, email, password_hash, organization_ids, names, roles FROM login_candidate($1)
"""
PRINCIPAL_BY_SESSION = "SELECT * FROM principal_by_session($1)"


async def login_candidate(connection: asyncpg.Connection, email: str) -> LoginCandidate | None:
    row = await connection.fetchrow(LOGIN_CANDIDATE, email)
    if row is None:
        return None
    memberships = tuple(zip(row["organization_ids"], row["names"], row["roles"], strict=True))
    return LoginCandidate(row["id"], row["email"], row["password_hash"], memberships)


async def create_session(
    connection: asyncpg.Connection,
    *,
    token_hash: bytes,
    user_id: UUID,
    organization_id: UUID,
    lifetime_seconds: float,
    user_agent: str,
) -> None:
    await connection.execute(
        """
        INSERT INTO sessions (token_hash, user_id, organization_id, expires_at, user_agent)
        VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
        """,
        token_hash,
        user_id,
        organization_id,
        lifetime_seconds,
        user_agent[:300],
    )


async def principal_by_session(connection: asyncpg.Connection, token_hash: bytes) -> Principal | None:
    row = await connection.fetchrow(PRINCIPAL_BY_SESSION, token_hash)
    return None if row is None else _principal(row)


async def delete_session(connection: asyncpg.Connection, token_hash: bytes) -> None:
    await connection.execute("SELECT end_session($1)", token_hash)


async def organization_name(connection: asyncpg.Connection, organization_id: UUID) -> str:
    return str(await connection.fetchval("SELECT name FROM organizations WHERE id = $1", organization_id))


MEMBERSHIPS_OF = "SELECT organization_id, name, role FROM user_memberships($1)"
# Only to an organization the user belongs to: otherwise nothing changes.
SWITCH_SESSION_ORGANIZATION = "SELECT switch_session_organization($1, $2)"


async def memberships_of(connection: asyncpg.Connection, user_id: UUID) -> list[tuple[UUID, str, str]]:
    """(organization id, name, role) of every organization the user belongs to."""
    rows = await connection.fetch(MEMBERSHIPS_OF, user_id)
    return [(row["organization_id"], row["name"], row["role"]) for row in rows]


async def switch_session_organization(
    connection: asyncpg.Connection, token_hash: bytes, organization_id: UUID
) -> bool:
    return bool(await connection.fetchval(SWITCH_SESSION_ORGANIZATION, token_hash, organization_id))


# Read-only (no last-seen write): an open socket asks this every few seconds.
CREDENTIAL_ALLOWS = "SELECT credential_allows($1, $2, $3, $4)"


async def still_allows(
    connection: asyncpg.Connection, *, token_hash: bytes, is_session: bool, principal: Principal
) -> bool:
    """Whether the credential still lets ``principal`` act in its organization (not revoked,
    not logged out or expired, still a member, the session not moved to another organization)."""
    return bool(
        await connection.fetchval(
            CREDENTIAL_ALLOWS, token_hash, is_session, principal.user_id, principal.organization_id
        )
    )
