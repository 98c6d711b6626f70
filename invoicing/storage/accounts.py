"""Looking up who a credential belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from invoicing.principal import Principal

# A revoked token, or one whose user has left the organization, authenticates nobody.
PRINCIPAL_BY_TOKEN = """
SELECT t.id, t.user_id, t.organization_id, m.role, u.email,
       t.last_used_at IS NULL OR t.last_used_at < now() - interval '5 minutes' AS stale_use
FROM api_tokens t
JOIN memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
JOIN users u ON u.id = t.user_id
WHERE t.token_hash = $1 AND t.revoked_at IS NULL
"""


async def principal_by_token(connection: asyncpg.Connection, token_hash: bytes) -> Principal | None:
    row = await connection.fetchrow(PRINCIPAL_BY_TOKEN, token_hash)
    if row is None:
        return None
    if row["stale_use"]:
        # Recorded at most every 5 minutes: "last used" without a write on every request.
        await connection.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"])
    return Principal(row["user_id"], row["organization_id"], row["role"], row["email"])


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    user_id: UUID
    email: str
    password_hash: str
    memberships: tuple[tuple[UUID, str, str], ...]  # (organization id, organization name, role)


LOGIN_CANDIDATE = """
SELECT u.id, u.email, u.password_hash,
       coalesce(array_agg(m.organization_id ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}')
           AS organization_ids,
       coalesce(array_agg(o.name ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}') AS names,
       coalesce(array_agg(m.role ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}') AS roles
FROM users u
LEFT JOIN memberships m ON m.user_id = u.id
LEFT JOIN organizations o ON o.id = m.organization_id
WHERE u.email = $1
GROUP BY u.id
"""

PRINCIPAL_BY_SESSION = """
UPDATE sessions s SET last_seen_at = now()
FROM memberships m, users u
WHERE s.token_hash = $1 AND s.expires_at > now()
  AND m.organization_id = s.organization_id AND m.user_id = s.user_id AND u.id = s.user_id
RETURNING s.user_id, s.organization_id, m.role, u.email
"""


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
    return (
        None if row is None else Principal(row["user_id"], row["organization_id"], row["role"], row["email"])
    )


async def delete_session(connection: asyncpg.Connection, token_hash: bytes) -> None:
    await connection.execute("DELETE FROM sessions WHERE token_hash = $1", token_hash)


async def organization_name(connection: asyncpg.Connection, organization_id: UUID) -> str:
    return str(await connection.fetchval("SELECT name FROM organizations WHERE id = $1", organization_id))


MEMBERSHIPS_OF = """
SELECT m.organization_id, o.name, m.role
FROM memberships m JOIN organizations o ON o.id = m.organization_id
WHERE m.user_id = $1
ORDER BY o.name, o.id
"""

# Only to an organization the user belongs to: otherwise nothing changes.
SWITCH_SESSION_ORGANIZATION = """
UPDATE sessions s SET organization_id = $2
WHERE s.token_hash = $1
  AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = s.user_id AND m.organization_id = $2)
RETURNING s.organization_id
"""


async def memberships_of(connection: asyncpg.Connection, user_id: UUID) -> list[tuple[UUID, str, str]]:
    """(organization id, name, role) of every organization the user belongs to."""
    rows = await connection.fetch(MEMBERSHIPS_OF, user_id)
    return [(row["organization_id"], row["name"], row["role"]) for row in rows]


async def switch_session_organization(
    connection: asyncpg.Connection, token_hash: bytes, organization_id: UUID
) -> bool:
    return await connection.fetchval(SWITCH_SESSION_ORGANIZATION, token_hash, organization_id) is not None


# Read-only (no last-seen write): an open socket asks this every few seconds.
TOKEN_STILL_ALLOWS = """
SELECT EXISTS (
    SELECT 1 FROM api_tokens t
    JOIN memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
    WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.user_id = $2 AND t.organization_id = $3
)
"""
SESSION_STILL_ALLOWS = """
SELECT EXISTS (
    SELECT 1 FROM sessions s
    JOIN memberships m ON m.organization_id = s.organization_id AND m.user_id = s.user_id
    WHERE s.token_hash = $1 AND s.expires_at > now() AND s.user_id = $2 AND s.organization_id = $3
)
"""


async def still_allows(
    connection: asyncpg.Connection, *, token_hash: bytes, is_session: bool, principal: Principal
) -> bool:
    """Whether the credential still lets ``principal`` act in its organization (not revoked,
    not logged out or expired, still a member, the session not moved to another organization)."""
    query = SESSION_STILL_ALLOWS if is_session else TOKEN_STILL_ALLOWS
    return bool(await connection.fetchval(query, token_hash, principal.user_id, principal.organization_id))
