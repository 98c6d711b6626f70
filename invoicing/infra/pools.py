"""The pool the server and the workers use: as ``invoicing_app``, organization scopes sealed
with the key of ``SECRET_KEY``, invoice staging tables ready on every connection."""

from __future__ import annotations

import logging

import asyncpg

from invoicing.infra import roles, scopes
from invoicing.infra.database import Database
from invoicing.kernel.errors import ConfigurationError

logger = logging.getLogger(__name__)


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
