"""Every statement that changes a job's or an item's status makes only the moves the state
machine allows (invoicing/domain/job_states.py), and every such statement is listed.

The statements are read, not run: each UPDATE of ``batch_job_queue`` or ``batch_job_items``
names the statuses it moves from (its WHERE clause, or the statements that selected the row
earlier in its transaction) and the statuses it sets (a literal, a CASE keeping the status
otherwise, or its parameters for the items' outcomes)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from invoicing.domain.job_states import (
    ITEM_TRANSITIONS,
    JOB_TRANSITIONS,
    ItemStatus,
    JobStatus,
    Operation,
    Transition,
    allows,
)
from invoicing.jobs.transitions import STATUS_CHANGES, StatusChange

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("invoicing", "server", "worker", "cli", "devtools")
TABLES = {"batch_job_queue": JOB_TRANSITIONS, "batch_job_items": ITEM_TRANSITIONS}
STATUSES = {"batch_job_queue": JobStatus, "batch_job_items": ItemStatus}

_WRITE = re.compile(r"\b(UPDATE|INSERT INTO)\s+(?:public\.)?(batch_job_queue|batch_job_items)\b", re.I)
_SET_LITERAL = re.compile(r"\bSET\s+status\s*=\s*'(\w+)'|,\s*status\s*=\s*'(\w+)'", re.I)
_SET_CASE = re.compile(r"\bstatus\s*=\s*CASE\b(.*?)\bEND\b", re.I | re.S)
_SET_PARAMETER = re.compile(r"\bstatus\s*=\s*found\.status\b", re.I)
_WHERE = re.compile(r"\bWHERE\b(.*)", re.I | re.S)
_FROM_ONE = re.compile(r"\bstatus\s*=\s*'(\w+)'", re.I)
_FROM_MANY = re.compile(r"\bstatus\s+IN\s*\(([^)]*)\)", re.I)


@dataclass(frozen=True)
class Write:
    """One UPDATE or INSERT of a status table inside a statement."""

    table: str
    verb: str
    text: str


def writes_of(sql: str) -> list[Write]:
    """The statement cut at each write of a status table (a CTE's UPDATE, then the main one)."""
    matches = list(_WRITE.finditer(sql))
    if not matches:
        return []
    ends = [match.start() for match in matches[1:]] + [len(sql)]
    return [
        Write(match.group(2).lower(), match.group(1).upper(), sql[match.start() : end])
        for match, end in zip(matches, ends, strict=True)
    ]


def targets_of(write: Write, change: StatusChange) -> set[str | None]:
    """The statuses a write sets; None stands for "left as it was"."""
    if write.verb == "INSERT INTO":
        assert not re.search(r"\(\s*[^)]*\bstatus\b[^)]*\)\s*(VALUES|SELECT)", write.text, re.I), (
            f"{change.name} inserts a status: new rows start in the column's default (pending)"
        )
        return {"pending"}
    set_clause = _WHERE.split(write.text)[0]
    found: set[str | None] = {a or b for a, b in _SET_LITERAL.findall(set_clause)}
    for body in _SET_CASE.findall(set_clause):
        found |= set(re.findall(r"THEN\s+'(\w+)'", body, re.I))
        if re.search(r"ELSE\s+status\b", body, re.I):
            found.add(None)
    if _SET_PARAMETER.search(set_clause):
        assert change.item_targets, f"{change.name} sets statuses from its parameters: declare which"
        found |= {status.value for status in change.item_targets}
    return found


def sources_in(sql: str) -> set[str]:
    where = _WHERE.search(sql)
    if where is None:
        return set()
    sources = set(_FROM_ONE.findall(where.group(1)))
    for listed in _FROM_MANY.findall(where.group(1)):
        sources |= set(re.findall(r"'(\w+)'", listed))
    return sources


def sources_of(write: Write, change: StatusChange) -> set[str | None]:
    """The statuses a write can find its rows in (None: it creates them)."""
    if write.verb == "INSERT INTO":
        return {None}
    own = sources_in(write.text)
    if own:
        return set(own)
    unguarded = (
        f"{change.name} changes {write.table} rows whatever their status: name the statuses in "
        "its WHERE clause (or, for the job row, the statements that selected it first)"
    )
    assert write.table == "batch_job_queue", unguarded
    assert change.after, unguarded
    earlier: set[str | None] = set()
    for statement in change.after:
        earlier |= sources_in(statement)
    assert earlier, f"the statements {change.name} runs after do not select the job by status"
    return earlier


def moves_of(change: StatusChange) -> list[tuple[str, str | None, str]]:
    """Every (table, source, target) the statement can make, a status left alone excepted."""
    moves = []
    for write in writes_of(change.sql):
        targets = targets_of(write, change)
        assert targets, f"{change.name} writes {write.table} without setting a status"
        for source in sources_of(write, change):
            for target in targets - {None}:
                assert target is not None
                moves.append((write.table, source, target))
    return moves


@pytest.mark.parametrize("change", STATUS_CHANGES, ids=lambda change: change.name)
def test_each_statement_makes_only_allowed_transitions(change: StatusChange) -> None:
    for table, source, target in moves_of(change):
        status = STATUSES[table]
        allowed = allows(
            TABLES[table],  # type: ignore[arg-type]
            None if source is None else status(source),
            status(target),
            change.operation,
        )
        assert allowed, f"{change.name}: {table} {source} → {target} is not a {change.operation} transition"


def test_every_transition_of_the_tables_is_made_by_some_statement() -> None:
    made = {
        (table, source, target, change.operation)
        for change in STATUS_CHANGES
        for table, source, target in moves_of(change)
    }
    for table, transitions in TABLES.items():
        for transition in transitions:
            key = (table, _value(transition.source), transition.target.value, transition.operation)
            assert key in made, f"no statement makes {key}"


def _value(status: JobStatus | ItemStatus | None) -> str | None:
    return None if status is None else status.value


def test_an_illegal_transition_fails_the_check() -> None:
    # A statement reopening finished jobs: the check above must refuse it.
    reopen = StatusChange(
        "REOPEN",
        "UPDATE batch_job_queue SET status = 'pending' WHERE id = $1 AND status = 'completed'",
        Operation.claim,
    )
    moves = moves_of(reopen)
    assert moves == [("batch_job_queue", "completed", "pending")]
    assert not allows(JOB_TRANSITIONS, JobStatus.completed, JobStatus.pending, Operation.claim)
    unguarded = StatusChange(
        "UNGUARDED", "UPDATE batch_job_items SET status = 'failed' WHERE job_id = $1", Operation.give_up
    )
    with pytest.raises(AssertionError, match="whatever their status"):
        moves_of(unguarded)


def _string_constants(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
            found.append((f"{path.relative_to(ROOT)}:{node.lineno}", str(text)))
    return found


def test_every_statement_that_changes_a_status_is_listed_and_lives_in_the_jobs_package() -> None:
    listed = {_normalized(change.sql) for change in STATUS_CHANGES}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for where, text in _string_constants(path):
                changes_status = any(
                    write.verb == "INSERT INTO"
                    or re.search(r"\bstatus\s*=", _WHERE.split(write.text)[0], re.I)
                    for write in writes_of(text)
                )
                if not changes_status:
                    continue
                assert where.startswith("invoicing/jobs/"), f"{where} changes a status outside invoicing/jobs"
                assert _normalized(text) in listed, f"{where} changes a status but is not in STATUS_CHANGES"


def _normalized(sql: str) -> str:
    # f-strings are read without their substitutions (the column list): compare the rest.
    return re.sub(r"RETURNING.*", "", " ".join(sql.split()), flags=re.S)


def test_the_tables_hold_one_creation_each_and_no_way_out_of_a_final_status() -> None:
    for transitions in (JOB_TRANSITIONS, ITEM_TRANSITIONS):
        creations = [t for t in transitions if t.source is None]
        assert len(creations) == 1
        assert creations[0].target.value == "pending"
    finished = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled}
    assert not [t for t in JOB_TRANSITIONS if t.source in finished]
    assert not [t for t in ITEM_TRANSITIONS if t.source not in (None, ItemStatus.pending)]
    assert all(isinstance(t, Transition) for t in JOB_TRANSITIONS + ITEM_TRANSITIONS)
