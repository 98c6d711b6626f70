"""The pool the server and the workers use: as ``invoicing_app``, organization scopes sealed
with the key of ``SECRET_KEY``, invoice staging tables ready on every connection."""

from __future__ import annotations

import logging

import asyncpg

from invoicing.errors import ConfigurationError
from invoicing.settings import Settings
from invoicing.storage import invoices, roles, scopes
from invoicing.storage.database import APP_ROLE, Database, SessionLimits

logger = logging.getLogger(__name__)


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


async def check_at_start(database: Database, process: str) -> None:
    """Say what is wrong with the login before serving: a warning for a login stronger than
    it needs, or for scopes not sealed when the process has no SECRET_KEY either;
    ConfigurationError when its SECRET_KEY is not the one scopes are sealed with (every scoped
    statement would fail), or when it has one and scopes are not sealed at all."""
    await roles.warn_if_privileged(database, process)
    try:
        async with database.unscoped() as connection:
            status = await scopes.check_key(connection, database.scope_key)
    except (OSError, asyncpg.PostgresError) as error:  # the check must not stop the start
        logger.warning("%s: could not check the organization scope key: %s", process, error)
        return
    if status == "mismatch":
        raise ConfigurationError(
            "SECRET_KEY is not the one `invoicing migrate` sealed organization scopes with: run "
            "`invoicing migrate` with this SECRET_KEY (docs/SECURITY.md, sealed scopes)."
        )
    if status == "unsealed" and database.scope_key is not None:
        # Its tickets would be checked by nobody: fail closed rather than run unprotected.
        raise ConfigurationError(
            "Organization scopes are not sealed: run `invoicing migrate` with this SECRET_KEY "
            "(docs/SECURITY.md, sealed scopes)."
        )
    if status == "unsealed":
        logger.warning(
            "%s: organization scopes are not sealed (`invoicing migrate` ran without SECRET_KEY): "
            "SQL on this login could act in any organization whose id it knows.",
            process,
        )
