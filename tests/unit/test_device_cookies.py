"""Device cookies: made for one email by our key, and nothing else passes (no I/O)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from invoicing.accounts.devices import DEVICE_COOKIE_LIFETIME_SECONDS, DeviceCookies

NOW = 1_790_000_000
EMAIL = "Alice@Example.test"
devices = DeviceCookies.from_secret("a-secret-key-of-some-length")


def test_a_cookie_names_its_device_for_the_email_it_was_made_for() -> None:
    cookie = devices.issue(EMAIL, now=NOW)
    nonce = devices.device(cookie, EMAIL, now=NOW)
    assert nonce is not None
    assert cookie.split(".")[1] == nonce
    assert devices.device(cookie, "  alice@example.TEST ", now=NOW + 3600) == nonce, "as login normalizes"


def test_each_cookie_has_a_nonce_of_its_own() -> None:
    assert devices.issue(EMAIL, now=NOW).split(".")[1] != devices.issue(EMAIL, now=NOW).split(".")[1]


def test_a_cookie_names_nobody() -> None:
    cookie = devices.issue(EMAIL, now=NOW)
    assert "alice" not in cookie.lower()
    assert "example" not in cookie.lower()


def test_another_users_cookie_or_another_key_gives_nothing() -> None:
    cookie = devices.issue("mallory@example.test", now=NOW)
    assert devices.device(cookie, EMAIL, now=NOW) is None
    foreign = DeviceCookies.from_secret("another-secret-key-entirely").issue(EMAIL, now=NOW)
    assert devices.device(foreign, EMAIL, now=NOW) is None


def test_a_cookie_expires_after_its_lifetime() -> None:
    cookie = devices.issue(EMAIL, now=NOW)
    assert devices.device(cookie, EMAIL, now=NOW + DEVICE_COOKIE_LIFETIME_SECONDS) is not None
    assert devices.device(cookie, EMAIL, now=NOW + DEVICE_COOKIE_LIFETIME_SECONDS + 1) is None


def altered(cookie: str, part: int, change: str) -> str:
    parts = cookie.split(".")
    parts[part] = change
    return ".".join(parts)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda c: altered(c, 0, str(NOW - 1)), id="issue time"),
        pytest.param(lambda c: altered(c, 1, "A" * 22), id="nonce"),
        pytest.param(lambda c: altered(c, 2, "A" * 43), id="signature"),
        pytest.param(lambda c: c + ".", id="trailing dot"),
        pytest.param(lambda c: c.replace(".", ",", 1), id="separator"),
        pytest.param(lambda c: c[:-1], id="truncated"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: "x" * 4000, id="garbage"),
    ],
)
def test_an_altered_cookie_gives_nothing(forge: Callable[[str], str]) -> None:
    cookie = devices.issue(EMAIL, now=NOW)
    assert devices.device(forge(cookie), EMAIL, now=NOW) is None


def test_no_cookie_gives_nothing() -> None:
    assert devices.device(None, EMAIL, now=NOW) is None
