"""What an administrator may send about webhook endpoints, and what a member may send about
their emails: each body checked, with a stable code for what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

from invoicing.domain.notices import JOB_EVENTS, EmailPreference, is_public_address
from invoicing.domain.request_bodies import json_object
from invoicing.kernel.errors import BadRequest
from invoicing.kernel.json_schema import Schema, array, closed_object, enum

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200


def parse_notification_settings(body: object) -> EmailPreference:
    """``{"email": "always" | "failures" | "never"}``."""
    fields = json_object(body, {"email"})
    if "email" not in fields:
        raise BadRequest("The field 'email' is required.", code="missing_field")
    try:
        return EmailPreference(fields["email"])
    except ValueError:
        raise BadRequest(
            "The field 'email' must be one of always, failures, never.", code="invalid_preference"
        ) from None


NOTIFICATION_SETTINGS_REQUEST_SCHEMA = closed_object({"email": enum(EmailPreference)})


def parse_webhook_url(value: object, *, allow_private_networks: bool) -> str:
    """An https URL (http too when private networks are allowed) with a host, no credentials
    and no fragment; a literal address must be a public one unless private networks are
    allowed. Names are resolved and checked when registering and again at every call."""
    if not isinstance(value, str):
        raise BadRequest("The field 'url' must be a string.", code="invalid_type")
    url = value.strip()
    if not url or len(url) > MAX_URL_LENGTH or any(not c.isprintable() or c.isspace() for c in url):
        raise BadRequest(f"The URL must be 1 to {MAX_URL_LENGTH} printable characters.", code="invalid_url")
    if not url.isascii() or "\\" in url:
        raise BadRequest(
            "The URL must be plain ASCII: write a host's xn-- form and percent-encode the path.",
            code="invalid_url",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("The URL is malformed.", code="invalid_url") from None
    schemes = ("https", "http") if allow_private_networks else ("https",)
    if parts.scheme.lower() not in schemes:
        allowed = " or ".join(f"{scheme}://" for scheme in schemes)
        raise BadRequest(f"A webhook URL must start with {allowed}.", code="invalid_url")
    if not parts.hostname or parts.username is not None or parts.password is not None or parts.fragment:
        raise BadRequest(
            "A webhook URL needs a host, and no user, password or #fragment.", code="invalid_url"
        )
    if port == 0:
        raise BadRequest("The URL's port must be 1 to 65535.", code="invalid_url")
    if not _is_host(parts.hostname):
        raise BadRequest("The URL's host is not a valid host name or address.", code="invalid_url")
    if not allow_private_networks and not host_may_be_public(parts.hostname):
        raise BadRequest(
            "A webhook may not call a loopback, private, link-local or metadata address.",
            code="webhook_url_not_allowed",
        )
    return url


def _is_host(host: str) -> bool:
    """An address literal, or a name DNS can carry (labels of 1 to 63 characters)."""
    try:
        ip_address(host.strip("[]").split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:
        host.rstrip(".").encode("idna")
    except UnicodeError:
        return False
    return True


def host_may_be_public(host: str) -> bool:
    """False for a literal address that is not public, or a name that is always local."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".internal", ".local")):
        return False
    try:
        address = ip_address(name.split("%", 1)[0])
    except ValueError:
        return True  # a name: judged by what it resolves to
    return is_public_address(address)


def parse_events(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequest(
            f"The field 'events' must be a non-empty list of: {', '.join(JOB_EVENTS)}.", code="invalid_events"
        )
    unknown = [event for event in value if event not in JOB_EVENTS]
    if unknown:
        raise BadRequest(
            f"Unknown event {str(unknown[0])[:60]!r}; the events are {', '.join(JOB_EVENTS)}.",
            code="invalid_events",
        )
    return tuple(event for event in JOB_EVENTS if event in value)


def parse_description(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("The field 'description' must be a string.", code="invalid_type")
    text = value.strip()
    if len(text) > MAX_DESCRIPTION_LENGTH or any(not c.isprintable() for c in text):
        raise BadRequest(
            f"The description must be at most {MAX_DESCRIPTION_LENGTH} printable characters.",
            code="invalid_description",
        )
    return text


def parse_new_webhook(body: object, *, allow_private_networks: bool) -> tuple[str, tuple[str, ...], str]:
    """``{"url", "events"?, "description"?}`` → url, events (default: all), description."""
    fields = json_object(body, {"url", "events", "description"})
    if "url" not in fields:
        raise BadRequest("The field 'url' is required.", code="missing_field")
    url = parse_webhook_url(fields["url"], allow_private_networks=allow_private_networks)
    events = parse_events(fields["events"]) if "events" in fields else JOB_EVENTS
    description = parse_description(fields.get("description", ""))
    return url, events, description


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """What an edit changes (None: left as it is)."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None


def parse_webhook_changes(body: object, *, allow_private_networks: bool) -> WebhookChanges:
    """``{"url"?, "events"?, "description"?}``, at least one, each checked as when creating."""
    fields = json_object(body, {"url", "events", "description"})
    if not fields:
        raise BadRequest("Name at least one of 'url', 'events', 'description'.", code="missing_field")
    return WebhookChanges(
        url=None
        if "url" not in fields
        else parse_webhook_url(fields["url"], allow_private_networks=allow_private_networks),
        events=None if "events" not in fields else parse_events(fields["events"]),
        description=None if "description" not in fields else parse_description(fields["description"]),
    )


WEBHOOK_REQUEST_SCHEMA: Schema = closed_object(
    {
        "url": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_URL_LENGTH,
            "description": "https:// (http:// only where private networks are allowed).",
        },
        "events": array(enum(JOB_EVENTS), minItems=1, description="Default: every event."),
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH},
    },
    optional=("events", "description"),
)

#: What ``parse_webhook_changes`` accepts: the same fields, any of them, at least one.
WEBHOOK_CHANGES_SCHEMA: Schema = {
    **closed_object(WEBHOOK_REQUEST_SCHEMA["properties"], optional=("url", "events", "description")),
    "minProperties": 1,
}
