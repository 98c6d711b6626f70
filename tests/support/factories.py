"""Factories for test data, written straight to PostgreSQL in bulk."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid4

from invoicing.accounts.credentials import FAST_PASSWORD_HASHER, hash_password, hash_token, new_api_token
from invoicing.infra.database import Database

# Most tests never log in with a password; a fixed, non-verifiable hash keeps them fast.
UNUSABLE_PASSWORD_HASH = "!test-user-without-password"
#: The password of users made with ``with_password=True``.
TEST_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    admin: User
    member: User
    customer_id: UUID  # a customer with full billing info, in EUR
    unbillable_customer_id: UUID  # a customer without billing address or email


@dataclass(frozen=True)
class Line:
    description: str = "Consulting hours"
    quantity: Decimal = Decimal("2")
    unit_price: Decimal = Decimal("50.00")
    discount_percent: Decimal = Decimal("0")
    tax_rate_percent: Decimal = Decimal("20")


VALID_LINES = (Line(), Line("Travel", Decimal("1"), Decimal("19.99"), Decimal("10"), Decimal("7")))


async def create_user(
    database: Database, organization_id: UUID, role: str, *, with_password: bool = False
) -> User:
    user_id = uuid4()
    email = f"{role}-{secrets.token_hex(4)}@example.test"
    token = new_api_token()
    async with database.transaction() as connection:
        await connection.execute(
            "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)",
            user_id,
            email,
            role.title(),
            hash_password(TEST_PASSWORD, hasher=FAST_PASSWORD_HASHER)
            if with_password
            else UNUSABLE_PASSWORD_HASH,
        )
        await connection.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)",
            organization_id,
            user_id,
            role,
        )
        await connection.execute(
            "INSERT INTO api_tokens (organization_id, user_id, name, token_hash) VALUES ($1, $2, 'test', $3)",
            organization_id,
            user_id,
            hash_token(token),
        )
    return User(user_id, email, role, token)


async def create_organization(
    database: Database, name: str | None = None, *, with_passwords: bool = False
) -> Organization:
    organization_id = uuid4()
    name = name or f"Org {secrets.token_hex(3)}"
    customer_id, unbillable_id = uuid4(), uuid4()
    async with database.transaction() as connection:
        await connection.execute(
            "INSERT INTO organizations (id, name) VALUES ($1, $2)", organization_id, name
        )
        await connection.execute(
            """
            INSERT INTO customers (id, organization_id, name, billing_name, billing_address, billing_email,
                                   payment_terms_days, currency)
            VALUES ($1, $3, 'Acme GmbH', 'Acme GmbH', 'Hauptstr. 1, Berlin', 'billing@acme.test', 30, 'EUR'),
                   ($2, $3, 'No Address Ltd', 'No Address Ltd', NULL, NULL, 14, 'EUR')
            """,
            customer_id,
            unbillable_id,
            organization_id,
        )
    admin = await create_user(database, organization_id, "admin", with_password=with_passwords)
    member = await create_user(database, organization_id, "member", with_password=with_passwords)
    return Organization(organization_id, name, admin, member, customer_id, unbillable_id)


async def create_orders(
    database: Database,
    organization: Organization,
    count: int,
    *,
    lines: tuple[Line, ...] = VALID_LINES,
    status: str = "confirmed",
    currency: str = "EUR",
    customer_id: UUID | None = None,
    prefix: str = "SO",
) -> list[UUID]:
    """``count`` orders with the same lines, numbered ``{prefix}-{random}-{n}``; returns their ids."""
    batch = secrets.token_hex(3)
    order_ids = [uuid4() for _ in range(count)]
    customer = customer_id or organization.customer_id
    order_rows = [
        (order_id, organization.id, f"{prefix}-{batch}-{n:06d}", customer, status, currency)
        for n, order_id in enumerate(order_ids, start=1)
    ]
    line_rows = [
        (uuid4(), order_id, position, line.description, line.quantity, line.unit_price,
         line.discount_percent, line.tax_rate_percent, organization.id)
        for order_id in order_ids
        for position, line in enumerate(lines, start=1)
    ]  # fmt: skip
    async with database.transaction() as connection:
        await connection.copy_records_to_table(
            "sales_orders",
            records=order_rows,
            columns=("id", "organization_id", "number", "customer_id", "status", "currency"),
        )
        await connection.copy_records_to_table(
            "sales_order_lines",
            records=line_rows,
            columns=(
                "id",
                "sales_order_id",
                "position",
                "description",
                "quantity",
                "unit_price",
                "discount_percent",
                "tax_rate_percent",
                "organization_id",
            ),
        )
    return order_ids


@dataclass(frozen=True)
class MixedOrders:
    """Valid orders and one of each way an order can fail, with the code each must fail with."""

    valid: list[UUID]
    invalid: dict[UUID, str]

    @property
    def all_ids(self) -> list[UUID]:
        return [*self.valid, *self.invalid]


async def create_mixed_orders(database: Database, organization: Organization, valid: int) -> MixedOrders:
    good = await create_orders(database, organization, valid)
    invalid: dict[UUID, str] = {}
    cases: list[tuple[str, dict[str, object]]] = [
        ("no_lines", {"lines": ()}),
        ("invalid_line", {"lines": (Line(quantity=Decimal("0")),)}),
        ("invalid_line", {"lines": (Line(description="  "),)}),
        ("missing_billing_info", {"customer_id": organization.unbillable_customer_id}),
        ("currency_mismatch", {"currency": "USD"}),
        ("order_not_confirmed", {"status": "draft"}),
    ]
    for code, overrides in cases:
        (order_id,) = await create_orders(database, organization, 1, **overrides)  # type: ignore[arg-type]
        invalid[order_id] = code
    invalid[uuid4()] = "order_not_found"
    return MixedOrders(good, invalid)
