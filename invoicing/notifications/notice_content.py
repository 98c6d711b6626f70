"""Which email an event makes, with the links a reader follows (``BASE_URL``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from invoicing.domain.notice_emails import EmailContent, FailureGroup, job_email, webhook_disabled_email
from invoicing.domain.notices import ENDPOINT_DISABLED


def email_for(
    event_type: str,
    data: dict[str, Any],
    failures: Sequence[FailureGroup],
    base_url: str,
    organization_name: str,
) -> EmailContent:
    if event_type == ENDPOINT_DISABLED:
        webhook = data["webhook"]
        return webhook_disabled_email(
            url=webhook["url"],
            description=webhook["description"],
            failing_since=datetime.fromisoformat(webhook["failing_since"]),
            webhooks_url=f"{base_url}/webhooks",
            organization_name=organization_name,
        )
    job = data["job"]
    return job_email(
        job, failures, job_url=f"{base_url}/jobs/{job['id']}", organization_name=organization_name
    )
