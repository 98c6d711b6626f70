"""Invoices: loading orders to invoice, allocating numbers, bulk writing, reading back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg

from invoicing.domain.invoice_rules import format_invoice_number
from invoicing.domain.models import Customer, InvoiceDraft, SalesOrder, TaxAmount
from invoicing.infra.copy_text import escape, optional
from invoicing.infra.database_failures import database_reason
from invoicing.infra.keyset import after_key
from invoicing.invoices.views import Invoice
from invoicing.kernel.errors import NotFound, OrderLocked
from invoicing.orders.store import order_lines

# Each chunk looks up a few hundred keys in tables of any size, so every read below is a loop
# of primary- or unique-key lookups, whatever the planner's statistics say: the LATERAL
# subqueries (kept apart by OFFSET 0) cannot be turned into a scan of the whole organization.
# Right after a bulk import the statistics are stale, and the planner then chose a scan of all
# of the organization's orders and lines for every chunk (a 100,000-order job got slower with
# every chunk).
#
# Order rows are locked in id order, so two transactions invoicing overlapping orders (two jobs,
# or a job and the single-order endpoint) wait for each other instead of deadlocking; the
# second then sees the first's invoice and reports `already_invoiced`. The lock is taken inside
# the LATERAL subquery, one lookup at a time in the order of the array: the caller passes the
# ids sorted (the ORDER BY below only sorts rows already locked).
LOCK_ORDERS = """
SELECT o.id, o.organization_id, o.number, o.customer_id, o.status, o.currency, o.order_date,
       c.name AS customer_name, c.billing_name, c.billing_address, c.billing_email,
       c.payment_terms_days, c.currency AS customer_currency
FROM unnest($2::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (
    SELECT * FROM sales_orders WHERE id = wanted.id AND organization_id = $1 OFFSET 0
) AS o
CROSS JOIN LATERAL (SELECT * FROM customers WHERE id = o.customer_id OFFSET 0) AS c
ORDER BY o.id
FOR UPDATE OF o
"""

# Nothing waits for an order someone else holds (an ERP editing it, another job, a frozen
# process): a batch chunk takes the others and leaves that one for later; a single order's
# request gives its connection back and tries again.
LOCK_ORDERS_SKIPPING_LOCKED = LOCK_ORDERS.replace("FOR UPDATE OF o", "FOR UPDATE OF o SKIP LOCKED")
LOCK_ORDERS_OR_FAIL = LOCK_ORDERS.replace("FOR UPDATE OF o", "FOR UPDATE OF o NOWAIT")

# Among orders a skipping lock did not return: those that exist (so someone else holds them).
EXISTING_ORDERS = """
SELECT o.id
FROM unnest($2::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (SELECT id FROM sales_orders WHERE id = wanted.id AND organization_id = $1 OFFSET 0) AS o
"""


SELECT_INVOICED = """
SELECT i.sales_order_id
FROM unnest($1::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (SELECT sales_order_id FROM invoices WHERE sales_order_id = wanted.id OFFSET 0) AS i
"""

# The counter row's lock is held until commit: concurrent chunks of one organization take
# numbers one block after another, and a rollback gives the block back (no gaps).
# Taken on its own first by a batch chunk, so that the time spent queueing for it is known
# (the chunk sizer leaves it out) and no other lock is waited for while holding it.
LOCK_NUMBER_COUNTER = """
SELECT 1 FROM invoice_number_counters WHERE organization_id = $1 AND year = $2 FOR UPDATE
"""

ALLOCATE_NUMBERS = """
INSERT INTO invoice_number_counters AS counter (organization_id, year, last_number)
VALUES ($1, $2, $3)
ON CONFLICT (organization_id, year) DO UPDATE SET last_number = counter.last_number + EXCLUDED.last_number
RETURNING last_number
"""

INVOICE_COLUMNS = (
    "id", "organization_id", "number", "year", "sequence", "sales_order_id", "customer_id",
    "billing_name", "billing_address", "billing_email", "issue_date", "due_date", "currency",
    "subtotal", "tax_total", "total", "tax_breakdown", "created_by", "batch_job_id",
)  # fmt: skip
LINE_COLUMNS = (
    "invoice_id", "position", "description", "quantity", "unit_price",
    "discount_percent", "tax_rate_percent", "net_amount", "organization_id",
)  # fmt: skip

# The application role may not COPY into a table under row-level security (PostgreSQL refuses
# COPY FROM there), and must not be able to step out of it. So a chunk is copied into
# session-local staging tables (no policies, no WAL), then moved into the real ones by one
# INSERT that the policies check: an invoice of another organization is refused like any
# INSERT's. The owner makes them when a connection opens (``create_staging_tables``, the
# pool's hook; migrations/0011_least_privilege.sql), emptied at every commit.
STAGING_TABLES = {"invoices": "invoices_staging", "invoice_lines": "invoice_lines_staging"}
COLUMNS = {"invoices": INVOICE_COLUMNS, "invoice_lines": LINE_COLUMNS}
MOVE_STAGED = """
WITH staged AS (DELETE FROM pg_temp.{staging} RETURNING {columns})
INSERT INTO public.{table} ({columns}) SELECT {columns} FROM staged
"""
MOVES = {
    table: MOVE_STAGED.format(staging=staging, table=table, columns=", ".join(COLUMNS[table]))
    for table, staging in STAGING_TABLES.items()
}


async def create_staging_tables(connection: asyncpg.Connection) -> None:
    """Give a new connection of the application's pool its staging tables (see STAGING_TABLES)."""
    await connection.execute("SELECT create_staging_tables()")


@dataclass(frozen=True, slots=True)
class OrdersToInvoice:
    """What the invoice rules need about a set of orders, read under lock."""

    orders: dict[UUID, SalesOrder]
    customers: dict[UUID, Customer]
    already_invoiced: frozenset[UUID]
    #: Orders that exist but another transaction holds (only when locking with ``on_locked="skip"``).
    locked_elsewhere: frozenset[UUID] = frozenset()


#: What ``lock_orders_for_invoicing`` does about an order someone else holds.
OnLocked = Literal["wait", "skip", "fail"]

_LOCKING = {"wait": LOCK_ORDERS, "skip": LOCK_ORDERS_SKIPPING_LOCKED, "fail": LOCK_ORDERS_OR_FAIL}


async def lock_orders_for_invoicing(
    connection: asyncpg.Connection,
    organization_id: UUID,
    order_ids: Sequence[UUID],
    *,
    on_locked: OnLocked = "wait",
) -> OrdersToInvoice:
    """Orders of this organization among ``order_ids`` (others are simply absent), locked.

    An order held elsewhere is waited for (``wait``, up to the session's ``lock_timeout``),
    left out and named in ``locked_elsewhere`` (``skip``), or answered at once with
    ``OrderLocked`` (``fail``).
    """
    # Sorted: uuid order in Python (by value) is PostgreSQL's (by bytes), the lock order.
    wanted = sorted(order_ids)
    try:
        order_rows = await connection.fetch(_LOCKING[on_locked], organization_id, wanted)
    except asyncpg.LockNotAvailableError as exc:
        raise OrderLocked() from exc
    found = [row["id"] for row in order_rows]
    locked_elsewhere: frozenset[UUID] = frozenset()
    if on_locked == "skip" and len(found) < len(wanted):
        missing = sorted(set(wanted).difference(found))
        existing = await connection.fetch(EXISTING_ORDERS, organization_id, missing)
        locked_elsewhere = frozenset(row["id"] for row in existing)
    lines = await order_lines(connection, found)
    invoiced: frozenset[UUID] = frozenset()
    if found:
        invoiced = frozenset(row["sales_order_id"] for row in await connection.fetch(SELECT_INVOICED, found))
    orders: dict[UUID, SalesOrder] = {}
    customers: dict[UUID, Customer] = {}
    for row in order_rows:
        orders[row["id"]] = SalesOrder(
            id=row["id"],
            organization_id=row["organization_id"],
            number=row["number"],
            customer_id=row["customer_id"],
            status=row["status"],
            currency=row["currency"],
            order_date=row["order_date"],
            lines=tuple(lines[row["id"]]),
        )
        if row["customer_id"] in customers:
            continue  # many orders of a chunk share a customer: built once
        customers[row["customer_id"]] = Customer(
            id=row["customer_id"],
            name=row["customer_name"],
            billing_name=row["billing_name"],
            billing_address=row["billing_address"],
            billing_email=row["billing_email"],
            payment_terms_days=row["payment_terms_days"],
            currency=row["customer_currency"],
        )
    return OrdersToInvoice(orders, customers, invoiced, locked_elsewhere)


def _tax_breakdown(taxes: Sequence[TaxAmount]) -> str:
    """The ``tax_breakdown`` column as JSON text, e.g. ``[{"rate":"20.00","base":"100.00","tax":"20.00"}]``.

    Built by hand (json.dumps was 4 % of the worker): ``str()`` of a finite ``Decimal`` has only
    digits, a sign, a point and an exponent, so nothing needs escaping, in JSON or in COPY.
    """
    return (
        "["
        + ",".join(f'{{"rate":"{t.rate_percent}","base":"{t.base}","tax":"{t.tax}"}}' for t in taxes)
        + "]"
    )


class InvoiceRows:
    """A chunk's invoices as text-format COPY rows (see ``copy_text``), complete but for their
    numbers, which are allocated at commit under the counter's lock.

    Built while the chunk before commits, a slice of drafts at a time (``add``), so that the
    commit itself only numbers the rows and sends them.
    """

    def __init__(self, organization_id: UUID, year: int) -> None:
        self.organization_id = organization_id
        self.year = year
        #: Order id → the id its invoice will have.
        self.invoice_ids: dict[UUID, UUID] = {}
        #: Per invoice, in numbering order: its order, its row before the number and after the
        #: sequence, and the rows of its lines.
        self.order_ids: list[UUID] = []
        self.invoices: list[tuple[str, str]] = []
        self.lines: list[str] = []
        self._organization = str(organization_id)

    def __len__(self) -> int:
        return len(self.invoices)

    def add(self, drafts: Iterable[InvoiceDraft]) -> None:
        """Append the rows of ``drafts`` (issued in ``year``), numbered after those added before."""
        organization = self._organization
        for draft in drafts:
            if draft.issue_date.year != self.year:
                raise ValueError(f"a draft issued in {draft.issue_date.year} among invoices of {self.year}")
            invoice_id = uuid4()
            self.invoice_ids[draft.sales_order_id] = invoice_id
            self.order_ids.append(draft.sales_order_id)
            invoice = str(invoice_id)
            self.invoices.append(
                (
                    f"{invoice}\t{organization}\t",
                    f"\t{draft.sales_order_id}\t{draft.customer_id}\t{escape(draft.billing_name)}"
                    f"\t{escape(draft.billing_address)}\t{escape(draft.billing_email)}\t{draft.issue_date}"
                    f"\t{draft.due_date}\t{escape(draft.currency)}\t{draft.subtotal}\t{draft.tax_total}"
                    f"\t{draft.total}\t{_tax_breakdown(draft.taxes)}",
                )
            )
            self.lines.append(
                "".join(
                    f"{invoice}\t{line.position}\t{escape(line.description)}\t{line.quantity}"
                    f"\t{line.unit_price}\t{line.discount_percent}\t{line.tax_rate_percent}"
                    f"\t{line.net_amount}\t{organization}\n"
                    for line in draft.lines
                )
            )

    def halves(self) -> tuple[InvoiceRows, InvoiceRows]:
        """The first and the second half of the invoices, in numbering order."""
        middle = len(self) // 2
        return self._slice(slice(None, middle)), self._slice(slice(middle, None))

    def _slice(self, part: slice) -> InvoiceRows:
        rows = InvoiceRows(self.organization_id, self.year)
        rows.order_ids = self.order_ids[part]
        rows.invoices = self.invoices[part]
        rows.lines = self.lines[part]
        rows.invoice_ids = {order_id: self.invoice_ids[order_id] for order_id in rows.order_ids}
        return rows


async def insert_invoices(
    connection: asyncpg.Connection, rows: InvoiceRows, *, created_by: UUID, batch_job_id: UUID | None
) -> dict[UUID, UUID]:
    """Number the rows and write them (COPY into the staging tables, then one INSERT each);
    return order id → invoice id."""
    if not rows.invoices:
        return {}
    last = await connection.fetchval(ALLOCATE_NUMBERS, rows.organization_id, rows.year, len(rows))
    texts = copy_texts(rows, last, created_by=created_by, batch_job_id=batch_job_id)
    for table, text in texts.items():
        try:
            # A memoryview: asyncpg would take bytes for a file name.
            source = memoryview(text.encode())
            await connection.copy_to_table(
                STAGING_TABLES[table],
                source=source,
                columns=COLUMNS[table],
                format="text",
                schema_name="pg_temp",
            )
            await connection.execute(MOVES[table])
        except ROW_REFUSALS as error:
            raise RowsRefused(error) from error
    return rows.invoice_ids


def copy_texts(
    rows: InvoiceRows, last_number: int, *, created_by: UUID, batch_job_id: UUID | None
) -> dict[str, str]:
    """Table → the text-format COPY rows of the chunk's invoices (numbered up to
    ``last_number``) and of their lines, in ``COLUMNS`` order."""
    year = rows.year
    tail = f"\t{created_by}\t{optional(batch_job_id)}\n"
    numbered = "".join(
        f"{head}{format_invoice_number(year, sequence)}\t{year}\t{sequence}{body}{tail}"
        for sequence, (head, body) in enumerate(rows.invoices, start=last_number - len(rows) + 1)
    )
    return {"invoices": numbered, "invoice_lines": "".join(rows.lines)}


#: What PostgreSQL says about one row's values (as opposed to the connection or the server):
#: class 22 (data exceptions: a numeric overflow, an invalid value) and class 23 (a constraint).
ROW_REFUSALS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class RowsRefused(Exception):
    """PostgreSQL refused a row of the COPY (``cause``), not the statement that numbered them:
    one of the rows is at fault, and the others may well be written."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def refusal_message(error: asyncpg.PostgresError) -> str:
    """Safe to show: the kind of refusal and its SQLSTATE, never the row's values."""
    reason = database_reason(error, otherwise="a value it cannot store")
    return f"The database refused this order's invoice: {reason}."


async def wait_for_number_counter(
    connection: asyncpg.Connection, rows: InvoiceRows, *, patience: float
) -> float:
    """Take the organization's number counter for the rows' year (held until the transaction
    ends); the seconds spent waiting for it (other transactions of the organization held it).

    Waiting here is the organization's chunks queueing one behind the other, not a lock held
    by something stuck, so it may last up to ``patience`` seconds instead of the session's
    ``lock_timeout``. A counter not created yet is not locked here: the allocation creates it,
    and a second chunk of the organization waits there instead (once a year)."""
    if not rows.invoices:
        return 0.0
    started = time.perf_counter()
    await connection.execute(f"SET LOCAL lock_timeout = '{max(1, round(patience * 1000))}ms'")
    await connection.execute(LOCK_NUMBER_COUNTER, rows.organization_id, rows.year)
    await connection.execute("SET LOCAL lock_timeout TO DEFAULT")
    return time.perf_counter() - started


async def insert_invoices_isolating(
    connection: asyncpg.Connection, rows: InvoiceRows, *, created_by: UUID, batch_job_id: UUID | None
) -> tuple[dict[UUID, UUID], dict[UUID, str]]:
    """Like :func:`insert_invoices`, but a row PostgreSQL refuses fails alone: the rows are
    split in halves until the refused ones are found, each attempt under a savepoint (its
    rollback also returns its block of numbers, so numbers stay gapless). Returns order id →
    invoice id for the rows written, and order id → message for those refused."""
    try:
        async with connection.transaction():
            return await insert_invoices(
                connection, rows, created_by=created_by, batch_job_id=batch_job_id
            ), {}
    except RowsRefused as refusal:
        if len(rows) == 1:
            return {}, {rows.order_ids[0]: refusal_message(refusal.cause)}
    created: dict[UUID, UUID] = {}
    refused: dict[UUID, str] = {}
    for half in rows.halves():
        written, rejected = await insert_invoices_isolating(
            connection, half, created_by=created_by, batch_job_id=batch_job_id
        )
        created |= written
        refused |= rejected
    return created, refused


async def get_invoice(connection: asyncpg.Connection, organization_id: UUID, invoice_id: UUID) -> Invoice:
    row = await connection.fetchrow(
        "SELECT * FROM invoices WHERE id = $1 AND organization_id = $2", invoice_id, organization_id
    )
    if row is None:
        raise NotFound.invoice()
    lines = await connection.fetch(
        "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", invoice_id
    )
    return Invoice.from_row(row, lines)


async def list_invoices(
    connection: asyncpg.Connection,
    organization_id: UUID,
    *,
    job_id: UUID | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[Invoice]:
    """Newest first by (created_at, number); filtered to one job when ``job_id`` is given.

    A chunk's invoices share one ``created_at``; the number orders them within it.
    """
    conditions = ["organization_id = $1"]
    values: list[Any] = [organization_id]
    if job_id is not None:
        values.append(job_id)
        conditions.append(f"batch_job_id = ${len(values)}")
    if after is not None:
        conditions.append(after_key(("created_at", "number"), len(values) + 1, descending=True))
        values += after
    values.append(limit)
    query = f"""
        SELECT * FROM invoices WHERE {" AND ".join(conditions)}
        ORDER BY created_at DESC, number DESC LIMIT ${len(values)}
    """
    return [Invoice.from_row(row) for row in await connection.fetch(query, *values)]
