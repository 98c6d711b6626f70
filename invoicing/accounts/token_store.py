"""API tokens of one user in one organization: every statement names both."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from invoicing.accounts.views import ApiToken

_COLUMNS = "id, name, created_at, last_used_at, revoked_at"

# The membership, and a lock held to the transaction's end on creating this user's tokens, so
# that two concurrent creations cannot both pass the count. An advisory lock: the application
# role may not lock (nor write) memberships, which only the owner writes. The two-key form has
# its own key space; the first key names this use, the second is the user's (a clash only
# makes two users' creations take turns).
LOCK_MEMBERSHIP = """
SELECT pg_advisory_xact_lock($3, hashtext(user_id::text))
FROM memberships WHERE organization_id = $1 AND user_id = $2
"""
TOKEN_CREATION_LOCK_CLASS = 724_031_504

COUNT_ACTIVE = """
SELECT count(*) FROM api_tokens WHERE organization_id = $1 AND user_id = $2 AND revoked_at IS NULL
"""

INSERT_TOKEN = f"""
INSERT INTO api_tokens (organization_id, user_id, name, token_hash)
VALUES ($1, $2, $3, $4)
RETURNING {_COLUMNS}
"""

LIST_TOKENS = f"""
SELECT {_COLUMNS} FROM api_tokens
WHERE organization_id = $1 AND user_id = $2
ORDER BY created_at DESC, id DESC
LIMIT $3
"""

# Revoking twice keeps the first time: the answer is the same record, not an error.
REVOKE_TOKEN = f"""
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE id = $3 AND organization_id = $1 AND user_id = $2
RETURNING {_COLUMNS}
"""


async def lock_membership(connection: asyncpg.Connection, organization_id: UUID, user_id: UUID) -> bool:
    """Lock the user's membership for this transaction; False if there is none."""
    found = await connection.fetchrow(LOCK_MEMBERSHIP, organization_id, user_id, TOKEN_CREATION_LOCK_CLASS)
    return found is not None


async def count_active(connection: asyncpg.Connection, organization_id: UUID, user_id: UUID) -> int:
    return int(await connection.fetchval(COUNT_ACTIVE, organization_id, user_id))


async def insert_token(
    connection: asyncpg.Connection, organization_id: UUID, user_id: UUID, name: str, token_hash: bytes
) -> ApiToken:
    row = await connection.fetchrow(INSERT_TOKEN, organization_id, user_id, name, token_hash)
    return ApiToken.from_row(row)


async def list_tokens(
    connection: asyncpg.Connection, organization_id: UUID, user_id: UUID, *, limit: int
) -> list[ApiToken]:
    rows = await connection.fetch(LIST_TOKENS, organization_id, user_id, limit)
    return [ApiToken.from_row(row) for row in rows]


async def revoke_token(
    connection: asyncpg.Connection, organization_id: UUID, user_id: UUID, token_id: UUID
) -> ApiToken | None:
    row = await connection.fetchrow(REVOKE_TOKEN, organization_id, user_id, token_id)
    return None if row is None else ApiToken.from_row(row)
