"""Reading SQL for the status changes it makes, with PostgreSQL's own parser (pglast).

A statement's write of ``batch_job_queue`` or ``batch_job_items`` (the main statement or a
data-modifying CTE, however the table is spelled: ``ONLY``, quoted, schema-qualified) is read
as the statuses it moves rows from, what its WHERE clause allows of the written table's own
``status`` (AND narrows, OR widens, anything else allows everything), and the statuses it
sets (a literal, the status kept, a CASE of those, or declared parameters). Any other way of
setting a status (a multi-column SET, an expression, an INSERT naming the status, an upsert
updating it) is refused as unreadable rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, OnConflictAction

STATUS_TABLES = frozenset({"batch_job_queue", "batch_job_items"})
#: The status a row is created in: the column's default (migrations/0001_core.sql).
CREATED_AS = "pending"


class Unreadable(AssertionError):
    """A status change written in a form this reader does not check."""


@dataclass(frozen=True)
class StatusWrite:
    """What one write of a status table can do: from ``sources`` (None: creates the row;
    the set is None when the WHERE clause does not restrict the status) to ``targets``
    (None in it: the status left as it was)."""

    table: str
    sources: frozenset[str | None] | None
    targets: frozenset[str | None]


def status_writes(sql: str, parameter_targets: tuple[str, ...] = ()) -> list[StatusWrite]:
    """Every status change the statement can make (empty if it changes none)."""
    writes = []
    for statement in parse_sql(sql):
        for node in _walk(statement):
            if isinstance(node, ast.UpdateStmt) and _is_status_table(node.relation):
                write = _update(node, parameter_targets)
                if write is not None:
                    writes.append(write)
            elif isinstance(node, ast.InsertStmt) and _is_status_table(node.relation):
                writes.append(_insert(node))
    return writes


def parses(sql: str) -> bool:
    try:
        parse_sql(sql)
    except Exception:  # pglast.parser.ParseError and friends: not SQL
        return False
    return True


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)


def _is_status_table(relation: ast.RangeVar) -> bool:
    return relation.relname in STATUS_TABLES and relation.schemaname in (None, "public")


def _names(relation: ast.RangeVar) -> set[str | None]:
    """How the statement may qualify the table's columns: not at all, by name or by alias."""
    names: set[str | None] = {None, relation.relname}
    if relation.alias is not None:
        names = {None, relation.alias.aliasname}
    return names


def _update(node: ast.UpdateStmt, parameter_targets: tuple[str, ...]) -> StatusWrite | None:
    own = _names(node.relation)
    targets: set[str | None] = set()
    for target in node.targetList:
        if isinstance(target.val, ast.MultiAssignRef) and target.name == "status":
            raise Unreadable(f"a multi-column SET of {node.relation.relname}.status")
        if target.name == "status":
            targets |= _set_to(target.val, own, parameter_targets)
    if not targets:
        return None
    return StatusWrite(node.relation.relname, _allowed(node.whereClause, own), frozenset(targets))


def _insert(node: ast.InsertStmt) -> StatusWrite:
    columns = {column.name for column in node.cols or ()}
    if "status" in columns:
        raise Unreadable(f"an INSERT into {node.relation.relname} naming the status")
    conflict = node.onConflictClause
    if conflict is not None and conflict.action == OnConflictAction.ONCONFLICT_UPDATE:
        raise Unreadable(f"an upsert of {node.relation.relname}")
    return StatusWrite(node.relation.relname, frozenset({None}), frozenset({CREATED_AS}))


def _set_to(value: Any, own: set[str | None], parameter_targets: tuple[str, ...]) -> set[str | None]:
    if isinstance(value, ast.TypeCast):
        return _set_to(value.arg, own, parameter_targets)
    literal = _literal(value)
    if literal is not None:
        return {literal}
    if _is_own_status(value, own):
        return {None}
    if isinstance(value, ast.CaseExpr):
        if value.defresult is None:
            raise Unreadable("a CASE without ELSE sets the status to NULL")
        results = [when.result for when in value.args] + [value.defresult]
        return set().union(*(_set_to(result, own, parameter_targets) for result in results))
    if isinstance(value, ast.ColumnRef) and parameter_targets:
        return set(parameter_targets)
    raise Unreadable(
        f"a status set from {type(value).__name__}: use a literal, a CASE of literals, or declare it"
    )


def _allowed(where: Any, own: set[str | None]) -> frozenset[str] | None:
    """The statuses of the written row the condition lets through (None: any)."""
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.AND_EXPR:
        narrowed: frozenset[str] | None = None
        for term in where.args:
            allowed = _allowed(term, own)
            if allowed is not None:
                narrowed = allowed if narrowed is None else narrowed & allowed
        return narrowed
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.OR_EXPR:
        branches = [_allowed(term, own) for term in where.args]
        if any(branch is None for branch in branches):
            return None
        return frozenset().union(*(branch for branch in branches if branch is not None))
    if isinstance(where, ast.A_Expr) and _operator(where) == "=":
        return _compared(where, own)
    return None


def _compared(where: ast.A_Expr, own: set[str | None]) -> frozenset[str] | None:
    if not _is_own_status(where.lexpr, own):
        return None
    if where.kind == A_Expr_Kind.AEXPR_OP:
        literal = _literal(where.rexpr)
        return None if literal is None else frozenset({literal})
    if where.kind == A_Expr_Kind.AEXPR_IN:
        literals = [_literal(item) for item in where.rexpr]
        return None if None in literals else frozenset(str(item) for item in literals)
    return None


def _operator(expression: ast.A_Expr) -> str | None:
    names = expression.name or ()
    return names[-1].sval if names else None


def _literal(value: Any) -> str | None:
    if isinstance(value, ast.TypeCast):
        return _literal(value.arg)
    if isinstance(value, ast.A_Const) and isinstance(value.val, ast.String):
        return str(value.val.sval)
    return None


def _is_own_status(value: Any, own: set[str | None]) -> bool:
    if not isinstance(value, ast.ColumnRef):
        return False
    fields = [getattr(field, "sval", None) for field in value.fields]
    if fields[-1] != "status":
        return False
    return (fields[-2] if len(fields) > 1 else None) in own


_WRITE_OF_A_STATUS_TABLE = re.compile(
    r'\b(UPDATE|INSERT\s+INTO)\s+(ONLY\s+)?("?public"?\s*\.\s*)?"?batch_job_(queue|items)\b', re.I
)


def mentions_a_write(text: str) -> bool:
    """Whether a piece of text (a string constant, part of one, a migration) writes a status table."""
    return _WRITE_OF_A_STATUS_TABLE.search(text) is not None
