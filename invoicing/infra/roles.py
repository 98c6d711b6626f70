"""The two database logins: the owner, which migrates, and the runtime role of the server and
the workers, which owns nothing and cannot leave row-level security.

The runtime role logs in, is a member of ``invoicing_app`` (the role every policy applies
to, with the table privileges), and acts as it from the start of each connection. It must
not be able to become anything stronger: not a superuser, not ``BYPASSRLS``, not a member of
the owner (``RESET ROLE``/``SET ROLE`` would then step out of the policies), not able to
grant itself roles (``CREATEROLE``), owning no table (policies do not apply to an owner).
``invoicing migrate`` creates the role named in DATABASE_URL when it is missing, and refuses
to finish while it has any of those powers; the server and the workers say so at start-up.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import quote, unquote, urlsplit

import asyncpg

from invoicing.infra.database import APP_ROLE, Database
from invoicing.kernel.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: The runtime role's name where the product chooses it (``invoicing dev``, the tests).
RUNTIME_ROLE = "invoicing_runtime"

# What the role could do beyond the application's rights, each with what to change.
PRIVILEGES = """
WITH role AS (SELECT * FROM pg_roles WHERE rolname = $1),
     owner AS (SELECT relowner AS oid FROM pg_class WHERE oid = 'public.invoices'::regclass),
     -- The role itself and every role it belongs to, directly or not: their powers are its own.
     held AS (SELECT r.* FROM pg_roles r, role WHERE pg_has_role(role.oid, r.oid, 'MEMBER'))
SELECT EXISTS (SELECT 1 FROM held WHERE rolsuper) AS superuser,
       EXISTS (SELECT 1 FROM held WHERE rolbypassrls) AS bypasses_row_security,
       EXISTS (SELECT 1 FROM held WHERE rolcreaterole) AS creates_roles,
       EXISTS (SELECT 1 FROM held, owner WHERE held.oid = owner.oid) AS acts_as_owner,
       EXISTS (
           SELECT 1 FROM pg_class c, held
           WHERE c.relowner = held.oid AND c.relnamespace = 'public'::regnamespace
       ) AS owns_tables,
       has_schema_privilege(role.oid, 'public', 'CREATE') AS creates_in_schema,
       pg_has_role(role.oid, $2, 'MEMBER') AS application_member
FROM role
"""

REMEDIES = {
    "superuser": "is a superuser (ALTER ROLE {role} NOSUPERUSER)",
    "bypasses_row_security": "bypasses row-level security (ALTER ROLE {role} NOBYPASSRLS)",
    "creates_roles": "may create and grant roles (ALTER ROLE {role} NOCREATEROLE)",
    "acts_as_owner": "is, or may act as, the tables' owner (REVOKE the owner's role FROM {role})",
    "owns_tables": "owns tables of the schema (ALTER TABLE ... OWNER TO the owner)",
    # An object of its own in the schema could stand in for one of ours (an overload of a
    # built-in function) wherever a name is looked up there.
    "creates_in_schema": "may create objects in schema public (REVOKE CREATE ON SCHEMA public FROM PUBLIC)",
}


def login_of(url: str) -> tuple[str, str | None]:
    """The user and password a database URL logs in with."""
    parts = urlsplit(url)
    if not parts.username:
        raise ConfigurationError("DATABASE_URL must name the user it logs in as.")
    return unquote(parts.username), None if parts.password is None else unquote(parts.password)


def with_login(url: str, user: str, password: str | None = None) -> str:
    """The same server and database, logging in as ``user``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    credentials = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
    return parts._replace(netloc=f"{credentials}@{host}").geturl()


async def privilege_problems(connection: asyncpg.Connection, role: str) -> list[str]:
    """What ``role`` could do beyond the application's rights (empty: least privilege)."""
    row = await connection.fetchrow(PRIVILEGES, role, APP_ROLE)
    if row is None:
        return [f"role {role} does not exist"]
    found = [REMEDIES[power].format(role=_identifier(role)) for power in REMEDIES if row[power]]
    if not row["application_member"]:
        found.append(f"is not a member of {APP_ROLE} (GRANT {APP_ROLE} TO {_identifier(role)})")
    return found


async def ensure_runtime_role(owner: Database, runtime_url: str) -> None:
    """Create the login of ``runtime_url`` if it is missing (with its password, a member of
    ``invoicing_app``), then check it: ConfigurationError naming each power it must not have.

    Nothing is done when ``runtime_url`` logs in as the owner itself (one URL for everything):
    the server then warns at start-up instead.
    """
    role, password = login_of(runtime_url)
    async with owner.connection() as connection:
        if role == await connection.fetchval("SELECT current_user"):
            return
        try:
            await _create_if_missing(connection, role, password)
            await _grant_application_role(connection, role)
        except asyncpg.InsufficientPrivilegeError as error:
            raise ConfigurationError(
                f"The migrating role cannot create or grant the runtime role {role} ({error}). Create it "
                f"once as an administrator: CREATE ROLE {_identifier(role)} LOGIN PASSWORD '...'; "
                f"GRANT {APP_ROLE} TO {_identifier(role)};"
            ) from error
        problems = await privilege_problems(connection, role)
    if problems:
        raise ConfigurationError(
            f"DATABASE_URL's role {role} must not be able to leave row-level security, but it "
            + "; ".join(problems)
            + "."
        )


#: What PostgreSQL raises when another migrate created the role, or granted it, just before:
#: roles belong to the whole cluster, so no database's migration lock keeps them apart.
_RACED = (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError)


async def _create_if_missing(connection: asyncpg.Connection, role: str, password: str | None) -> None:
    if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return
    secret = "" if password is None else " PASSWORD " + _literal(password)
    try:
        await connection.execute(f"CREATE ROLE {_identifier(role)} LOGIN{secret}")
    except _RACED:
        return
    logger.info("created the runtime database role %s", role)


async def _grant_application_role(connection: asyncpg.Connection, role: str) -> None:
    if await connection.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", role, APP_ROLE):
        return
    with contextlib.suppress(*_RACED):
        await connection.execute(f"GRANT {APP_ROLE} TO {_identifier(role)}")


async def warn_if_privileged(database: Database, process: str) -> None:
    """Log, at start-up, what the login of a server or worker could do beyond its rights."""
    try:
        async with database.connection() as connection:
            role = await connection.fetchval("SELECT session_user")
            problems = await privilege_problems(connection, role)
    except (OSError, asyncpg.PostgresError) as error:  # a warning must not stop the start
        logger.warning("%s: could not check the privileges of DATABASE_URL's role: %s", process, error)
        return
    if problems:
        logger.warning(
            "%s: DATABASE_URL logs in as %s, which %s: row-level security would not stop an SQL "
            "injection. Set MIGRATION_DATABASE_URL to the owner and DATABASE_URL to a runtime "
            "role (docs/SECURITY.md, least privilege).",
            process,
            role,
            "; ".join(problems),
        )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
