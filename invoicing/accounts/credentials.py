"""Passwords, API tokens and roles: helpers with no database."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

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


#: Password checks one process runs at once. Each holds 64 MiB while it runs and already spreads
#: its 4 lanes over the cores (about 0.15 s on 2 cores, and 8 checks on 2 threads take 8 times
#: that): more at once would only add memory. 100 logins at once thus take 128 MiB, not 6 GiB;
#: the others wait their turn in the executor's queue, holding nothing but their request.
PASSWORD_CHECKS_AT_ONCE = 2


@functools.cache
def _password_checkers() -> ThreadPoolExecutor:
    # One per process, made on first use (no thread at import): the bound is on the process's
    # memory and cores, so every app instance in the process shares it.
    return ThreadPoolExecutor(max_workers=PASSWORD_CHECKS_AT_ONCE, thread_name_prefix="password-check")


async def check_password(password_hash: str, password: str) -> bool:
    """:func:`verify_password` in a worker thread, at most ``PASSWORD_CHECKS_AT_ONCE`` at a time
    per process. argon2 releases the GIL, so the event loop keeps serving everyone else
    meanwhile; run in the loop, each check stalled every request of the process."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_password_checkers(), verify_password, password_hash, password)


async def check_stand_in_password(password: str) -> None:
    """What a login for an unknown email does in place of :func:`check_password`: the same
    verification, the same way (the stand-in hash itself is made in that thread too, once)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(_password_checkers(), _verify_stand_in, password)


def _verify_stand_in(password: str) -> None:
    verify_password(stand_in_password_hash(), password)


@functools.cache
def stand_in_password_hash() -> str:
    """A hash of a random password, made once per process by ``PASSWORD_HASHER``: what a login
    for an unknown email verifies against, so that it costs what a wrong password costs."""
    return PASSWORD_HASHER.hash(secrets.token_urlsafe(16))


def new_api_token() -> str:
    """Return a fresh API token (``inv_`` and 256 random bits); show it once, store its hash."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_session_token(token: str, secret_key: str | None) -> bytes:
    """The stored form of a session token: an HMAC-SHA256 under a key of ``SECRET_KEY`` (plain
    SHA-256 without one). Keyed because a session can be switched to another organization of
    its user: a row that SQL slipped into ``sessions`` (for a user who is also in another
    organization) must never match a cookie anyone holds, and the database never sees the key."""
    if not secret_key:
        return hash_token(token)
    return hmac.new(_session_key(secret_key), token.encode("utf-8"), hashlib.sha256).digest()


@functools.cache
def _session_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), b"invoicing: session tokens", hashlib.sha256).digest()


def hash_token(token: str) -> bytes:
    """Return the SHA-256 digest of ``token``, the only form of it that is stored."""
    # A fast unsalted hash is right here, unlike for passwords: a token carries 256 random
    # bits, so its digest cannot be brute-forced, and every API request must find the token
    # by its digest, which a salted slow hash would not allow.
    return hashlib.sha256(token.encode("utf-8")).digest()
