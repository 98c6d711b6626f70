"""Wiring the aggregates to the infrastructure: the application's pool with the invoice staging tables."""

from __future__ import annotations

from invoicing.infra import scopes
from invoicing.infra.database import APP_ROLE, Database, SessionLimits
from invoicing.invoices import store as invoices
from invoicing.kernel.settings import Settings


def application_database(
    settings: Settings,
    *,
    pool_size: int,
    min_size: int = 1,
    application_name: str | None = None,
    url: str | None = None,
) -> Database:
    """The application's pool on DATABASE_URL (or ``url``: tests acting as the application)."""
    return Database(
        url or settings.require_database(),
        pool_size=pool_size,
        min_size=min_size,
        app_role=APP_ROLE,
        limits=SessionLimits.from_settings(settings),
        application_name=application_name,
        on_connect=invoices.create_staging_tables,
        scope_key=scopes.ScopeKey.from_secret(settings.secret_key),
        temporary_tables=tuple(invoices.STAGING_TABLES.values()),
    )
