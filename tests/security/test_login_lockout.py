"""Failed logins slow the guesser down, and cannot be used to lock someone else out (issue 12,
finding 7: ten wrong passwords from anywhere made the right one answer 429 for 15 minutes).

A real uvicorn server behind a trusted proxy (``TRUSTED_PROXIES=127.0.0.1``), so each client
below chooses its address with ``X-Forwarded-For`` as a proxy would write it. A browser is an
httpx client with its own cookie jar: one that logged in before holds a device cookie.
Waits are the schedule's first steps (1, 2, 4 s), waited for by retrying until the server
accepts, never by sleeping; the schedule itself is tested in tests/unit/test_login_backoff.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from invoicing.accounts.devices import DeviceCookies
from invoicing.domain.login_backoff import ACCOUNT_MAX_WAIT_SECONDS
from invoicing.infra.database import Database
from server.pages import DEVICE_COOKIE
from tests.conftest import make_settings
from tests.support.factories import TEST_PASSWORD, create_organization
from tests.support.live_server import live_server
from tests.support.waiting import eventually

#: LOGIN_FAILURES_PER_15_MIN here: failures that cost no wait.
FREE = 3


@dataclass
class Browser:
    """One browser (cookie jar) at one client address."""

    client: httpx.AsyncClient
    address: str
    #: When the last login attempt was sent (time.monotonic()).
    sent_at: float = 0.0

    @property
    def origin(self) -> str:
        return str(self.client.base_url).rstrip("/")

    async def log_in(self, email: str, password: str = TEST_PASSWORD) -> httpx.Response:
        self.sent_at = time.monotonic()
        return await self.client.post(
            "/login",
            data={"email": email, "password": password},
            headers={"Origin": self.origin, "X-Forwarded-For": self.address},
        )

    async def log_out(self) -> httpx.Response:
        return await self.client.post("/logout", headers={"Origin": self.origin})

    @property
    def device_cookie(self) -> str:
        return self.client.cookies.get(DEVICE_COOKIE) or ""

    async def failures(self, email: str, count: int) -> list[int]:
        return [(await self.log_in(email, "wrong")).status_code for _ in range(count)]

    async def once_accepted(self, email: str, password: str = TEST_PASSWORD) -> httpx.Response:
        """Try until the server stops answering 429 (a refused attempt is not counted)."""

        async def accepted() -> httpx.Response | None:
            response = await self.log_in(email, password)
            return None if response.status_code == 429 else response

        return await eventually(accepted, timeout=30, what=f"a login attempt from {self.address}")


class Browsers:
    """Opens browsers on one live server; closed with it."""

    def __init__(self, base_url: str, stack: AsyncExitStack) -> None:
        self.base_url, self.stack = base_url, stack

    async def at(self, address: str) -> Browser:
        client = await self.stack.enter_async_context(httpx.AsyncClient(base_url=self.base_url))
        return Browser(client, address)


@asynccontextmanager
async def site(database_url: str, redis_url: str, **overrides: str) -> AsyncIterator[Browsers]:
    settings = make_settings(
        database_url, redis_url, LOGIN_FAILURES_PER_15_MIN=str(FREE), TRUSTED_PROXIES="127.0.0.1", **overrides
    )
    async with live_server(settings) as server, AsyncExitStack() as stack:
        yield Browsers(server.http, stack)


@pytest_asyncio.fixture
async def browsers(database_url: str, redis_url: str) -> AsyncIterator[Browsers]:
    async with site(database_url, redis_url) as opened:
        yield opened


@dataclass
class Victim:
    """An account whose owner logged in from a browser before (and logged out since)."""

    email: str
    known_browser: Browser


@pytest_asyncio.fixture
async def victim(database: Database, browsers: Browsers) -> Victim:
    organization = await create_organization(database, with_passwords=True)
    browser = await browsers.at("203.0.113.10")
    assert (await browser.log_in(organization.member.email)).status_code == 303
    await browser.log_out()
    assert browser.device_cookie, "a successful login leaves a device cookie"
    return Victim(organization.member.email, browser)


def waiting(response: httpx.Response) -> int:
    """The Retry-After of a refused login, once its page is checked to say so in words."""
    assert response.status_code == 429, response.status_code
    seconds = int(response.headers["retry-after"])
    unit = "second" if seconds < 60 else "minute"
    assert "Too many failed attempts; try again in " in response.text
    assert unit in response.text
    assert DEVICE_COOKIE not in response.headers.get("set-cookie", "")
    return seconds


def left_of(full_wait: int, refused: httpx.Response, since: float) -> bool:
    """Whether a refused login's Retry-After is what is left of a ``full_wait`` imposed by the
    failure sent at ``since``: the server counts that failure a moment after, so a loaded
    machine may leave a second less, never more."""
    return full_wait - (time.monotonic() - since) <= waiting(refused) <= full_wait


def sprayed_email() -> str:
    return f"guess-{uuid4().hex}@example.test"


async def attacked(browsers: Browsers, email: str) -> tuple[Browser, float]:
    """Fail against ``email`` from several addresses until the account's counter imposes a
    4-second wait (its free failures, then one after the 1-second wait and one after the
    2-second one), long enough for what a test then checks. Returns the first attacker and
    when the last failure was sent."""
    attacker = await browsers.at("198.51.100.1")
    assert await attacker.failures(email, FREE) == [401] * FREE
    for address in ("198.51.100.2", "198.51.100.3"):
        accomplice = await browsers.at(address)
        assert (await accomplice.once_accepted(email, "wrong")).status_code == 401
    return attacker, accomplice.sent_at


@pytest.mark.parametrize("secure", ["auto", "true"])
async def test_a_login_leaves_a_device_cookie_for_the_login_form_only_that_outlives_the_session(
    database_url: str, redis_url: str, database: Database, secure: str
) -> None:
    organization = await create_organization(database, with_passwords=True)
    async with site(database_url, redis_url, SESSION_COOKIE_SECURE=secure) as browsers:
        browser = await browsers.at("203.0.113.10")
        response = await browser.log_in(organization.member.email)
        logged_out = await browser.log_out()
    (device,) = [
        cookie for cookie in response.headers.get_list("set-cookie") if cookie.startswith(DEVICE_COOKIE)
    ]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in device.split(";")[1:]}
    assert attributes["path"] == "Path=/login", "sent with login attempts, nothing else"
    assert attributes["max-age"] == "Max-Age=31536000"
    assert attributes["samesite"] == "SameSite=lax"
    assert "httponly" in attributes
    assert ("secure" in attributes) == (secure == "true")
    assert organization.member.email.split("@")[0] not in device
    assert DEVICE_COOKIE not in logged_out.headers.get("set-cookie", ""), "logging out keeps the device known"


async def test_strangers_failing_against_an_account_do_not_keep_its_owner_out_of_a_known_browser(
    browsers: Browsers, victim: Victim
) -> None:
    attacker, since = await attacked(browsers, victim.email)
    from_many_addresses = [
        await Browser(attacker.client, f"198.51.100.{n}").failures(victim.email, 1) for n in range(10, 30)
    ]
    unknown_browser = await browsers.at("203.0.113.11")
    slowed = left_of(4, await unknown_browser.log_in(victim.email), since)
    at_once = await victim.known_browser.log_in(victim.email)
    await victim.known_browser.log_out()
    # The owner's known browser behind the attacker's own address (a shared NAT) too.
    beside_the_attacker = Browser(victim.known_browser.client, attacker.address)
    from_the_attackers_address = await beside_the_attacker.log_in(victim.email)
    assert from_many_addresses == [[429]] * 20, "the account's counter slows every address"
    assert slowed, "so is an unknown browser while the account is attacked"
    assert at_once.status_code == 303
    assert from_the_attackers_address.status_code == 303


async def test_the_guessers_own_address_waits_longer_after_each_failure(
    browsers: Browsers, database: Database
) -> None:
    organization = await create_organization(database, with_passwords=True)
    guesser, elsewhere = await browsers.at("198.51.100.1"), await browsers.at("198.51.100.2")
    # One guess per account (password spraying): only the address's counter adds up.
    free = [(await guesser.log_in(sprayed_email(), "wrong")).status_code for _ in range(FREE)]
    waits = []
    for full_wait in (1, 2, 4):
        since = guesser.sent_at
        waits.append(left_of(full_wait, await guesser.log_in(sprayed_email(), "wrong"), since))
        assert (await guesser.once_accepted(sprayed_email(), "wrong")).status_code == 401
    since = guesser.sent_at
    last = left_of(8, await guesser.log_in(organization.member.email), since)
    from_elsewhere = await elsewhere.log_in(organization.member.email)
    assert free == [401] * FREE
    assert waits == [True] * 3, "the wait doubles with each failure past the free ones: 1, 2, 4 s"
    assert last, "the right password waits too: a refused attempt is not checked"
    assert from_elsewhere.status_code == 303, "the wait is the guesser's own"


async def test_an_unknown_browser_of_the_attacked_account_is_slowed_not_locked(
    browsers: Browsers, victim: Victim
) -> None:
    await attacked(browsers, victim.email)
    new_browser = await browsers.at("203.0.113.20")
    refused = await new_browser.log_in(victim.email)
    started = time.monotonic()
    logged_in = await new_browser.once_accepted(victim.email)
    waited = time.monotonic() - started
    assert 1 <= waiting(refused) <= ACCOUNT_MAX_WAIT_SECONDS
    assert logged_in.status_code == 303
    assert waited < 10, f"waited {waited:.1f} s, not 15 minutes"


async def test_another_users_device_cookie_or_a_forged_one_gives_no_exemption(
    browsers: Browsers, database: Database, victim: Victim
) -> None:
    other = await create_organization(database, with_passwords=True)
    attacker = await browsers.at("198.51.100.1")
    assert (await attacker.log_in(other.member.email)).status_code == 303
    await attacked(browsers, victim.email)
    genuine = victim.known_browser.device_cookie
    issued, nonce, signature = genuine.split(".")
    forgeries = {
        "another user's cookie": attacker.device_cookie,
        "the victim's cookie with another nonce": f"{issued}.{nonce[::-1]}.{signature}",
        "the victim's cookie, later": f"{int(issued) + 1}.{nonce}.{signature}",
        "signed with another key": DeviceCookies.from_secret("not-the-servers-secret-key").issue(
            victim.email, now=int(time.time())
        ),
    }
    answers = {}
    for name, cookie in {**forgeries, "the genuine cookie, copied": genuine}.items():
        forger = await browsers.at("203.0.113.30")
        forger.client.cookies.set(DEVICE_COOKIE, cookie)
        answers[name] = (await forger.log_in(victim.email)).status_code
    at_once = await victim.known_browser.log_in(victim.email)
    assert forgeries["another user's cookie"]
    assert answers == {**dict.fromkeys(forgeries, 429), "the genuine cookie, copied": 303}, (
        "no exemption but for the genuine cookie: it is the proof, wherever it is sent from"
    )
    assert at_once.status_code == 303


async def test_a_known_browser_that_fails_too_often_is_trusted_no_more(
    browsers: Browsers, victim: Victim
) -> None:
    await attacked(browsers, victim.email)
    own_failures = await victim.known_browser.failures(victim.email, FREE)
    after = await victim.known_browser.log_in(victim.email)
    assert own_failures == [401] * FREE, "its own counter, not the attacked account's"
    assert waiting(after) >= 1, "past its own free failures it waits like an unknown browser"


async def test_unknown_emails_are_answered_like_known_ones(browsers: Browsers, database: Database) -> None:
    organization = await create_organization(database, with_passwords=True)
    answers = []
    for address, email in (
        ("198.51.100.1", organization.member.email),
        ("198.51.100.2", f"nobody-{uuid4().hex}@example.test"),
    ):
        browser = await browsers.at(address)
        statuses = await browser.failures(email, FREE)
        since = browser.sent_at
        first_wait = left_of(1, await browser.log_in(email, "wrong"), since)
        statuses.append((await browser.once_accepted(email, "wrong")).status_code)
        since = browser.sent_at
        second_wait = left_of(2, await browser.log_in(email, "wrong"), since)
        answers.append((statuses, first_wait, second_wait))
    known, unknown = answers
    assert known == unknown == ([401] * (FREE + 1), True, True)


async def test_parallel_guesses_cannot_all_slip_in(browsers: Browsers, database: Database) -> None:
    organization = await create_organization(database, with_passwords=True)
    guesser = await browsers.at("198.51.100.1")
    responses = await asyncio.gather(
        *(guesser.log_in(organization.member.email, f"guess {n}") for n in range(12))
    )
    assert sorted(response.status_code for response in responses) == [401] * FREE + [429] * (12 - FREE)
