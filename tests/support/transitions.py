"""The state machine enforced in the tests' database: every status change any test makes, the
product's statements and the tests' own set-ups alike, must be a transition of the tables in
invoicing/domain/job_states.py (of any operation: which statement performs which operation is
checked by tests/unit/test_job_transitions.py). An illegal one raises, so the test fails at the
statement that made it."""

from __future__ import annotations

import asyncpg

from invoicing.domain.job_states import ITEM_TRANSITIONS, JOB_TRANSITIONS, ItemStatus, JobStatus, Transition

_CHECK = """
CREATE OR REPLACE FUNCTION test_check_{table}_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status::text <> ALL ({created}) THEN
            RAISE EXCEPTION 'illegal {table} transition: created as %', NEW.status;
        END IF;
    ELSIF OLD.status::text || '>' || NEW.status::text <> ALL ({moves}) THEN
        RAISE EXCEPTION 'illegal {table} transition: % > %', OLD.status, NEW.status;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS test_check_transition ON {table};
CREATE TRIGGER test_check_transition
BEFORE INSERT OR UPDATE OF status ON {table}
FOR EACH ROW EXECUTE FUNCTION test_check_{table}_transition();
"""


def _array(values: set[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{value}'" for value in sorted(values)) + "]::text[]"


def _check(
    table: str, transitions: tuple[Transition[JobStatus], ...] | tuple[Transition[ItemStatus], ...]
) -> str:
    created = {t.target.value for t in transitions if t.source is None}
    moves = {f"{t.source.value}>{t.target.value}" for t in transitions if t.source is not None}
    # Staying in a status (a lease renewed, a re-claim) is no transition.
    moves |= {f"{t.target.value}>{t.target.value}" for t in transitions}
    return _CHECK.format(table=table, created=_array(created), moves=_array(moves))


async def enforce_transitions(owner: asyncpg.Connection) -> None:
    """Install the checks (as the tables' owner) in a freshly migrated database."""
    await owner.execute(_check("batch_job_queue", JOB_TRANSITIONS))
    await owner.execute(_check("batch_job_items", ITEM_TRANSITIONS))
