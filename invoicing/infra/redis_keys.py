"""Every Redis key, channel and arq name the product uses, in one place."""

from __future__ import annotations

from uuid import UUID

#: arq task name (the worker registers the function under this name).
PROCESS_BATCH_JOB = "process_batch_job"
#: arq task sending an organization's due notifications (emails, webhook calls).
DELIVER_NOTIFICATIONS = "deliver_notifications"


def arq_job_id(job_id: UUID, generation: int) -> str:
    """arq dedupes on job id; a new generation per re-enqueue keeps a resume from being swallowed."""
    return f"batch-job:{job_id}:{generation}"


def arq_cue_id(job_id: UUID, generation: int, claim: int) -> str:
    """A cue for one more free slot to join a job, named after the claim that sent it (one cue
    per claim: arq's dedupe drops a repeat)."""
    return f"{arq_job_id(job_id, generation)}:cue{claim}"


def notification_queue(queue_name: str) -> str:
    """The arq queue of notification runs, served by slots of their own in each worker (a dead
    endpoint's timeouts never hold a batch's slot)."""
    return f"{queue_name}:notifications"


def arq_notifications_id(organization_id: UUID, cause: str) -> str:
    """One delivery run of an organization per cause (a finished job, a redelivery, a sweep's
    round): a repeat of the same cause while it is queued is dropped."""
    return f"notify:{organization_id}:{cause}"


def arq_message(arq_id: str) -> str:
    """arq's key holding a queued job's message (arq.constants.job_key_prefix)."""
    return f"arq:job:{arq_id}"


def arq_in_progress(arq_id: str) -> str:
    """arq's key set while a worker runs the job (arq.constants.in_progress_key_prefix); it
    outlives a worker that dies, for the job timeout."""
    return f"arq:in-progress:{arq_id}"


def events_channel(prefix: str, organization_id: UUID) -> str:
    """Pub/sub channel carrying the progress events of one organization's jobs."""
    return f"{prefix}:events:{organization_id}"


def events_pattern(prefix: str) -> str:
    """Pattern a server process subscribes to once, to fan out to every socket it holds."""
    return f"{prefix}:events:*"


def job_creation_limit(prefix: str, user_id: UUID) -> str:
    """Counter of one user's job creations in the current minute."""
    return f"{prefix}:limit:job-create:{user_id}"


def refused_job_requests_limit(prefix: str, user_id: UUID) -> str:
    """Counter of one user's refused batch-job requests in the current minute."""
    return f"{prefix}:limit:job-refused:{user_id}"


# Failed-login counters are hashes (failures, time of the last one), under names of their own:
# a plain counter under one of these names would fail every login's script, which fails open.


def login_failures_by_account(prefix: str, account_digest: str) -> str:
    """Failed logins for one email from unknown devices (a digest, so Redis holds no addresses)."""
    return f"{prefix}:limit:login-backoff:account:{account_digest}"


def login_failures_by_address(prefix: str, address: str) -> str:
    """Failed logins from one client address, from unknown devices."""
    return f"{prefix}:limit:login-backoff:address:{address}"


def login_failures_by_device(prefix: str, device_nonce: str) -> str:
    """Failed logins from one known device (the nonce of its device cookie)."""
    return f"{prefix}:limit:login-backoff:device:{device_nonce}"


def sockets_of_user(prefix: str, user_id: UUID) -> str:
    """Sorted set of one user's open WebSockets (member: socket id, score: when its lease lapses)."""
    return f"{prefix}:limit:sockets-user:{user_id}"


def sockets_of_organization(prefix: str, organization_id: UUID) -> str:
    """Sorted set of one organization's open WebSockets, like :func:`sockets_of_user`."""
    return f"{prefix}:limit:sockets-org:{organization_id}"
