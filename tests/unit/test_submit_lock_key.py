"""The organization's advisory lock key for submits: PostgreSQL's two-key form takes int4s."""

from __future__ import annotations

from uuid import UUID

import pytest

from invoicing.jobs.active_jobs import submit_lock_key

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


@pytest.mark.parametrize(
    "organization_id",
    [
        UUID("00000000-0000-4000-8000-000000000000"),
        UUID("7fffffff-ffff-4fff-bfff-ffffffffffff"),
        UUID("80000000-0000-4000-8000-000000000000"),
        UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"),
    ],
)
def test_every_organization_id_gives_a_key_in_the_int4_range(organization_id: UUID) -> None:
    assert INT4_MIN <= submit_lock_key(organization_id) <= INT4_MAX


def test_an_organization_always_gets_the_same_key() -> None:
    organization_id = UUID("3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
    assert submit_lock_key(organization_id) == submit_lock_key(UUID(str(organization_id))) == 0x3F2A9C1E
