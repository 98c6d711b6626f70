"""Sealed organization scopes: a transaction acts in an organization only with its ticket.

Row-level security compares every row with ``current_organization_id()``, which a transaction
sets by naming the organization in ``app.organization_id``. Any SQL on the connection could
name another one, so the name only counts with ``app.organization_ticket``: an HMAC-SHA256 of
the organization's id under a key derived from ``SECRET_KEY``. The processes compute tickets;
PostgreSQL checks them against the key that ``invoicing migrate`` stored where only the owner
can read it (migrations/0011_least_privilege.sql). SQL that gets onto the application's
connection can read its own transaction's ticket, and so act in that organization, but it
cannot make one for another.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from invoicing.infra.database import Database

_PURPOSE = b"invoicing: organization scope tickets"
_BLOCK = 64  # SHA-256's block size: HMAC pads its key to it
NIL = UUID(int=0)

NAME_SCOPE = """
SELECT set_config('app.organization_id', $1, true), set_config('app.organization_ticket', $2, true)
"""
NAME_SCOPE_WITH_TIMEOUT = """
SELECT set_config('app.organization_id', $1, true), set_config('app.organization_ticket', $2, true),
       set_config('statement_timeout', $3, true)
"""
STORE_KEY = """
INSERT INTO organization_scope_keys (inner_key, outer_key) VALUES ($1, $2)
ON CONFLICT (one) DO UPDATE SET inner_key = EXCLUDED.inner_key, outer_key = EXCLUDED.outer_key
"""
CHECK_KEY = "SELECT organization_scope_check($1)"


@dataclass(frozen=True, slots=True)
class ScopeKey:
    key: bytes

    @classmethod
    def from_secret(cls, secret_key: str | None) -> ScopeKey | None:
        """The key of ``SECRET_KEY`` (None without one: scopes are then not sealed)."""
        if not secret_key:
            return None
        return cls(hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest())

    def ticket(self, organization_id: UUID) -> str:
        return hmac.new(self.key, organization_id.bytes, hashlib.sha256).hexdigest()

    def padded(self) -> tuple[bytes, bytes]:
        """HMAC's inner and outer keys, which PostgreSQL hashes a ticket with (it has SHA-256
        but no HMAC without an extension)."""
        key = self.key.ljust(_BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def ticket_of(key: ScopeKey | None, organization_id: UUID) -> str:
    return "" if key is None else key.ticket(organization_id)


async def store_key(connection: asyncpg.Connection, key: ScopeKey) -> None:
    """Seal scopes with ``key`` (the owner's connection): tickets of any other key stop counting."""
    await connection.execute(STORE_KEY, *key.padded())


async def check_key(connection: asyncpg.Connection, key: ScopeKey | None) -> str:
    """``sealed`` when the database checks tickets with ``key``; ``unsealed`` when it checks
    none; ``mismatch`` when it holds another key (every scope would then see nothing)."""
    status: str = await connection.fetchval(CHECK_KEY, ticket_of(key, NIL) or None)
    return status


async def seal_scopes(owner: Database, secret_key: str | None) -> None:
    """Seal organization scopes with SECRET_KEY's key (without SECRET_KEY, keep whatever key is
    stored: the processes say at start if theirs does not match)."""
    key = ScopeKey.from_secret(secret_key)
    if key is not None:
        async with owner.connection() as connection:
            await store_key(connection, key)
