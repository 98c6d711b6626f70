"""The emails of notices: what a batch's starter reads when it ends, and what admins read when a
webhook endpoint was disabled. Jobs are the JSON ``BatchJob.to_json()`` writes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from invoicing.domain.job_states import JOB_TYPE_BULK_INVOICE, JobStatus, Priority
from invoicing.domain.notice_emails import (
    EmailContent,
    FailureGroup,
    duration_text,
    job_email,
    webhook_disabled_email,
)
from invoicing.domain.retries import JOB_FAILED, WORKER_CRASHED
from invoicing.jobs.views import BatchJob

SUBMITTED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
JOB_URL = "https://invoicing.example.com/jobs/5f0c"
HOSTILE = "<script>alert('x')</script>"


def ended_job(
    status: JobStatus,
    *,
    total: int,
    created: int,
    failed: int = 0,
    cancelled: int = 0,
    errors: list[dict[str, Any]] | None = None,
    took: timedelta | None = timedelta(minutes=2, seconds=5),
) -> dict[str, Any]:
    """A job as the API writes it; ``took=None``: it never started."""
    started = None if took is None else SUBMITTED + timedelta(seconds=3)
    completed = SUBMITTED if started is None or took is None else started + took
    return BatchJob(
        id=uuid4(),
        organization_id=uuid4(),
        job_type=JOB_TYPE_BULK_INVOICE,
        status=status,
        total_items=total,
        processed_items=created + failed,
        successful_items=created,
        failed_items=failed,
        cancelled_items=cancelled,
        payload={},
        errors=errors or [],
        created_by=uuid4(),
        created_at=SUBMITTED,
        started_at=started,
        completed_at=completed,
        updated_at=SUBMITTED,
        cancel_requested=status is JobStatus.cancelled,
        attempts=1,
        enqueue_generation=1,
        progress_seq=9,
        retry_of=None,
        priority=Priority.normal,
        created_by_name="Ana Lima",
        retried_as=None,
        active_workers=0,
    ).to_json()


def group(code: str, count: int, *numbers: str, message: str = "The customer is blocked.") -> FailureGroup:
    return FailureGroup(code=code, message=message, count=count, order_numbers=numbers)


def email(
    job: dict[str, Any], failures: list[FailureGroup] | None = None, organization: str = "Acme Ltd"
) -> EmailContent:
    return job_email(job, failures or [], job_url=JOB_URL, organization_name=organization)


def prose(text: str) -> str:
    """The text part's paragraphs as one line each: what it says, whatever its wrapping."""
    return " ".join(text.split())


def numbers(count: int) -> tuple[str, ...]:
    return tuple(f"SO-{n:06d}" for n in range(1, count + 1))


# -- Subjects ---------------------------------------------------------------------------------


def test_a_completed_job_with_failures_counts_both_with_thousands_separators() -> None:
    job = ended_job(JobStatus.completed, total=1000, created=998, failed=2)
    subject = email(job, [group("customer_blocked", 2, "SO-000001", "SO-000002")]).subject
    assert subject == "1,000 orders: 998 invoices created, 2 failed"


def test_a_completed_job_without_failures_says_only_what_was_created() -> None:
    job = ended_job(JobStatus.completed, total=1000, created=1000)
    assert email(job).subject == "1,000 orders: 1,000 invoices created"


@pytest.mark.parametrize(
    ("created", "failed", "subject"),
    [
        (1, 0, "1 order: 1 invoice created"),
        (0, 1, "1 order: 0 invoices created, 1 failed"),
    ],
)
def test_one_order_is_spoken_of_in_the_singular(created: int, failed: int, subject: str) -> None:
    job = ended_job(JobStatus.completed, total=1, created=created, failed=failed)
    assert email(job, [group("customer_blocked", 1, "SO-000001")] if failed else []).subject == subject


def test_a_cancelled_job_says_so_and_how_many_orders_were_not_processed() -> None:
    job = ended_job(JobStatus.cancelled, total=1000, created=400, cancelled=600)
    assert email(job).subject == "Cancelled: 1,000 orders: 400 invoices created, 600 not processed"


def test_a_job_cancelled_before_it_started_invoiced_nothing() -> None:
    job = ended_job(JobStatus.cancelled, total=2, created=0, cancelled=2, took=None)
    assert email(job).subject == "Cancelled: 2 orders: 0 invoices created, 2 not processed"


def test_a_failed_job_counts_the_orders_it_left_behind_as_not_processed() -> None:
    # Giving up fails every pending item with JOB_FAILED: those orders were never tried.
    job = ended_job(JobStatus.failed, total=1000, created=120, failed=880)
    failures = [group(JOB_FAILED, 880, "SO-000121", message="Not processed: the job stopped.")]
    assert email(job, failures).subject == "Failed: 1,000 orders: 120 invoices created, 880 not processed"


def test_a_failed_job_tells_refused_orders_apart_from_orders_never_tried() -> None:
    job = ended_job(JobStatus.failed, total=1000, created=120, failed=880)
    failures = [group("customer_blocked", 5, "SO-000001"), group(JOB_FAILED, 875, "SO-000121")]
    assert email(job, failures).subject == (
        "Failed: 1,000 orders: 120 invoices created, 5 failed, 875 not processed"
    )


def test_only_a_job_that_ended_has_an_email() -> None:
    job = ended_job(JobStatus.processing, total=10, created=4)
    with pytest.raises(ValueError, match="has not ended"):
        email(job)


# -- The body -----------------------------------------------------------------------------------


def test_the_body_gives_the_counts_the_organization_and_the_time_taken() -> None:
    job = ended_job(JobStatus.cancelled, total=1000, created=398, failed=2, cancelled=600)
    content = email(job, [group("customer_blocked", 2, "SO-000001", "SO-000002")])
    facts = dict(re.findall(r"^  ([A-Za-z ]+): +(.+)$", content.text, re.MULTILINE))
    assert facts == {
        "Orders": "1,000",
        "Invoices created": "398",
        "Failed": "2",
        "Not processed": "600",
        "Submitted": "2026-03-01 09:00 UTC",
        "Time taken": "2 min 5 s",
    }
    assert "Acme Ltd" in content.text
    assert "was cancelled" in content.text
    for label, value in facts.items():
        assert f">{label}</th>" in content.html
        assert f">{value}</td>" in content.html


def test_a_cancelled_or_failed_job_says_the_invoices_it_created_are_kept() -> None:
    cancelled = email(ended_job(JobStatus.cancelled, total=10, created=1, cancelled=9))
    assert "was cancelled. The invoice created before it stopped is kept." in prose(cancelled.text)
    failed = email(
        ended_job(JobStatus.failed, total=2000, created=1200, failed=800), [group(JOB_FAILED, 800)]
    )
    assert "before it finished. The 1,200 invoices created before it stopped are kept." in prose(failed.text)
    never_started = email(ended_job(JobStatus.cancelled, total=2, created=0, cancelled=2, took=None))
    assert "kept" not in never_started.text


def test_a_completed_job_does_not_mention_orders_not_processed() -> None:
    content = email(ended_job(JobStatus.completed, total=3, created=3))
    assert "Not processed" not in content.text
    assert "retried" not in content.text


def test_a_job_that_never_started_says_so_instead_of_a_duration() -> None:
    content = email(ended_job(JobStatus.cancelled, total=2, created=0, cancelled=2, took=None))
    assert re.search(r"^  Time taken: +Did not start$", content.text, re.MULTILINE)


def test_a_failed_job_gives_its_own_reason_not_an_orders() -> None:
    errors = [
        {"order_id": str(uuid4()), "code": "customer_blocked", "message": "The customer is blocked."},
        {"code": WORKER_CRASHED, "message": "The job stopped after failing 5 times in a row."},
    ]
    job = ended_job(JobStatus.failed, total=10, created=2, failed=8, errors=errors)
    content = email(job, [group(JOB_FAILED, 7, "SO-000003"), group("customer_blocked", 1, "SO-000002")])
    assert "Reason: The job stopped after failing 5 times in a row." in content.text
    assert "Reason: The customer is blocked." not in content.text
    assert "Reason: The job stopped after failing 5 times in a row." in content.html


def test_failures_are_grouped_by_reason_the_largest_first() -> None:
    job = ended_job(JobStatus.completed, total=100, created=90, failed=10)
    failures = [
        group("customer_blocked", 2, "SO-000001", "SO-000002"),
        group("currency_mismatch", 8, *numbers(5), message="The currency differs from the customer's."),
    ]
    text = email(job, failures).text
    section = text[text.index("Orders not invoiced, by reason") :]
    assert section.index(
        "* Currency differs from the customer's (8 orders) · currency_mismatch"
    ) < section.index("* Customer blocked (2 orders) · customer_blocked")
    assert (
        "* Currency differs from the customer's (8 orders) · currency_mismatch\n"
        "  The currency differs from the customer's.\n"
        "  SO-000001, SO-000002, SO-000003, SO-000004, SO-000005 and 3 more\n"
    ) in section
    assert "  SO-000001, SO-000002\n" in section


def test_at_most_five_order_numbers_are_listed_and_the_rest_counted() -> None:
    job = ended_job(JobStatus.completed, total=2000, created=0, failed=2000)
    content = email(job, [group("customer_blocked", 2000, *numbers(7))])
    assert "SO-000005 and 1,995 more" in content.text
    assert "SO-000006" not in content.text
    assert "SO-000005 and 1,995 more" in content.html


def test_a_group_listing_every_order_says_no_more() -> None:
    job = ended_job(JobStatus.completed, total=5, created=0, failed=5)
    content = email(job, [group("customer_blocked", 5, *numbers(5))])
    assert "SO-000001, SO-000002, SO-000003, SO-000004, SO-000005\n" in content.text
    assert "more" not in content.text


def test_one_failed_order_is_one_order() -> None:
    job = ended_job(JobStatus.completed, total=5, created=4, failed=1)
    assert (
        "* Customer blocked (1 order) · customer_blocked\n"
        in email(job, [group("customer_blocked", 1, "SO-000001")]).text
    )


# -- Links, escaping, secrets -------------------------------------------------------------------


def test_both_parts_link_to_the_job() -> None:
    content = email(ended_job(JobStatus.completed, total=1, created=1))
    assert f"Open the job:\n{JOB_URL}\n" in content.text
    assert f'<a href="{JOB_URL}"' in content.html
    assert ">Open the job</a>" in content.html


def test_a_link_is_escaped_in_its_attribute() -> None:
    url = 'https://invoicing.example.com/jobs/1?a=1&b="2"'
    content = job_email(
        ended_job(JobStatus.completed, total=1, created=1), [], job_url=url, organization_name="Acme"
    )
    assert 'href="https://invoicing.example.com/jobs/1?a=1&amp;b=&quot;2&quot;"' in content.html
    assert url in content.text


def test_only_web_addresses_are_linked() -> None:
    with pytest.raises(ValueError, match="http"):
        job_email(
            ended_job(JobStatus.completed, total=1, created=1),
            [],
            job_url="javascript:alert(1)",
            organization_name="Acme",
        )


def test_hostile_data_is_escaped_in_the_html_part_and_literal_in_the_text_part() -> None:
    job = ended_job(JobStatus.completed, total=3, created=2, failed=1)
    failures = [group(f"code{HOSTILE}", 1, f"SO-{HOSTILE}", message=f"Blocked {HOSTILE} & more")]
    content = email(job, failures, organization=f"Acme {HOSTILE}")
    assert "<script" not in content.html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in content.html
    assert "Blocked &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in content.html
    assert f"Acme {HOSTILE}" in content.text
    assert f"SO-{HOSTILE}" in content.text
    assert f"Blocked {HOSTILE} & more" in content.text


def test_the_html_part_is_a_self_contained_page_for_a_phone() -> None:
    page = email(ended_job(JobStatus.completed, total=1, created=1)).html
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "max-width:600px" in page
    for external in ("<script", "<link", "<img", "src=", "<style", "url("):
        assert external not in page


def test_the_text_part_reads_without_html() -> None:
    text = email(ended_job(JobStatus.completed, total=1, created=1), organization="Acme Ltd").text
    assert not re.search(r"</?[a-z]+[ >]", text)
    assert "&amp;" not in text
    assert max(len(line) for line in text.splitlines()) <= 72


def test_no_id_but_the_job_in_its_link() -> None:
    job = ended_job(JobStatus.completed, total=3, created=2, failed=1)
    job_url = f"https://invoicing.example.com/jobs/{job['id']}"
    content = job_email(job, [group("customer_blocked", 1, "SO-1")], job_url=job_url, organization_name="A")
    for part in (content.subject, content.text, content.html):
        assert job["created_by"] not in part
        assert job["organization_id"] not in part
        assert part.count(job["id"]) == part.count(job_url)


# -- Durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "under 1 s"),
        (-3, "under 1 s"),
        (45, "45 s"),
        (59.6, "1 min"),
        (120, "2 min"),
        (125, "2 min 5 s"),
        (3600, "1 h"),
        (3780, "1 h 3 min"),
        (3809, "1 h 3 min"),
        (26 * 3600 + 60, "26 h 1 min"),
    ],
)
def test_a_duration_reads_as_people_say_it(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


# -- A webhook endpoint disabled ----------------------------------------------------------------

WEBHOOKS_URL = "https://invoicing.example.com/settings/webhooks"


def disabled(description: str = "ERP sync", organization: str = "Acme Ltd") -> EmailContent:
    return webhook_disabled_email(
        url="https://erp.example.com/hooks/invoices",
        description=description,
        failing_since=datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))),
        webhooks_url=WEBHOOKS_URL,
        organization_name=organization,
    )


def test_admins_learn_which_endpoint_was_disabled_since_when_in_utc() -> None:
    content = disabled()
    assert content.subject == "Webhook endpoint disabled: ERP sync"
    assert "every delivery to it has failed since 2026-03-01 08:30 UTC" in prose(content.text)
    assert "https://erp.example.com/hooks/invoices" in content.text
    assert "Acme Ltd" in content.text
    for part in (content.text, content.html):
        assert "No further events are sent to it until it is enabled again." in part
        assert "2026-03-01 08:30 UTC" in part


def test_both_parts_link_to_the_webhook_settings() -> None:
    content = disabled()
    assert f"\n{WEBHOOKS_URL}\n" in content.text
    assert f'<a href="{WEBHOOKS_URL}"' in content.html


def test_an_endpoint_without_a_description_is_named_by_its_address() -> None:
    content = disabled(description="  ")
    assert content.subject == "Webhook endpoint disabled: https://erp.example.com/hooks/invoices"
    assert "Description" not in content.text


def test_a_description_cannot_break_the_subject_line_nor_make_it_endless() -> None:
    subject = disabled(description="ERP\r\nBcc: someone@example.com " + "x" * 200).subject
    assert "\n" not in subject
    assert "\r" not in subject
    assert subject.startswith("Webhook endpoint disabled: ERP Bcc: someone@example.com x")
    assert subject.endswith("…")
    assert len(subject) < 100


def test_a_hostile_description_is_escaped_in_the_html_part() -> None:
    content = disabled(description=HOSTILE, organization=f"Org {HOSTILE}")
    assert "<script" not in content.html
    assert "&lt;script&gt;" in content.html
    assert HOSTILE in content.text
