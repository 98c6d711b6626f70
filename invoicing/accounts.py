"""Passwords, API tokens and roles: pure helpers, no database."""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES: tuple[str, ...] = ("admin", "member")

API_TOKEN_PREFIX = "inv_"

# A hasher only holds its cost parameters, so one per process is safe to share. The default is
# argon2-cffi's RFC 9106 low-memory profile (argon2id, 64 MiB, t=3, p=4). It is THE hasher: every
# account the product makes (demo seed included) and the login's stand-in hash for unknown
# emails use it, so a wrong password and an unknown email cost the same verification.
PASSWORD_HASHER = PasswordHasher()
# The OWASP minimum for argon2id (19 MiB, t=2, p=1): still a sound password hash, but several
# times cheaper, for tests only. Never for accounts the product makes: a verification then
# takes about a quarter of the stand-in's, and login times would tell known emails apart
# (issue 12). Every hash records its own parameters, so ``verify_password`` checks either.
FAST_PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str, *, hasher: PasswordHasher = PASSWORD_HASHER) -> str:
    """Return an argon2id hash of ``password`` in PHC string format (salt and costs included)."""
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether ``password`` matches ``password_hash``; a malformed hash never matches."""
    try:
        return PASSWORD_HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def stand_in_password_hash() -> str:
    """A hash of a random password, made once per process by ``PASSWORD_HASHER``: what a login
    for an unknown email verifies against, so that it costs what a wrong password costs."""
    return PASSWORD_HASHER.hash(secrets.token_urlsafe(16))


def new_api_token() -> str:
    """Return a fresh API token (``inv_`` and 256 random bits); show it once, store its hash."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """Return the SHA-256 digest of ``token``, the only form of it that is stored."""
    # A fast unsalted hash is right here, unlike for passwords: a token carries 256 random
    # bits, so its digest cannot be brute-forced, and every API request must find the token
    # by its digest, which a salted slow hash would not allow.
    return hashlib.sha256(token.encode("utf-8")).digest()
