"""Demo data: organizations with users, API tokens, customers and confirmed sales orders.

Each organization is written in one transaction and the bulk tables with COPY, so
``--orders 100000`` takes seconds. A share of the orders is broken on purpose, in the ways
real data is (``INVALID_KINDS``), so a batch run shows failures beside successes. Layout and
amounts follow ``rng_seed``; ids, passwords and tokens are always fresh.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from operator import attrgetter
from typing import Any, TypedDict, TypeVar

from invoicing.accounts.credentials import hash_password, hash_token, new_api_token
from invoicing.domain.invoice_rules import CURRENCY_MISMATCH, INVALID_LINE, MISSING_BILLING_INFO, NO_LINES
from invoicing.infra.database import Connection, Database

_T = TypeVar("_T")

# Each invalid order has exactly one of these problems, so validation reports that code.
INVALID_KINDS: tuple[str, ...] = (NO_LINES, MISSING_BILLING_INFO, INVALID_LINE, CURRENCY_MISMATCH)

CUSTOMERS_PER_ORGANIZATION = 20
CUSTOMERS_WITHOUT_BILLING = 3
_USD_SHARE = 0.2
_ORDER_AGE_DAYS = 120
_EMAIL_ATTEMPTS = 20
_CONCURRENT_ORGANIZATIONS = 4

_ORGANIZATION_NAMES = (
    "Acme Trading",
    "Globex Supplies",
    "Initech Office Solutions",
    "Umbrella Logistics",
    "Stark Components",
    "Wayne Hardware",
    "Soylent Foods",
    "Hooli Cloud Services",
)
_PEOPLE = ("Maria Schneider", "James Carter", "Sofia Rossi", "Lukas Novak", "Emma Dubois", "Noah Jansen")
_CUSTOMER_PREFIXES = (
    "Northwind", "Blue Harbor", "Red Oak", "Silverline", "Alpine", "Brightwater", "Ironbridge",
    "Greenfield", "Sunrise", "Lakeside", "Summit", "Riverbend", "Oakridge", "Westgate",
)  # fmt: skip
_CUSTOMER_TRADES = ("Logistics", "Bakery", "Architects", "Dental Clinic", "Engineering", "Hotels", "Retail")
# (street with a house-number slot, city line, country, legal form), billing in EUR or USD.
_EUR_PLACES = (
    ("Friedrichstraße {}", "10117 Berlin", "Germany", "GmbH"),
    ("Keizersgracht {}", "1015 CJ Amsterdam", "Netherlands", "B.V."),
    ("{} rue de Rivoli", "75001 Paris", "France", "SAS"),
    ("Mariahilfer Straße {}", "1060 Vienna", "Austria", "GmbH"),
    ("Calle de Alcalá, {}", "28014 Madrid", "Spain", "S.L."),
    ("Via Torino {}", "20123 Milan", "Italy", "S.r.l."),
)
_USD_PLACES = (
    ("{} Congress Avenue", "Austin, TX 78701", "United States", "Inc."),
    ("{} West Wacker Drive", "Chicago, IL 60606", "United States", "LLC"),
    ("{} Boylston Street", "Boston, MA 02116", "United States", "Inc."),
)
_PRODUCTS = (
    "Ergonomic office chair",
    "Height-adjustable standing desk",
    "A4 copy paper, 80 g/m² (box of 5 reams)",
    "Laser toner cartridge, black",
    "27-inch IPS monitor",
    "USB-C docking station",
    "Wireless keyboard and mouse set",
    "On-site installation (hours)",
    "Remote support (hours)",
    "Annual maintenance contract",
    "Cat6 network cable, 5 m",
    "Label printer rolls (pack of 12)",
    "Espresso beans, 1 kg",
    "Stainless steel shelving unit",
    "Hand pallet truck, 2.5 t",
    "Safety gloves, size L (pair)",
    "Freight and handling",
    "Consulting day rate",
    "Project management (hours)",
    "Software licence, 12 months",
)
# Line values are kept in COPY text form (see ``_seed_organization``), escaped once here.
_DESCRIPTIONS = tuple(
    product.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    for product in _PRODUCTS
)
# Weighted choices spelled out as repetitions, for ``_pick``: ``rng.choices`` costs several
# times more, and the line loop runs a few hundred thousand times.
_DISCOUNTS = ("0",) * 7 + ("5",) * 2 + ("10",)
_TAX_RATES = ("0",) + ("7",) * 2 + ("19",) * 4 + ("20",) * 3
# Mostly whole units; one in six a half (2.5 hours, 7.5 kg).
_QUANTITIES = tuple(str(n) for n in range(1, 21)) * 5 + tuple(str(n / 2) for n in range(3, 40, 2))

_INSERT_ORGANIZATION = "INSERT INTO organizations (id, name) VALUES ($1, $2)"
_INSERT_USER = """
INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)
ON CONFLICT (email) DO NOTHING
RETURNING id
"""
_INSERT_MEMBERSHIP = "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)"
_INSERT_API_TOKEN = """
INSERT INTO api_tokens (organization_id, user_id, name, token_hash) VALUES ($1, $2, 'seed', $3)
"""
_CUSTOMER_COLUMNS = (
    "id", "organization_id", "name", "billing_name", "billing_address", "billing_email",
    "payment_terms_days", "currency",
)  # fmt: skip
_ORDER_COLUMNS = ("id", "organization_id", "number", "customer_id", "status", "currency", "order_date")
# Nothing refers to a line, so PostgreSQL fills in line ids itself.
_LINE_COLUMNS = (
    "organization_id", "sales_order_id", "position", "description", "quantity", "unit_price",
    "discount_percent", "tax_rate_percent",
)  # fmt: skip


class SeededUser(TypedDict):
    email: str
    password: str
    role: str
    token: str


class SeededOrganization(TypedDict):
    id: str
    name: str
    users: list[SeededUser]


class SeedResult(TypedDict):
    organizations: list[SeededOrganization]


@dataclass(frozen=True, slots=True)
class _Customer:
    id: uuid.UUID
    currency: str
    billable: bool


@dataclass(slots=True)
class _Rows:
    """Rows ready for COPY, in the column order of the ``_*_COLUMNS`` constants."""

    customers: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    lines: list[str]  # in COPY text format, one line per row


async def database_is_empty(db: Database) -> bool:
    """Tell whether no organization exists yet (a fresh install that may be seeded)."""
    async with db.connection() as conn:
        return bool(await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM organizations)"))


async def seed(
    db: Database,
    *,
    organizations: int = 2,
    orders: int = 200,
    invalid_ratio: float = 0.1,
    rng_seed: int | None = None,
) -> SeedResult:
    """Create ``organizations`` new demo organizations and return their credentials.

    Each gets an admin and a member (with a password and one API token each, returned in
    plaintext only here), ~20 customers and ``orders`` confirmed sales orders numbered from
    ``SO-000001``. Exactly ``round(orders * invalid_ratio)`` orders fail invoice validation,
    the kinds of ``INVALID_KINDS`` in turn; every other order can be invoiced. Raises
    ``ValueError`` for a negative count or a ratio outside 0..1.
    """
    if organizations < 0 or orders < 0:
        raise ValueError("organizations and orders must not be negative")
    if not 0 <= invalid_ratio <= 1:
        raise ValueError("invalid_ratio must be between 0 and 1")
    rng = random.Random(rng_seed)
    # One generator per organization, seeded up front: the data stays the same for a given
    # seed although the organizations are written concurrently.
    organization_seeds = [rng.getrandbits(64) for _ in range(organizations)]
    # The database is the bottleneck (mostly foreign-key checks, one per row), so a few
    # organizations are written at once, each by its own backend.
    slots = asyncio.Semaphore(_CONCURRENT_ORGANIZATIONS)

    async def seed_one(number: int) -> SeededOrganization:
        name = f"{_ORGANIZATION_NAMES[(number - 1) % len(_ORGANIZATION_NAMES)]} {number}"
        async with slots:
            organization_rng = random.Random(organization_seeds[number - 1])
            return await _seed_organization(db, organization_rng, name, orders, invalid_ratio)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(seed_one(number)) for number in range(1, organizations + 1)]
    except ExceptionGroup as errors:
        # Callers expect one error, not a group. Unfinished organizations were rolled back;
        # those committed before the failure stay.
        raise errors.exceptions[0] from None
    return {"organizations": [task.result() for task in tasks]}


async def _seed_organization(
    db: Database, rng: random.Random, name: str, orders: int, invalid_ratio: float
) -> SeededOrganization:
    organization_id = uuid.uuid4()
    passwords = {role: secrets.token_urlsafe(9) for role in ("admin", "member")}
    # Hashed before the transaction opens, and off the event loop: argon2 is slow on purpose.
    hashes = {role: await asyncio.to_thread(hash_password, password) for role, password in passwords.items()}
    # Built in a thread so the event loop keeps feeding another organization's COPY meanwhile.
    rows = await asyncio.to_thread(_build_rows, rng, organization_id, orders, invalid_ratio)
    domain = f"{_slug(name)}.example"
    users: list[SeededUser] = []
    async with db.transaction() as conn:
        await conn.execute(_INSERT_ORGANIZATION, organization_id, name)
        for role, password in passwords.items():
            user_id, email = await _insert_user(conn, role, domain, rng.choice(_PEOPLE), hashes[role])
            token = new_api_token()
            await conn.execute(_INSERT_MEMBERSHIP, organization_id, user_id, role)
            await conn.execute(_INSERT_API_TOKEN, organization_id, user_id, hash_token(token))
            users.append({"email": email, "password": password, "role": role, "token": token})
        await conn.copy_records_to_table("customers", records=rows.customers, columns=_CUSTOMER_COLUMNS)
        await conn.copy_records_to_table("sales_orders", records=rows.orders, columns=_ORDER_COLUMNS)
        # Lines go as text: asyncpg's binary encoding of four Decimals a row would cost more
        # client CPU than everything else here together.
        lines = io.BytesIO("".join(f"{organization_id}\t{line}" for line in rows.lines).encode())
        await conn.copy_to_table("sales_order_lines", source=lines, columns=_LINE_COLUMNS, format="text")
    return {"id": str(organization_id), "name": name, "users": users}


async def _insert_user(
    conn: Connection, local_part: str, domain: str, name: str, password_hash: str
) -> tuple[uuid.UUID, str]:
    """Insert a user as ``local_part@domain``, or with a random ``+suffix`` if that is taken."""
    email = f"{local_part}@{domain}"
    for _ in range(_EMAIL_ATTEMPTS):
        user_id = await conn.fetchval(_INSERT_USER, email, name, password_hash)
        if user_id is not None:
            return user_id, email
        email = f"{local_part}+{secrets.token_hex(2)}@{domain}"
    raise RuntimeError(f"no free email address for {local_part}@{domain}")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _build_rows(rng: random.Random, organization_id: uuid.UUID, orders: int, invalid_ratio: float) -> _Rows:
    rows = _Rows(customers=[], orders=[], lines=[])
    trade_names = [f"{prefix} {trade}" for prefix in _CUSTOMER_PREFIXES for trade in _CUSTOMER_TRADES]
    customers = [
        _add_customer(rng, rows, organization_id, index, name)
        for index, name in enumerate(rng.sample(trade_names, CUSTOMERS_PER_ORGANIZATION))
    ]
    billable = [customer for customer in customers if customer.billable]
    pools = {
        None: billable,
        MISSING_BILLING_INFO: [customer for customer in customers if not customer.billable],
        CURRENCY_MISMATCH: [customer for customer in billable if customer.currency == "EUR"],
    }
    invalid_positions = rng.sample(range(orders), round(orders * invalid_ratio))
    kinds = {position: INVALID_KINDS[i % len(INVALID_KINDS)] for i, position in enumerate(invalid_positions)}
    today = date.today()
    order_dates = [today - timedelta(days=age) for age in range(_ORDER_AGE_DAYS)]
    # Random ids handed out in ascending order, like the numbers: the indexes and the lines'
    # foreign-key checks then walk their pages in order, which makes the COPY about a fifth faster.
    order_ids = sorted((uuid.uuid4() for _ in range(orders)), key=attrgetter("int"))
    for position, order_id in enumerate(order_ids):
        kind = kinds.get(position)
        customer = _pick(rng, pools.get(kind, billable))
        currency = "USD" if kind == CURRENCY_MISMATCH else customer.currency
        order_date = _pick(rng, order_dates)
        number = f"SO-{position + 1:06d}"
        rows.orders.append(
            (order_id, organization_id, number, customer.id, "confirmed", currency, order_date)
        )
        if kind != NO_LINES:
            _add_lines(rng, rows, order_id, broken=kind == INVALID_LINE)
    return rows


def _add_customer(
    rng: random.Random, rows: _Rows, organization_id: uuid.UUID, index: int, name: str
) -> _Customer:
    # The first customer always bills in EUR, so currency-mismatch orders have one to go to;
    # the last few lack billing details, in turn the address, the email or both.
    currency = "USD" if index > 0 and rng.random() < _USD_SHARE else "EUR"
    street, city_line, country, legal_form = rng.choice(_USD_PLACES if currency == "USD" else _EUR_PLACES)
    address: str | None = f"{street.format(rng.randint(1, 240))}\n{city_line}\n{country}"
    email: str | None = f"{rng.choice(('invoices', 'accounts', 'billing'))}@{_slug(name)}.example"
    billable = index < CUSTOMERS_PER_ORGANIZATION - CUSTOMERS_WITHOUT_BILLING
    if not billable:
        gap = index % 3
        address = None if gap != 1 else address
        email = None if gap != 2 else email
    terms = rng.choice((14, 30, 30, 45, 60))
    customer_id = uuid.uuid4()
    rows.customers.append(
        (customer_id, organization_id, name, f"{name} {legal_form}", address, email, terms, currency)
    )
    return _Customer(customer_id, currency, billable)


def _add_lines(rng: random.Random, rows: _Rows, order_id: uuid.UUID, *, broken: bool) -> None:
    order = str(order_id)
    count = 1 + int(rng.random() * 5)
    broken_position = 1 + int(rng.random() * count) if broken else 0
    for position in range(1, count + 1):
        quantity = _pick(rng, _QUANTITIES)
        cents = 100 + int(rng.random() * 49_901)  # 1.00 to 500.00
        unit_price = f"{cents // 100}.{cents % 100:02d}"
        description = _pick(rng, _DESCRIPTIONS)
        if position == broken_position:
            quantity, unit_price, description = _break_line(rng, quantity, unit_price, description)
        discount = _pick(rng, _DISCOUNTS)
        tax_rate = _pick(rng, _TAX_RATES)
        rows.lines.append(
            f"{order}\t{position}\t{description}\t{quantity}\t{unit_price}\t{discount}\t{tax_rate}\n"
        )


def _pick(rng: random.Random, choices: Sequence[_T]) -> _T:
    """``rng.choice`` without its overhead, for the hot loops."""
    return choices[int(rng.random() * len(choices))]


def _break_line(rng: random.Random, quantity: str, unit_price: str, description: str) -> tuple[str, str, str]:
    """Spoil one field the way data entry does: a zero quantity, a negative price, no text."""
    match rng.randrange(3):
        case 0:
            return "0", unit_price, description
        case 1:
            return quantity, f"-{unit_price}", description
        case _:
            return quantity, unit_price, ""
