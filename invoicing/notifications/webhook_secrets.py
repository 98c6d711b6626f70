"""Webhook signing secrets, derived rather than stored.

A secret is an HMAC of the endpoint's id and a random salt (the database row's) under a key
derived from ``SECRET_KEY``: reading the database alone does not give a secret away, and
rotating one draws a new salt. Changing ``SECRET_KEY`` changes every endpoint's secret (its
administrators rotate and hand receivers the new one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from uuid import UUID

_PURPOSE = b"invoicing: webhook signing secrets"
PREFIX = "whsec_"


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def webhook_secret(secret_key: str | None, webhook_id: UUID, salt: bytes) -> str:
    """The endpoint's secret, ``whsec_`` and 43 URL-safe characters. There is none without
    ``SECRET_KEY``: the salt alone, in the database, would then give it away."""
    if not secret_key:
        raise ValueError("webhook secrets need SECRET_KEY")
    key = hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, webhook_id.bytes + salt, hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
