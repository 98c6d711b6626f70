"""An organization's webhook endpoints (administrators only) and each member's email choice."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from invoicing.domain.notices import PING_EVENT, EmailPreference
from invoicing.infra.database import Database
from invoicing.kernel.errors import BadRequest, Conflict, NotFound, TooManyRequests
from invoicing.kernel.principal import Principal
from invoicing.kernel.settings import Settings
from invoicing.notifications import store
from invoicing.notifications.addresses import AddressRefused, resolve_checked
from invoicing.notifications.views import Webhook, WebhookDelivery, WebhookWithSecret
from invoicing.notifications.webhook_requests import parse_new_webhook, parse_webhook_changes
from invoicing.notifications.webhook_secrets import new_salt, webhook_secret

#: Endpoints one organization may register.
MAX_WEBHOOKS = 20


async def email_preference(database: Database, principal: Principal) -> EmailPreference:
    async with database.scoped(principal.organization_id) as connection:
        return await store.read_preference(connection, principal.organization_id, principal.user_id)


async def set_email_preference(database: Database, principal: Principal, email: EmailPreference) -> None:
    async with database.scoped(principal.organization_id) as connection:
        await store.write_preference(connection, principal.organization_id, principal.user_id, email)


def _require_secret_key(settings: Settings) -> None:
    if not settings.secret_key:
        raise Conflict(
            "Webhooks are signed with a secret derived from the server's SECRET_KEY, which is not set.",
            code="secret_key_required",
        )


async def create_webhook(
    database: Database, settings: Settings, principal: Principal, body: object
) -> WebhookWithSecret:
    """Register an endpoint; the answer carries its secret, the only time it is shown."""
    principal.require_admin()
    _require_secret_key(settings)
    url, events, description = parse_new_webhook(
        body, allow_private_networks=settings.webhook_allow_private_networks
    )
    if not settings.webhook_allow_private_networks:
        await _refuse_private_name(url)
    salt = new_salt()
    async with database.scoped(principal.organization_id) as connection:
        await store.lock_webhooks(connection, principal.organization_id)
        if await store.count_webhooks(connection, principal.organization_id) >= MAX_WEBHOOKS:
            raise Conflict(
                f"This organization already has {MAX_WEBHOOKS} webhook endpoints; delete one first.",
                code="too_many_webhooks",
            )
        item = await store.insert_webhook(
            connection, principal.organization_id, url, events, description, salt
        )
    return WebhookWithSecret(webhook_secret(settings.secret_key, item.id, salt), item)


async def _refuse_private_name(url: str) -> None:
    """A name that resolves to a loopback, private or metadata address now is refused now (it
    is checked again at every call: a name can change what it resolves to)."""
    try:
        await resolve_checked(url, allow_private_networks=False)
    except AddressRefused as refused:
        if refused.reason == "address_not_allowed":
            raise BadRequest(
                "A webhook may not call a loopback, private, link-local or metadata address.",
                code="webhook_url_not_allowed",
            ) from None
        # A name that does not resolve yet is accepted: its calls fail until it does.


async def update_webhook(
    database: Database, settings: Settings, principal: Principal, webhook_id: UUID, body: object
) -> Webhook:
    """Change an endpoint's URL, events or description; its secret stays."""
    principal.require_admin()
    changes = parse_webhook_changes(body, allow_private_networks=settings.webhook_allow_private_networks)
    if changes.url is not None and not settings.webhook_allow_private_networks:
        await _refuse_private_name(changes.url)
    events = None if changes.events is None else list(changes.events)
    return await _change(
        database, principal, store.UPDATE_WEBHOOK, webhook_id, changes.url, events, changes.description
    )


async def list_webhooks(database: Database, principal: Principal) -> list[Webhook]:
    principal.require_admin()
    async with database.scoped(principal.organization_id) as connection:
        return await store.list_webhooks(connection, principal.organization_id)


async def rotate_secret(
    database: Database, settings: Settings, principal: Principal, webhook_id: UUID
) -> WebhookWithSecret:
    """A new secret; the old one stops signing at once."""
    principal.require_admin()
    _require_secret_key(settings)
    salt = new_salt()
    item = await _change(database, principal, store.ROTATE_SECRET, webhook_id, salt)
    return WebhookWithSecret(webhook_secret(settings.secret_key, item.id, salt), item)


async def set_enabled(
    database: Database, principal: Principal, webhook_id: UUID, *, enabled: bool
) -> Webhook:
    principal.require_admin()
    statement = store.ENABLE_WEBHOOK if enabled else store.DISABLE_WEBHOOK
    return await _change(database, principal, statement, webhook_id)


async def _change(
    database: Database, principal: Principal, statement: str, webhook_id: UUID, *args: object
) -> Webhook:
    async with database.scoped(principal.organization_id) as connection:
        item = await store.change_webhook(connection, statement, principal.organization_id, webhook_id, *args)
    if item is None:
        raise NotFound.webhook()
    return item


async def delete_webhook(database: Database, principal: Principal, webhook_id: UUID) -> None:
    """Delete the endpoint and its deliveries' records; events still to send it are dropped."""
    principal.require_admin()
    async with database.scoped(principal.organization_id) as connection:
        if not await store.delete_webhook(connection, principal.organization_id, webhook_id):
            raise NotFound.webhook()


async def list_deliveries(
    database: Database,
    principal: Principal,
    webhook_id: UUID,
    *,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[WebhookDelivery]:
    principal.require_admin()
    async with database.scoped(principal.organization_id) as connection:
        if await store.read_webhook(connection, principal.organization_id, webhook_id) is None:
            raise NotFound.webhook()
        return await store.list_deliveries(
            connection, principal.organization_id, webhook_id, before=before, limit=limit
        )


#: Test calls one endpoint may be sent a minute (our workers are nobody's load generator).
PINGS_PER_MINUTE = 5


async def ping(database: Database, principal: Principal, webhook_id: UUID) -> WebhookDelivery:
    """Queue a signed test call (``webhook.ping``) to the endpoint, sent once: it shows whether
    the receiver answers and checks the signature, before a real batch depends on it."""
    principal.require_admin()
    async with database.scoped(principal.organization_id) as connection:
        found = await connection.fetchrow(
            store.LOCK_FOR_PING, principal.organization_id, webhook_id, PING_EVENT
        )
        if found is None:
            raise NotFound.webhook()
        if not found["enabled"]:
            raise Conflict("The endpoint is disabled: enable it first.", code="webhook_disabled")
        if found["recent"] >= PINGS_PER_MINUTE:
            raise TooManyRequests(
                f"At most {PINGS_PER_MINUTE} test events a minute to one endpoint; try again shortly.",
                retry_after=60,
            )
        delivery = await store.ping(connection, principal.organization_id, webhook_id, PING_EVENT)
    assert delivery is not None, "the endpoint is locked and enabled"
    return delivery


async def redeliver(database: Database, principal: Principal, delivery_id: UUID) -> WebhookDelivery:
    """Send the delivery's event again (same event id), now and with a fresh round of retries."""
    principal.require_admin()
    async with database.scoped(principal.organization_id) as connection:
        enabled = await store.delivery_endpoint_enabled(connection, principal.organization_id, delivery_id)
        if enabled is None:
            raise NotFound.webhook_delivery()
        if not enabled:
            raise Conflict("The endpoint is disabled: enable it first.", code="webhook_disabled")
        return await store.redeliver(connection, principal.organization_id, delivery_id)
