"""Every statement that changes a job's or an item's status makes only the moves the state
machine allows (invoicing/domain/job_states.py), and every such statement is listed in
invoicing/jobs/transitions.py.

The statements are read with PostgreSQL's own parser (tests/support/status_sql.py), not run:
each write names the statuses it moves from in its WHERE clause and sets literal statuses, so
the moves it can make are known without a database. The test database's trigger
(tests/support/transitions.py) checks the moves actually made while the other tests run."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from invoicing.domain.job_states import (
    ITEM_TRANSITIONS,
    JOB_TRANSITIONS,
    ItemStatus,
    JobStatus,
    Operation,
    allows,
)
from invoicing.jobs.transitions import STATUS_CHANGES, StatusChange
from tests.support.status_sql import Unreadable, mentions_a_write, parses, status_writes

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("invoicing", "server", "worker", "cli", "devtools")


def moves_of(change: StatusChange) -> set[tuple[str, str | None, str]]:
    """Every (table, from, to) the statement can make; keeping a status is no move."""
    writes = status_writes(change.sql, tuple(status.value for status in change.item_targets))
    assert writes, f"{change.name} changes no status"
    moves = set()
    for write in writes:
        assert write.sources is not None, (
            f"{change.name} changes {write.table} rows whatever their status: name the statuses it "
            "moves from in its WHERE clause"
        )
        for source in write.sources:
            for target in write.targets - {None, source}:
                assert target is not None
                moves.add((write.table, source, target))
    return moves


def is_allowed(table: str, source: str | None, target: str, operation: Operation) -> bool:
    if table == "batch_job_queue":
        return allows(
            JOB_TRANSITIONS, None if source is None else JobStatus(source), JobStatus(target), operation
        )
    return allows(
        ITEM_TRANSITIONS, None if source is None else ItemStatus(source), ItemStatus(target), operation
    )


@pytest.mark.parametrize("change", STATUS_CHANGES, ids=lambda change: change.name)
def test_each_statement_makes_only_transitions_of_its_operation(change: StatusChange) -> None:
    check(change)


def test_every_transition_of_the_tables_is_made_by_some_statement() -> None:
    made = {(move, change.operation) for change in STATUS_CHANGES for move in moves_of(change)}
    tables = {"batch_job_queue": JOB_TRANSITIONS, "batch_job_items": ITEM_TRANSITIONS}
    for table, transitions in tables.items():
        for transition in transitions:
            source = None if transition.source is None else transition.source.value
            move = (table, source, transition.target.value)
            assert (move, transition.operation) in made, (
                f"no statement makes {move} by {transition.operation}"
            )


def test_no_way_out_of_a_final_status_and_one_way_in() -> None:
    for transitions in (JOB_TRANSITIONS, ITEM_TRANSITIONS):
        assert [t.target.value for t in transitions if t.source is None] == ["pending"]
    finished = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled}
    assert not [t for t in JOB_TRANSITIONS if t.source in finished]
    assert not [t for t in ITEM_TRANSITIONS if t.source not in (None, ItemStatus.pending)]


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        # Reopening a finished job: read correctly, then refused by the table.
        ("UPDATE batch_job_queue SET status = 'pending' WHERE id = $1 AND status = 'completed'", "not a"),
        ("UPDATE ONLY public.\"batch_job_queue\" SET status = 'pending' WHERE status = 'completed'", "not a"),
        (
            "UPDATE batch_job_queue SET status = CASE WHEN $2 THEN 'pending' ELSE status END "
            "WHERE status IN ('cancelled', 'processing')",
            "not a",
        ),
        # Conditions that do not hold the written row's status down.
        ("UPDATE batch_job_queue SET status = 'cancelled' WHERE id = $1", "whatever their status"),
        (
            "UPDATE batch_job_queue SET status = 'cancelled' WHERE status = 'pending' OR cancel_requested",
            "whatever their status",
        ),
        (
            "UPDATE batch_job_queue j SET status = 'cancelled' WHERE id = $1 AND NOT EXISTS "
            "(SELECT 1 FROM batch_job_items i WHERE i.job_id = j.id AND i.status = 'pending')",
            "whatever their status",
        ),
        (
            "UPDATE batch_job_queue SET updated_at = (SELECT now() WHERE status = 'pending'), "
            "status = 'cancelled' WHERE id = $1",
            "whatever their status",
        ),
        (
            "WITH gone AS (UPDATE batch_job_items SET status = 'failed' WHERE job_id = $1 RETURNING 1) "
            "SELECT count(*) FROM gone",
            "whatever their status",
        ),
        # Forms the reader refuses rather than guesses.
        (
            "UPDATE batch_job_queue SET (status, updated_at) = ('pending', now()) WHERE status = 'failed'",
            "multi-column",
        ),
        ("UPDATE batch_job_queue SET status = $2 WHERE status = 'processing'", "a status set from"),
        (
            "UPDATE batch_job_queue SET status = CASE WHEN $2 THEN 'cancelled' ELSE $3 END "
            "WHERE status = 'processing'",
            "a status set from",
        ),
        (
            "INSERT INTO batch_job_items (job_id, position, order_id, status) VALUES ($1, 1, $2, 'failed')",
            "naming the status",
        ),
        (
            "INSERT INTO batch_job_queue (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET status = 'pending'",
            "upsert",
        ),
    ],
)
def test_illegal_or_unreadable_status_changes_fail_the_check(sql: str, refusal: str) -> None:
    with pytest.raises(AssertionError, match=refusal):
        check(StatusChange("CANDIDATE", sql, Operation.cancel))


def check(change: StatusChange) -> None:
    for table, source, target in moves_of(change):
        assert is_allowed(table, source, target, change.operation), (
            f"{change.name}: {table} {source} → {target} is not a {change.operation} transition"
        )


def _product_modules() -> list[str]:
    names = []
    for package in PRODUCT:
        module = importlib.import_module(package)
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, f"{package}.")]
    # Running the command line is not importing it.
    return [name for name in names if not name.endswith("__main__")]


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list | set | frozenset):
        return [text for item in value for text in _strings_in(item)]
    return []


def test_every_status_changing_statement_of_the_product_is_listed_and_in_the_jobs_package() -> None:
    # Module-level SQL as the code runs it: f-strings filled in, concatenations joined.
    listed = {change.sql for change in STATUS_CHANGES}
    for name in _product_modules():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if not (isinstance(value, str) and mentions_a_write(value) and parses(value)):
                continue
            if not status_writes(value, ("succeeded",)):
                continue
            assert name.startswith("invoicing.jobs."), (
                f"{name}.{attribute} changes a status outside invoicing/jobs"
            )
            assert value in listed, f"{name}.{attribute} changes a status but is not in STATUS_CHANGES"


def test_no_sql_built_at_run_time_changes_a_status() -> None:
    # Module-level SQL is checked above as it runs; any other string (SQL written inside a
    # function, an f-string with its values as `*`) must leave the statuses alone.
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, text in _strings_outside_module_assignments(ast.parse(path.read_text())):
                assert not mentions_a_write(text) or _leaves_statuses_alone(text), (
                    f"{path.relative_to(ROOT)}:{line} changes a status outside the listed statements"
                )


def _strings_outside_module_assignments(tree: ast.Module) -> list[tuple[int, str]]:
    skipped = {
        id(node)
        for statement in tree.body
        if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None
        for node in ast.walk(statement.value)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.JoinedStr):
            skipped |= {id(part) for part in node.values}
            text = "".join(part.value if isinstance(part, ast.Constant) else "*" for part in node.values)
            found.append((node.lineno, str(text)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def _leaves_statuses_alone(sql: str) -> bool:
    try:
        return parses(sql) and not status_writes(sql, ("succeeded",))
    except Unreadable:
        return False


def test_no_migration_changes_a_status() -> None:
    # Migrations run once, outside the state machine: one that moved statuses would need its own
    # review. (Function bodies are text to the parser: the pattern reads them too.)
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        for statement in path.read_text().split(";"):
            if mentions_a_write(statement):
                assert not _sets_a_status(statement), f"{path.name}: {statement.strip()[:120]}"


def _sets_a_status(statement: str) -> bool:
    lowered = " ".join(statement.lower().split())
    return " status =" in lowered or "status," in lowered.split(" set ", 1)[-1][:200]
