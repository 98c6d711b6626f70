"""Notices of finished batches: who hears of what, how webhook calls are signed and retried,
and which addresses a webhook may reach. Pure rules; the sending is in ``invoicing/notifications``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address


class EmailPreference(StrEnum):
    """When a member gets an email about a batch they started."""

    always = "always"
    #: Only when the job failed or some order in it did.
    failures = "failures"
    never = "never"


DEFAULT_EMAIL_PREFERENCE = EmailPreference.always

#: Events a webhook endpoint can subscribe to, one per way a batch ends.
JOB_EVENTS = ("batch_job.completed", "batch_job.failed", "batch_job.cancelled")
#: A test call an admin asks for (``POST /api/webhooks/{id}/ping``): sent once, never retried.
PING_EVENT = "webhook.ping"
#: The event of an endpoint disabled after a day of failed calls: its admins get an email.
ENDPOINT_DISABLED = "webhook_endpoint.disabled"


def job_event_type(status: str) -> str:
    """The event of a job that ended with ``status`` (completed, failed or cancelled)."""
    return f"batch_job.{status}"


def wants_email(preference: EmailPreference, *, status: str, failed_items: int) -> bool:
    """The rule the database applies when a job ends (migrations/0014_notifications.sql)."""
    if preference is EmailPreference.always:
        return True
    if preference is EmailPreference.failures:
        return status == "failed" or failed_items > 0
    return False


# -- Signing -------------------------------------------------------------------------------

SIGNATURE_HEADER = "Invoicing-Signature"
#: A receiver should refuse a signature older than this (a replayed call).
SIGNATURE_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under the endpoint's secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Invoicing-Signature`` value: ``t=<unix seconds>,v1=<hex>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance: int = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """What a receiver does (README, "Webhooks"): the header parses, its time is recent, and
    one of its ``v1`` values is the HMAC of the raw body (compared in constant time)."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key.strip() == "t"]
    if len(stamps) != 1 or not (stamps[0].strip().isascii() and stamps[0].strip().isdecimal()):
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, value.strip()) for key, value in fields if key.strip() == "v1")


# -- Retries -------------------------------------------------------------------------------

#: Each wait is this many times the one before: with the default base (10 s) and 12 attempts,
#: the last comes about 25 hours after the first ("about a day"), past the day that disables
#: an endpoint failing all along.
BACKOFF_FACTOR = 2.35
#: An endpoint whose every attempt failed for this long is disabled (and its admins emailed).
DISABLE_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    base_seconds: float
    max_attempts: int

    def delay_after(self, attempts: int, jitter: float) -> float | None:
        """Seconds before the next attempt after ``attempts`` failed ones; None: give up.
        ``jitter`` is uniform in [0, 1): up to a quarter more, so retries do not march in step."""
        if attempts >= self.max_attempts:
            return None
        return float(self.base_seconds * BACKOFF_FACTOR ** max(attempts - 1, 0) * (1 + 0.25 * jitter))


# -- Where a webhook may connect ------------------------------------------------------------

#: Cloud metadata services that are not in a private or link-local range.
_METADATA_ADDRESSES = frozenset(
    {ip_address("100.100.100.200"), ip_address("fd00:ec2::254"), ip_address("168.63.129.16")}
)


def is_public_address(address: IPv4Address | IPv6Address) -> bool:
    """Whether a webhook may connect to ``address`` when private networks are not allowed: not
    loopback, private, link-local (169.254.169.254, the usual metadata service), shared
    (100.64/10), multicast, reserved, unspecified, nor a metadata address; an IPv4 address
    mapped into IPv6 is judged as the IPv4 one."""
    if isinstance(address, IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    if address in _METADATA_ADDRESSES:
        return False
    if isinstance(address, IPv6Address) and address.is_site_local:
        return False
    return address.is_global and not address.is_multicast and not address.is_reserved
