"""The rules of notices: who is emailed, how calls are signed and retried, where they may go."""

from __future__ import annotations

import re
import time
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from invoicing.domain.notices import (
    EmailPreference,
    RetrySchedule,
    is_public_address,
    signature_header,
    verify_signature,
    wants_email,
)
from invoicing.kernel.errors import BadRequest
from invoicing.notifications.addresses import AddressRefused, check
from invoicing.notifications.webhook_requests import parse_new_webhook, parse_webhook_url
from invoicing.notifications.webhook_secrets import webhook_secret

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_test"
BODY = b'{"id":"e1","type":"batch_job.completed"}'


@pytest.mark.parametrize(
    ("preference", "status", "failed", "expected"),
    [
        (EmailPreference.always, "completed", 0, True),
        (EmailPreference.failures, "completed", 0, False),
        (EmailPreference.failures, "completed", 3, True),
        (EmailPreference.failures, "failed", 0, True),
        (EmailPreference.failures, "cancelled", 0, False),
        (EmailPreference.never, "failed", 9, False),
    ],
)
def test_who_is_emailed(preference: EmailPreference, status: str, failed: int, expected: bool) -> None:
    assert wants_email(preference, status=status, failed_items=failed) is expected


def test_a_signature_verifies_with_its_secret_only_and_only_while_recent() -> None:
    now = int(time.time())
    header = signature_header(SECRET, now, BODY)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify_signature(SECRET, header, BODY, now=now)
    assert not verify_signature("whsec_other", header, BODY, now=now)
    assert not verify_signature(SECRET, header, BODY + b" ", now=now)
    assert not verify_signature(SECRET, header, BODY, now=now + 301)
    assert not verify_signature(SECRET, "v1=abc", BODY, now=now)
    assert not verify_signature(SECRET, "t=x,v1=abc", BODY, now=now)


def test_the_readme_shows_a_receiver_check_that_agrees_with_the_signer() -> None:
    code = README.read_text().split("def verify(", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec("import hashlib, hmac, time\ndef verify(" + code, namespace)
    header = signature_header(SECRET, int(time.time()), BODY)
    assert namespace["verify"](SECRET, header, BODY)
    assert not namespace["verify"](SECRET, header, BODY + b"x")
    assert not namespace["verify"](SECRET, signature_header(SECRET, int(time.time()) - 600, BODY), BODY)


def test_retries_back_off_over_about_a_day_then_stop() -> None:
    schedule = RetrySchedule(base_seconds=10, max_attempts=12)
    waits = [schedule.delay_after(attempts, jitter=0.0) for attempts in range(1, 12)]
    assert all(wait is not None for wait in waits)
    assert waits == sorted(waits)
    assert 18 * 3600 < sum(w for w in waits if w is not None) < 26 * 3600
    assert schedule.delay_after(12, jitter=0.0) is None
    assert schedule.delay_after(1, jitter=0.99) == pytest.approx(10 * 1.2475)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",
        "224.0.0.1",
        "100.100.100.200",
        "fd00:ec2::254",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ip_address(address))
    with pytest.raises(AddressRefused) as refused:
        check([address], allow_private_networks=False)
    assert refused.value.reason == "address_not_allowed"
    assert check([address], allow_private_networks=True) == [address]


def test_a_name_with_one_private_address_among_public_ones_is_refused_whole() -> None:
    assert check(["93.184.216.34"], allow_private_networks=False) == ["93.184.216.34"]
    with pytest.raises(AddressRefused):
        check(["93.184.216.34", "10.0.0.5"], allow_private_networks=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://localhost/",
        "https://a.internal/",
        "https://u:p@hooks.example.com/",
        "https://hooks.example.com/#f",
        "hooks.example.com",
        "https://hooks.example.com:0/",
        "https://hooks.example.com:99999/",
        "https:///path",
        "https://exa mple.com/",
        "",
        "x" * 3000,
    ],
)
def test_webhook_urls_that_are_refused(url: str) -> None:
    with pytest.raises(BadRequest):
        parse_webhook_url(url, allow_private_networks=False)


def test_private_networks_allowed_let_plain_http_and_loopback_in() -> None:
    assert (
        parse_webhook_url(" http://127.0.0.1:8080/hook ", allow_private_networks=True)
        == "http://127.0.0.1:8080/hook"
    )
    with pytest.raises(BadRequest):
        parse_webhook_url("ftp://127.0.0.1/", allow_private_networks=True)


def test_a_new_webhook_defaults_to_every_event_and_refuses_unknown_ones() -> None:
    url, events, description = parse_new_webhook(
        {"url": "https://hooks.example.com/a"}, allow_private_networks=False
    )
    assert events == ("batch_job.completed", "batch_job.failed", "batch_job.cancelled")
    assert description == ""
    for bad in ([], ["batch_job.started"], "batch_job.failed", [{"x": 1}]):
        with pytest.raises(BadRequest) as refused:
            parse_new_webhook({"url": url, "events": bad}, allow_private_networks=False)
        assert refused.value.code == "invalid_events"


def test_secrets_are_derived_per_endpoint_salt_and_key() -> None:
    webhook_id, salt = uuid4(), b"s" * 32
    secret = webhook_secret("k" * 32, webhook_id, salt)
    assert secret.startswith("whsec_")
    assert secret == webhook_secret("k" * 32, webhook_id, salt)
    assert secret != webhook_secret("k" * 32, webhook_id, b"t" * 32)
    assert secret != webhook_secret("j" * 32, webhook_id, salt)
    assert secret != webhook_secret("k" * 32, uuid4(), salt)
