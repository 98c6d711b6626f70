"""A job's JSON says whether it is finished, so that no client copies the list of final statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from invoicing.domain.job_states import JOB_TYPE_BULK_INVOICE, JobStatus, Priority
from invoicing.jobs.events import event_for
from invoicing.jobs.views import BatchJob

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
FINAL = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled}


def job_in(status: JobStatus, priority: Priority = Priority.normal) -> BatchJob:
    finished = status in FINAL
    return BatchJob(
        id=uuid4(),
        organization_id=uuid4(),
        job_type=JOB_TYPE_BULK_INVOICE,
        status=status,
        total_items=10,
        processed_items=10 if finished else 4,
        successful_items=10 if finished else 4,
        failed_items=0,
        cancelled_items=0,
        payload={},
        errors=[],
        created_by=uuid4(),
        created_at=NOW,
        started_at=None if status is JobStatus.pending else NOW,
        completed_at=NOW if finished else None,
        updated_at=NOW,
        cancel_requested=False,
        attempts=1,
        enqueue_generation=1,
        progress_seq=7,
        retry_of=None,
        priority=priority,
        created_by_name="Ada",
        retried_as=None,
        active_workers=0 if finished or status is JobStatus.pending else 1,
    )


@pytest.mark.parametrize("status", list(JobStatus))
def test_a_job_is_finished_exactly_when_its_status_is_final(status: JobStatus) -> None:
    assert job_in(status).to_json(now=NOW)["finished"] is (status in FINAL)


@pytest.mark.parametrize("status", sorted(set(JobStatus) - FINAL))
def test_a_progress_event_says_its_job_is_not_finished(status: JobStatus) -> None:
    event = event_for(job_in(status))
    assert (event["type"], event.get("finished")) == ("progress", False)


@pytest.mark.parametrize("priority", list(Priority))
def test_a_progress_event_carries_the_priority_an_admin_may_have_changed(priority: Priority) -> None:
    event = event_for(job_in(JobStatus.processing, priority))
    assert (event["type"], event.get("priority")) == ("progress", priority.value)


@pytest.mark.parametrize("status", sorted(FINAL))
def test_the_finished_event_carries_the_finished_job(status: JobStatus) -> None:
    event = event_for(job_in(status))
    assert event["type"] == "finished"
    assert event.get("job", {})["finished"] is True
