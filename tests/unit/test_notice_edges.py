"""Notice rules at their edges: a forged timestamp, and webhook secrets without SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from uuid import uuid4

from invoicing.domain.notices import verify_signature
from invoicing.notifications.webhook_secrets import new_salt, webhook_secret


def test_a_malformed_timestamp_is_refused_not_raised() -> None:
    """verify_signature (and the README's receiver snippet it mirrors) checks the timestamp
    with str.isdigit(), which is true for "²" and other Unicode digits that int() refuses:
    a forged header makes the receiver's check raise ValueError (a 500 at the receiver) instead
    of returning False. Use isdecimal() on an ASCII string, or int() under try."""
    assert verify_signature("whsec_x", "t=\u00b2,v1=00", b"{}", now=int(time.time())) is False


def test_without_secret_key_a_webhook_secret_cannot_be_computed_from_the_database() -> None:
    """SECURITY.md: "the database holds only the salt", reading it does not give a secret away.
    With SECRET_KEY unset (allowed: the server only warns) the key is HMAC(b"", purpose), public,
    so the endpoint's id and salt, both in webhook_endpoints, are the secret. Refusing to create
    or sign webhooks without SECRET_KEY would do."""
    webhook_id, salt = uuid4(), new_salt()
    try:
        secret = webhook_secret(None, webhook_id, salt)
    except Exception:
        return  # refusing is a fix
    public_key = hmac.new(b"", b"invoicing: webhook signing secrets", hashlib.sha256).digest()
    digest = hmac.new(public_key, webhook_id.bytes + salt, hashlib.sha256).digest()
    from_the_database = "whsec_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert secret != from_the_database
