"""Least privilege in PostgreSQL: the server and the workers log in as a role that owns nothing,
so that even SQL of an attacker's choosing, run on their connection, stays inside row-level
security: no stepping into the owner, no switching the policies off, no bulk copy past them,
and nothing of another organization without naming it."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from invoicing.infra.database import Database
from invoicing.infra.pools import check_at_start
from invoicing.infra.queue import JobQueue
from invoicing.infra.roles import (
    RUNTIME_ROLE,
    ensure_runtime_role,
    privilege_problems,
    warn_if_privileged,
    with_login,
)
from invoicing.infra.scopes import NAME_SCOPE, ScopeKey
from invoicing.invoices.single_order import invoice_single_order
from invoicing.jobs.sweep import sweep
from invoicing.kernel.errors import ConfigurationError
from invoicing.kernel.settings import Settings
from invoicing.services import application_database
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import Organization, create_orders, create_organization
from tests.support.waiting import eventually


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the server's DATABASE_URL logs in: what an SQL injection would hold."""
    connection = await asyncpg.connect(settings.require_database())
    yield connection
    await connection.close()


@pytest_asyncio.fixture
async def one_connection_pool(settings: Settings) -> AsyncIterator[Database]:
    """The server's pool as it is built, shrunk to one connection: every request shares it."""
    async with application_database(settings, pool_size=1) as pool:
        yield pool


async def two_organizations(database: Database) -> tuple[Organization, Organization]:
    mine, theirs = await create_organization(database), await create_organization(database)
    await create_orders(database, mine, 3)
    await create_orders(database, theirs, 4)
    return mine, theirs


async def owner_of_the_tables(database: Database) -> str:
    async with database.connection() as connection:
        owner: str = await connection.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'"
        )
    return owner


async def test_the_servers_login_is_neither_owner_nor_superuser_and_cannot_become_either(
    database: Database, runtime: asyncpg.Connection
) -> None:
    owner = await owner_of_the_tables(database)
    await runtime.execute("RESET ROLE")
    assert await runtime.fetchval("SELECT current_user") == RUNTIME_ROLE
    assert await privilege_problems(runtime, RUNTIME_ROLE) == []
    for escape in (f'SET ROLE "{owner}"', f'SET SESSION AUTHORIZATION "{owner}"', "SET ROLE postgres"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(escape)


async def test_raw_sql_without_an_organization_sees_no_rows_and_cannot_switch_the_policies_off(
    database: Database, runtime: asyncpg.Connection
) -> None:
    await two_organizations(database)
    await runtime.execute("RESET ROLE")
    for table in ("organizations", "users", "memberships", "sales_orders", "invoices", "api_tokens"):
        assert await runtime.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute("ALTER TABLE sales_orders DISABLE ROW LEVEL SECURITY")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute("DROP POLICY organization_isolation ON sales_orders")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute("SELECT * FROM schema_migrations")
    await runtime.execute("SET row_security = off")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await runtime.fetchval("SELECT count(*) FROM sales_orders")


async def scope(runtime: asyncpg.Connection, organization_id: UUID, ticket: str) -> None:
    await runtime.execute(NAME_SCOPE, str(organization_id), ticket)


async def test_raw_sql_in_one_organizations_scope_neither_reads_nor_writes_anothers_rows(
    settings: Settings, database: Database, runtime: asyncpg.Connection
) -> None:
    """What SQL injected into one organization's request holds: its scope and ticket."""
    mine, theirs = await two_organizations(database)
    ticket = sealing_key(settings).ticket(mine.id)
    async with runtime.transaction():
        await scope(runtime, mine.id, ticket)
        assert await runtime.fetchval("SELECT count(*) FROM sales_orders") == 3
        theirs_only = "WHERE organization_id = $1"
        assert await runtime.fetchval(f"SELECT count(*) FROM sales_orders {theirs_only}", theirs.id) == 0
        assert await runtime.execute(
            f"UPDATE sales_orders SET status = 'draft' {theirs_only}", theirs.id
        ) == ("UPDATE 0")
        assert await runtime.execute(f"DELETE FROM customers {theirs_only}", theirs.id) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await runtime.execute(
                "INSERT INTO customers (organization_id, name, billing_name, billing_address, billing_email,"
                " payment_terms_days, currency) VALUES ($1, 'x', 'x', 'x', 'x@example.com', 30, 'EUR')",
                theirs.id,
            )


async def test_naming_another_organization_without_its_ticket_is_refused(
    settings: Settings, database: Database, runtime: asyncpg.Connection
) -> None:
    """Even with the other organization's id (the owner's functions tell a member's
    organizations by email), acting in it needs that organization's ticket."""
    mine, theirs = await two_organizations(database)
    async with runtime.transaction():
        await runtime.execute("SET LOCAL ROLE invoicing_app")
        found = await runtime.fetchval("SELECT organization_ids FROM login_candidate($1)", theirs.admin.email)
    assert found == [theirs.id]
    for ticket in ("", sealing_key(settings).ticket(mine.id), "0" * 64):
        for statement in ("SELECT count(*) FROM sales_orders", "UPDATE sales_orders SET status = 'draft'"):
            async with runtime.transaction():
                await scope(runtime, theirs.id, ticket)
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="no valid ticket"):
                    await runtime.execute(statement)


async def test_sql_in_one_organization_cannot_make_a_way_into_another(
    settings: Settings, database: Database, runtime: asyncpg.Connection
) -> None:
    """The way a first version allowed: make a user of the other organization a member here
    (or give them a password), mint a session for them, and switch it over."""
    mine, theirs = await two_organizations(database)
    both = theirs.admin  # also a member here: a session of theirs here may switch over
    async with database.connection() as connection:
        await connection.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')",
            mine.id,
            both.id,
        )
    ticket = sealing_key(settings).ticket(mine.id)
    for write in (
        f"INSERT INTO memberships VALUES ('{mine.id}', '{theirs.member.id}', 'admin')",
        f"UPDATE users SET password_hash = 'x' WHERE id = '{both.id}'",
        "UPDATE sessions SET user_id = user_id",
        "SELECT token_hash FROM sessions",
    ):
        async with runtime.transaction():
            await scope(runtime, mine.id, ticket)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(write)
    async with runtime.transaction():
        await scope(runtime, mine.id, ticket)
        await runtime.execute("SET LOCAL ROLE invoicing_app")
        await runtime.execute(
            "INSERT INTO sessions (token_hash, user_id, organization_id, expires_at)"
            " VALUES (sha256('forged'), $1, $2, now() + interval '1 day')",
            both.id,
            mine.id,
        )
        assert await runtime.fetchval("SELECT switch_session_organization(sha256('forged'), $1)", theirs.id)
    async with api_client(settings) as client:
        client.cookies.set("invoicing_session", "forged")
        response = await client.get("/api/me")
    assert response.status_code == 401, "a session row written by SQL matches no cookie"


async def test_a_bulk_copy_past_the_policies_is_refused(
    settings: Settings, database: Database, runtime: asyncpg.Connection
) -> None:
    mine, _ = await two_organizations(database)
    async with runtime.transaction():
        await scope(runtime, mine.id, sealing_key(settings).ticket(mine.id))
        with pytest.raises(asyncpg.FeatureNotSupportedError, match="row-level security"):
            await runtime.copy_records_to_table("customers", records=[], columns=["name"])


async def test_a_process_whose_secret_key_did_not_seal_the_scopes_refuses_to_start(
    settings: Settings,
) -> None:
    other_key = settings.with_overrides(secret_key="another-secret-key-0123456789")
    async with application_database(other_key, pool_size=1) as database:
        with pytest.raises(ConfigurationError, match="SECRET_KEY is not the one"):
            await check_at_start(database, "worker")
    async with application_database(settings, pool_size=1) as database:
        await check_at_start(database, "worker")


def sealing_key(settings: Settings) -> ScopeKey:
    key = ScopeKey.from_secret(settings.secret_key)
    assert key is not None
    return key


async def test_migrate_creates_a_missing_runtime_role_with_only_the_applications_rights(
    settings: Settings, database: Database
) -> None:
    role = f"invoicing_test_{secrets.token_hex(4)}"
    try:
        await ensure_runtime_role(database, with_login(settings.require_owner_database(), role, "s3cret'pw"))
        async with database.connection() as connection:
            assert await connection.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
            assert await privilege_problems(connection, role) == []
    finally:
        await drop_role(database, role)


@pytest.mark.parametrize(
    ("power", "named"),
    [("BYPASSRLS", "bypasses row-level security"), ("CREATEROLE", "may create and grant roles")],
)
async def test_migrate_refuses_a_runtime_role_that_could_leave_row_level_security(
    settings: Settings, database: Database, power: str, named: str
) -> None:
    role = f"invoicing_test_{secrets.token_hex(4)}"
    async with database.connection() as connection:
        await connection.execute(f"CREATE ROLE {role} LOGIN {power}")
    try:
        with pytest.raises(ConfigurationError, match=named):
            await ensure_runtime_role(database, with_login(settings.require_owner_database(), role))
    finally:
        await drop_role(database, role)


async def test_a_server_logging_in_as_the_owner_says_so_at_start_up(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="invoicing.infra.roles"):
        await warn_if_privileged(database, "server")
    assert "row-level security would not stop an SQL injection" in caplog.text
    assert "MIGRATION_DATABASE_URL" in caplog.text


async def drop_role(database: Database, role: str) -> None:
    async with database.connection() as connection:
        await connection.execute(f"DROP ROLE IF EXISTS {role}")


async def test_sql_left_on_a_pooled_connection_cannot_catch_the_next_organizations_writes(
    database: Database, one_connection_pool: Database
) -> None:
    """Temporary objects would outlive a request on its pooled connection: none may stand in
    for a table of ours, nor hook the staging tables that invoices pass through, and the
    connection that carries them is closed when it goes back to the pool."""
    attacker, victim = await two_organizations(database)
    async with one_connection_pool.scoped(attacker.id) as connection:
        await connection.execute("CREATE TEMPORARY TABLE invoices (LIKE public.invoices)")
        await connection.execute("CREATE TEMPORARY TABLE sales_orders (LIKE public.sales_orders)")
    async with one_connection_pool.scoped(attacker.id) as connection:
        await connection.execute(
            "CREATE FUNCTION pg_temp.grab() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN OLD; END'"
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="invoices_staging"):
        async with one_connection_pool.scoped(attacker.id) as connection:
            await connection.execute(
                "CREATE TRIGGER grab BEFORE DELETE ON pg_temp.invoices_staging"
                " FOR EACH ROW EXECUTE FUNCTION pg_temp.grab()"
            )

    async with one_connection_pool.scoped(victim.id) as connection:
        order_id = await connection.fetchval("SELECT id FROM sales_orders ORDER BY number LIMIT 1")
    assert order_id is not None, "the victim's orders are read from public.sales_orders"
    invoice = await invoice_single_order(
        one_connection_pool, organization_id=victim.id, order_id=order_id, user_id=victim.member.id
    )

    async with database.connection() as connection:
        stored = await connection.fetchval(
            "SELECT organization_id FROM public.invoices WHERE id = $1", invoice.id
        )
    assert stored == victim.id
    async with one_connection_pool.scoped(attacker.id) as connection:
        # The connection that carried them was closed when it came back altered.
        assert await connection.fetchval("SELECT to_regclass('pg_temp.invoices')") is None
        assert await connection.fetchval("SELECT pg_relation_size('pg_temp.invoices_staging')") == 0


async def test_migrate_refuses_a_runtime_role_that_inherits_a_power(
    settings: Settings, database: Database
) -> None:
    strong, role = f"invoicing_test_{secrets.token_hex(4)}", f"invoicing_test_{secrets.token_hex(4)}"
    async with database.connection() as connection:
        await connection.execute(f"CREATE ROLE {strong} NOLOGIN BYPASSRLS")
        await connection.execute(f"CREATE ROLE {role} LOGIN IN ROLE {strong}")
    try:
        with pytest.raises(ConfigurationError, match="bypasses row-level security"):
            await ensure_runtime_role(database, with_login(settings.require_owner_database(), role))
    finally:
        await drop_role(database, role)
        await drop_role(database, strong)


async def test_migrations_racing_to_create_the_runtime_role_all_succeed(
    settings: Settings, database: Database
) -> None:
    role = f"invoicing_test_{secrets.token_hex(4)}"
    url = with_login(settings.require_owner_database(), role)
    pools = [Database(settings.require_owner_database(), pool_size=1) for _ in range(6)]
    try:
        for pool in pools:
            await pool.connect()
        await asyncio.gather(*(ensure_runtime_role(pool, url) for pool in pools))
        async with database.connection() as connection:
            assert await privilege_problems(connection, role) == []
    finally:
        for pool in pools:
            await pool.disconnect()
        await drop_role(database, role)


async def test_a_statement_swapped_on_a_pooled_connection_never_runs_for_the_next_request(
    database: Database, one_connection_pool: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncpg prepares every query once per connection, under a name; SQL that swaps one of
    them (the scope's, say, to keep the next organization's ticket) must never see it run."""
    attacker, victim = await two_organizations(database)
    async with one_connection_pool.scoped(attacker.id) as connection:
        name = await connection.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%app.organization_ticket%'"
        )
        assert name is not None, "the scope's statement is prepared on this connection"
        await connection.execute("CREATE TEMPORARY TABLE loot (organization text, ticket text)")
        await connection.execute(f'DEALLOCATE "{name}"')
        await connection.execute(
            f'PREPARE "{name}" (text, text) AS WITH kept AS (INSERT INTO pg_temp.loot VALUES ($1, $2)) '
            "SELECT set_config('app.organization_id', $1, true),"
            " set_config('app.organization_ticket', $2, true)"
        )
    assert "came back altered" in caplog.text

    async with one_connection_pool.scoped(victim.id) as connection:
        assert await connection.fetchval("SELECT count(*) FROM sales_orders") == 4
        assert await connection.fetchval("SELECT to_regclass('pg_temp.loot')") is None


async def test_a_statement_that_swallows_its_cancels_is_ended_by_the_sweep(
    database: Database, database_url: str, redis_url: str, queue: JobQueue
) -> None:
    """SQL that lowers its own timeout and catches the cancel of a client's timeout would keep
    its locks (an organization's submit lock, say) after asyncpg gave the connection up."""
    settings = make_settings(database_url, redis_url, DB_STATEMENT_TIMEOUT_SECONDS="0.5")
    runaway = await asyncpg.connect(settings.require_database())
    stuck = asyncio.create_task(
        runaway.execute(
            "SET statement_timeout = 0; DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(1); "
            "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$"
        )
    )
    try:
        async with application_database(settings, pool_size=1) as sweeping:

            async def ended() -> bool:
                await sweep(sweeping, queue, settings)
                return stuck.done()

            await eventually(ended, timeout=30, what="the runaway statement's session to be ended")
        with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
            stuck.result()
    finally:
        stuck.cancel()
        runaway.terminate()
