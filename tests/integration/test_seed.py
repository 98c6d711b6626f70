"""The demo seed against a real PostgreSQL: shape, counts, broken orders and credentials."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from argon2 import extract_parameters

from devtools.seed import INVALID_KINDS, database_is_empty, seed
from invoicing.accounts.credentials import hash_token, stand_in_password_hash, verify_password
from invoicing.domain.invoice_rules import INVOICE_ERROR_CODES, build_invoice_draft
from invoicing.domain.models import Customer, OrderLine, SalesOrder
from invoicing.infra.database import Database
from invoicing.kernel.errors import InvoiceRuleError


@pytest.fixture
def db(database: Database) -> Database:
    """The shared per-test database (tests/conftest.py), under this module's short name."""
    return database


async def validation_codes(db: Database, organization_id: str) -> Counter[str]:
    """Run every order of the organization through the invoice rules; count the outcomes."""
    async with db.connection() as conn:
        customers = {
            row["id"]: Customer(**dict(row))
            for row in await conn.fetch(
                "SELECT id, name, billing_name, billing_address, billing_email, payment_terms_days,"
                " currency FROM customers WHERE organization_id = $1",
                UUID(organization_id),
            )
        }
        lines: dict[UUID, list[OrderLine]] = {}
        for row in await conn.fetch(
            "SELECT l.sales_order_id, l.position, l.description, l.quantity, l.unit_price,"
            " l.discount_percent, l.tax_rate_percent FROM sales_order_lines l"
            " JOIN sales_orders o ON o.id = l.sales_order_id WHERE o.organization_id = $1",
            UUID(organization_id),
        ):
            fields = dict(row)
            lines.setdefault(fields.pop("sales_order_id"), []).append(OrderLine(**fields))
        orders = await conn.fetch(
            "SELECT id, organization_id, number, customer_id, status, currency, order_date"
            " FROM sales_orders WHERE organization_id = $1",
            UUID(organization_id),
        )
    outcomes: Counter[str] = Counter()
    for row in orders:
        order = SalesOrder(**dict(row), lines=tuple(lines.get(row["id"], ())))
        try:
            build_invoice_draft(
                order, customers[order.customer_id], already_invoiced=False, issue_date=date.today()
            )
        except InvoiceRuleError as exc:
            outcomes[exc.code] += 1
        else:
            outcomes["ok"] += 1
    return outcomes


async def fetch_all(db: Database, query: str, *args: Any) -> list[asyncpg.Record]:
    async with db.connection() as conn:
        return list(await conn.fetch(query, *args))


async def test_result_has_exactly_the_documented_shape(db: Database) -> None:
    result = await seed(db, organizations=2, orders=10, rng_seed=1)

    assert set(result) == {"organizations"}
    assert len(result["organizations"]) == 2
    for organization in result["organizations"]:
        assert set(organization) == {"id", "name", "users"}
        assert UUID(organization["id"])
        assert [user["role"] for user in organization["users"]] == ["admin", "member"]
        for user in organization["users"]:
            assert set(user) == {"email", "password", "role", "token"}
            assert all(isinstance(value, str) and value for value in user.values())
            assert user["token"].startswith("inv_")
    first, second = result["organizations"]
    assert (first["name"], second["name"]) == ("Acme Trading 1", "Globex Supplies 2")
    assert first["users"][0]["email"] == "admin@acme-trading-1.example"
    assert first["users"][1]["email"] == "member@acme-trading-1.example"


async def test_orders_are_numbered_per_organization(db: Database) -> None:
    result = await seed(db, organizations=2, orders=37, rng_seed=2)

    for organization in result["organizations"]:
        rows = await fetch_all(
            db,
            "SELECT number, status FROM sales_orders WHERE organization_id = $1 ORDER BY number",
            UUID(organization["id"]),
        )
        assert [row["number"] for row in rows] == [f"SO-{n:06d}" for n in range(1, 38)]
        assert {row["status"] for row in rows} == {"confirmed"}
        customers = await fetch_all(
            db, "SELECT currency FROM customers WHERE organization_id = $1", UUID(organization["id"])
        )
        assert 15 <= len(customers) <= 25
        assert Counter(row["currency"] for row in customers)["EUR"] > len(customers) / 2


async def test_the_invalid_share_fails_validation_with_every_kind(db: Database) -> None:
    result = await seed(db, organizations=1, orders=200, invalid_ratio=0.2, rng_seed=3)

    outcomes = await validation_codes(db, result["organizations"][0]["id"])

    assert outcomes["ok"] == 160
    assert {code: outcomes[code] for code in INVALID_KINDS} == dict.fromkeys(INVALID_KINDS, 10)
    assert set(outcomes) <= {"ok", *INVOICE_ERROR_CODES}


async def test_without_invalid_ratio_every_order_can_be_invoiced(db: Database) -> None:
    result = await seed(db, organizations=1, orders=50, invalid_ratio=0, rng_seed=4)

    assert await validation_codes(db, result["organizations"][0]["id"]) == Counter(ok=50)


async def test_passwords_verify_and_only_token_hashes_are_stored(db: Database) -> None:
    result = await seed(db, organizations=1, orders=1, rng_seed=5)
    organization = result["organizations"][0]

    for user in organization["users"]:
        (row,) = await fetch_all(
            db,
            "SELECT u.password_hash, m.role, t.token_hash FROM users u"
            " JOIN memberships m ON m.user_id = u.id"
            " JOIN api_tokens t ON t.user_id = u.id AND t.organization_id = m.organization_id"
            " WHERE u.email = $1 AND m.organization_id = $2",
            user["email"],
            UUID(organization["id"]),
        )
        assert row["role"] == user["role"]
        assert verify_password(row["password_hash"], user["password"])
        assert not verify_password(row["password_hash"], user["password"] + "x")
        assert user["password"] not in row["password_hash"]
        # The login's stand-in for unknown emails costs what these cost (issue 12).
        assert extract_parameters(row["password_hash"]) == extract_parameters(stand_in_password_hash())
        assert bytes(row["token_hash"]) == hash_token(user["token"])
    tokens = await fetch_all(db, "SELECT token_hash FROM api_tokens")
    plaintext = {user["token"].encode() for user in organization["users"]}
    assert not plaintext & {bytes(row["token_hash"]) for row in tokens}


async def test_seeding_twice_creates_new_organizations_and_unique_emails(db: Database) -> None:
    first = await seed(db, organizations=2, orders=5, rng_seed=6)
    second = await seed(db, organizations=2, orders=5, rng_seed=6)

    organizations = first["organizations"] + second["organizations"]
    assert len({organization["id"] for organization in organizations}) == 4
    emails = [user["email"] for organization in organizations for user in organization["users"]]
    assert len(set(emails)) == 8
    assert second["organizations"][0]["users"][0]["email"].startswith("admin+")
    assert second["organizations"][0]["users"][0]["email"].endswith("@acme-trading-1.example")
    (count,) = await fetch_all(db, "SELECT count(*) AS n FROM sales_orders")
    assert count["n"] == 20


async def test_the_same_rng_seed_lays_out_the_same_orders(db: Database) -> None:
    first = await seed(db, organizations=2, orders=30, rng_seed=7)
    second = await seed(db, organizations=2, orders=30, rng_seed=7)

    layout_query = (
        "SELECT o.number, o.currency, c.name, count(l.id) AS lines, sum(l.unit_price) AS prices"
        " FROM sales_orders o JOIN customers c ON c.id = o.customer_id"
        " LEFT JOIN sales_order_lines l ON l.sales_order_id = o.id"
        " WHERE o.organization_id = $1 GROUP BY o.number, o.currency, c.name ORDER BY o.number"
    )
    for old, new in zip(first["organizations"], second["organizations"], strict=True):
        assert old["id"] != new["id"]
        assert [user["password"] for user in old["users"]] != [user["password"] for user in new["users"]]
        old_layout = await fetch_all(db, layout_query, UUID(old["id"]))
        new_layout = await fetch_all(db, layout_query, UUID(new["id"]))
        assert [tuple(row) for row in old_layout] == [tuple(row) for row in new_layout]


async def test_bad_arguments_are_refused_before_writing(db: Database) -> None:
    with pytest.raises(ValueError, match="invalid_ratio"):
        await seed(db, invalid_ratio=1.5)
    with pytest.raises(ValueError, match="negative"):
        await seed(db, orders=-1)

    assert await database_is_empty(db)


async def test_database_is_empty_until_seeded(db: Database) -> None:
    assert await database_is_empty(db)

    await seed(db, organizations=1, orders=0)

    assert not await database_is_empty(db)
