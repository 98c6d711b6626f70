"""Looking up who a credential belongs to."""

from __future__ import annotations

import asyncpg

from invoicing.principal import Principal

# A revoked token, or one whose user has left the organization, authenticates nobody.
PRINCIPAL_BY_TOKEN = """
SELECT t.user_id, t.organization_id, m.role, u.email
FROM api_tokens t
JOIN memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
JOIN users u ON u.id = t.user_id
WHERE t.token_hash = $1 AND t.revoked_at IS NULL
"""


async def principal_by_token(connection: asyncpg.Connection, token_hash: bytes) -> Principal | None:
    row = await connection.fetchrow(PRINCIPAL_BY_TOKEN, token_hash)
    return (
        None if row is None else Principal(row["user_id"], row["organization_id"], row["role"], row["email"])
    )
