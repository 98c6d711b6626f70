"""Device cookies: a browser's proof that it has logged in as a user before (OWASP's defence
against online guessing that an attacker cannot turn against the account's owner).

A login from a known device is counted on that device's own counter, never on the account's,
so a stranger's failures against the account do not slow its owner's browsers. Only a
successful login makes one, so holding one for an account means having known its password.

Format: ``<issued at, unix seconds>.<nonce>.<signature>``, the signature being HMAC-SHA256 over
the normalized email, the issue time and the nonce, with a key derived from ``SECRET_KEY``.
The cookie names nobody: the email is only inside the MAC, so a cookie is checked against the
email being tried and tells a reader nothing. The nonce names the device's failure counter.
Pure: the caller passes the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from invoicing.domain.emails import normalized_email

DEVICE_COOKIE_LIFETIME_SECONDS = 365 * 24 * 3600
_NONCE_BYTES = 16
#: Issue time, 16 bytes of nonce and a SHA-256 MAC, the last two in unpadded base64url.
_COOKIE_PATTERN = re.compile(
    r"(?P<issued>[0-9]{1,12})\.(?P<nonce>[A-Za-z0-9_-]{22})\.(?P<signature>[A-Za-z0-9_-]{43})"
)


@dataclass(frozen=True, slots=True)
class DeviceCookies:
    """Makes and checks device cookies with one key."""

    key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret_key: str) -> DeviceCookies:
        # A key for this purpose alone: nothing else SECRET_KEY may come to sign can be passed
        # off as a device cookie, or the other way round.
        return cls(hmac.digest(secret_key.encode(), b"invoicing device cookie", hashlib.sha256))

    def issue(self, email: str, *, now: int) -> str:
        """A new device cookie for ``email``, with a fresh nonce (so a fresh failure counter)."""
        issued, nonce = str(now), _encode(secrets.token_bytes(_NONCE_BYTES))
        return f"{issued}.{nonce}.{self._signature(email, issued, nonce)}"

    def device(self, cookie: str | None, email: str, *, now: int) -> str | None:
        """The nonce of ``cookie`` if it is a device cookie we made for ``email`` (as login
        normalizes it) less than a lifetime ago; None for anything else."""
        parts = _COOKIE_PATTERN.fullmatch(cookie or "")
        if parts is None or now - int(parts["issued"]) > DEVICE_COOKIE_LIFETIME_SECONDS:
            return None
        expected = self._signature(email, parts["issued"], parts["nonce"])
        return parts["nonce"] if hmac.compare_digest(parts["signature"], expected) else None

    def _signature(self, email: str, issued: str, nonce: str) -> str:
        # The email comes first and may hold any character; the two fields after it cannot
        # hold the separator, so no two (email, issued, nonce) give the same message.
        message = "\n".join((normalized_email(email), issued, nonce)).encode()
        return _encode(hmac.digest(self.key, message, hashlib.sha256))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
