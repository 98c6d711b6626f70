"""The emails of notices: to whoever started a batch, when it ends, and to an organization's
admins, when a webhook endpoint was disabled for failing. Pure: each function returns the
subject, a plain-text part and an HTML part; ``invoicing/notifications`` sends them.

Both parts are rendered from one list of blocks, so they carry the same information. Every
value taken from data is escaped in the HTML part and kept literal in the text part.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from invoicing.domain.reasons import reason_label
from invoicing.domain.retries import JOB_FAILED


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failed orders of one job that share a reason (``count`` is all of them)."""

    code: str
    message: str
    count: int
    order_numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmailContent:
    """An email ready to send: its subject, a plain-text part and an HTML part."""

    subject: str
    text: str
    html: str


# -- Wording: every sentence a reader sees; the functions below only fill in values ---------

_ORDER = ("order", "orders")
_INVOICE = ("invoice", "invoices")

_SUBJECT_PREFIX = {"completed": "", "cancelled": "Cancelled: ", "failed": "Failed: "}
_SUBJECT_CREATED = "{invoices} created"
_SUBJECT_FAILED = "{count} failed"
_SUBJECT_NOT_PROCESSED = "{count} not processed"

_JOB_TITLE = {
    "completed": "Your batch has finished",
    "cancelled": "Your batch was cancelled",
    "failed": "Your batch stopped before it finished",
}
_JOB_INTRO = {
    "completed": "The batch of {orders} you started in {organization} has finished.",
    "cancelled": "The batch of {orders} you started in {organization} was cancelled.",
    "failed": "The batch of {orders} you started in {organization} stopped before it finished.",
}
_KEPT = (
    "The invoice created before it stopped is kept.",
    "The {count} invoices created before it stopped are kept.",
)
_JOB_REASON = "Reason: {reason}"
_RETRY_HINT = "The orders that got no invoice can be retried as a new batch from the job page."

_LABEL_ORDERS = "Orders"
_LABEL_CREATED = "Invoices created"
_LABEL_FAILED = "Failed"
_LABEL_NOT_PROCESSED = "Not processed"
_LABEL_SUBMITTED = "Submitted"
_LABEL_DURATION = "Time taken"
_DID_NOT_START = "Did not start"
_NOT_RECORDED = "Not recorded"
_UNDER_A_SECOND = "under 1 s"

_FAILURES_HEADING = "Orders not invoiced, by reason"
_GROUP_TITLE = "{reason} ({orders}) · {code}"
_GROUP_MORE = "{listed} and {more} more"

_JOB_ACTION = "Open the job"
_LINK_FALLBACK = "If the button does not work, open this address:"
_JOB_FOOTER = (
    "You get this email because you started this batch in {organization}. In your notification "
    "settings you can choose to hear only about failures, or nothing."
)

_WEBHOOK_SUBJECT = "Webhook endpoint disabled: {endpoint}"
_WEBHOOK_TITLE = "A webhook endpoint was disabled"
_WEBHOOK_INTRO = (
    "A webhook endpoint of {organization} was disabled because every delivery to it has failed since {since}."
)
_WEBHOOK_CONSEQUENCE = "No further events are sent to it until it is enabled again."
_WEBHOOK_ADVICE = "Check that the endpoint is reachable and accepts the calls, then enable it again."
_LABEL_URL = "Endpoint"
_LABEL_DESCRIPTION = "Description"
_LABEL_FAILING_SINCE = "Failing since"
_WEBHOOK_ACTION = "Open the webhook settings"
_WEBHOOK_FOOTER = "You get this email because you are an admin of {organization}."

#: Order numbers listed per reason; the rest are counted ("and 12 more").
MAX_ORDER_NUMBERS = 5
#: Longest endpoint name in a subject; a description can be a paragraph.
_SUBJECT_NAME_LIMIT = 60
_TEXT_WIDTH = 72


def _count(number: int, noun: tuple[str, str]) -> str:
    return f"{number:,} {noun[0] if number == 1 else noun[1]}"


def duration_text(seconds: float) -> str:
    """A duration as people say it: "45 s", "2 min 5 s", "1 h 3 min" (seconds dropped once
    it runs into hours; a negative one, from clocks that disagree, reads as no time)."""
    total = round(max(seconds, 0.0))
    if total < 1:
        return _UNDER_A_SECOND
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours:,} h {minutes} min" if minutes else f"{hours:,} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _utc_text(moment: datetime) -> str:
    # Readers sit in any time zone: one unambiguous zone, named. A naive time is taken as UTC,
    # not as this server's local time.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(text: str) -> str:
    # A line break in a header would end it: data in a subject becomes one line.
    return " ".join(text.split())


def _checked_link(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"an email links to http(s) addresses only, not {url!r}")
    return url


# -- The blocks both parts are rendered from ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Paragraph:
    text: str


@dataclass(frozen=True, slots=True)
class _Facts:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Heading:
    text: str


@dataclass(frozen=True, slots=True)
class _Group:
    title: str
    message: str
    orders: str


@dataclass(frozen=True, slots=True)
class _Action:
    label: str
    url: str


_Block = _Paragraph | _Facts | _Heading | _Group | _Action


@dataclass(frozen=True, slots=True)
class _Letter:
    subject: str
    organization: str
    title: str
    blocks: tuple[_Block, ...]
    footer: str

    def render(self) -> EmailContent:
        return EmailContent(subject=_one_line(self.subject), text=_text(self), html=_html(self))


# -- A batch that ended ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of a job's orders, in the three kinds a reader cares about."""

    status: str
    total: int
    created: int
    #: Orders that failed on their own (a rule refused them, their chunk failed).
    failed: int
    #: Orders never tried: cancelled, or left when the job stopped (their items failed with
    #: ``JOB_FAILED``, which the failure groups count).
    not_processed: int

    @classmethod
    def of(cls, job: Mapping[str, Any], failures: Sequence[FailureGroup]) -> _Outcome:
        status = str(job["status"])
        if status not in _JOB_TITLE:
            raise ValueError(f"a job that is {status!r} has not ended")
        total, created = int(job["total_items"]), int(job["successful_items"])
        left_behind = sum(group.count for group in failures if group.code == JOB_FAILED)
        failed = max(int(job["failed_items"]) - left_behind, 0)
        return cls(status, total, created, failed, max(total - created - failed, 0))


def job_email(
    job: Mapping[str, Any], failures: Sequence[FailureGroup], *, job_url: str, organization_name: str
) -> EmailContent:
    """The email to whoever started ``job`` (``BatchJob.to_json()`` of a completed, failed or
    cancelled job): what became of its orders, the failures by reason, the time it took and a
    link to it. ``failures`` are its failed items grouped by code, each with its full count."""
    outcome = _Outcome.of(job, failures)
    link = _checked_link(job_url)
    blocks: list[_Block] = [_Paragraph(_intro(outcome, organization_name)), *_stop_reason(job, outcome)]
    blocks.append(_Facts(_job_facts(job, outcome)))
    if failures:
        blocks.append(_Heading(_FAILURES_HEADING))
        blocks.extend(_group(group) for group in sorted(failures, key=lambda group: -group.count))
    if outcome.failed or outcome.not_processed:
        blocks.append(_Paragraph(_RETRY_HINT))
    blocks.append(_Action(_JOB_ACTION, link))
    return _Letter(
        subject=_job_subject(outcome),
        organization=organization_name,
        title=_JOB_TITLE[outcome.status],
        blocks=tuple(blocks),
        footer=_JOB_FOOTER.format(organization=organization_name),
    ).render()


def _job_subject(outcome: _Outcome) -> str:
    parts = [_SUBJECT_CREATED.format(invoices=_count(outcome.created, _INVOICE))]
    if outcome.failed:
        parts.append(_SUBJECT_FAILED.format(count=f"{outcome.failed:,}"))
    if outcome.not_processed:
        parts.append(_SUBJECT_NOT_PROCESSED.format(count=f"{outcome.not_processed:,}"))
    return f"{_SUBJECT_PREFIX[outcome.status]}{_count(outcome.total, _ORDER)}: {', '.join(parts)}"


def _intro(outcome: _Outcome, organization_name: str) -> str:
    intro = _JOB_INTRO[outcome.status].format(
        orders=_count(outcome.total, _ORDER), organization=organization_name
    )
    if outcome.created and outcome.status != "completed":
        kept = _KEPT[0] if outcome.created == 1 else _KEPT[1].format(count=f"{outcome.created:,}")
        intro = f"{intro} {kept}"
    return intro


def _stop_reason(job: Mapping[str, Any], outcome: _Outcome) -> list[_Block]:
    # A job that failed as a whole says why in a job-level error (one without an order_id).
    job_errors = [error for error in job.get("errors") or () if "order_id" not in error]
    if outcome.status != "failed" or not job_errors:
        return []
    return [_Paragraph(_JOB_REASON.format(reason=job_errors[-1].get("message", "")))]


def _job_facts(job: Mapping[str, Any], outcome: _Outcome) -> tuple[tuple[str, str], ...]:
    rows = [
        (_LABEL_ORDERS, f"{outcome.total:,}"),
        (_LABEL_CREATED, f"{outcome.created:,}"),
        (_LABEL_FAILED, f"{outcome.failed:,}"),
    ]
    if outcome.not_processed or outcome.status != "completed":
        rows.append((_LABEL_NOT_PROCESSED, f"{outcome.not_processed:,}"))
    rows.append((_LABEL_SUBMITTED, _utc_text(datetime.fromisoformat(job["created_at"]))))
    rows.append((_LABEL_DURATION, _time_taken(job.get("started_at"), job.get("completed_at"))))
    return tuple(rows)


def _time_taken(started_at: str | None, completed_at: str | None) -> str:
    if started_at is None:
        return _DID_NOT_START
    if completed_at is None:
        return _NOT_RECORDED
    elapsed = datetime.fromisoformat(completed_at) - datetime.fromisoformat(started_at)
    return duration_text(elapsed.total_seconds())


def _group(group: FailureGroup) -> _Group:
    listed = group.order_numbers[:MAX_ORDER_NUMBERS]
    more = max(group.count - len(listed), 0)
    orders = ", ".join(listed)
    if listed and more:
        orders = _GROUP_MORE.format(listed=orders, more=f"{more:,}")
    return _Group(
        _GROUP_TITLE.format(
            reason=reason_label(group.code), orders=_count(group.count, _ORDER), code=group.code
        ),
        group.message,
        orders,
    )


# -- A webhook endpoint disabled --------------------------------------------------------------


def webhook_disabled_email(
    *, url: str, description: str, failing_since: datetime, webhooks_url: str, organization_name: str
) -> EmailContent:
    """The email to an organization's admins when its endpoint at ``url`` was disabled after
    every delivery failed since ``failing_since`` (shown in UTC): nothing more is sent to it
    until it is enabled again on the page at ``webhooks_url``."""
    since = _utc_text(failing_since)
    facts = [(_LABEL_URL, url)]
    if description.strip():
        facts.append((_LABEL_DESCRIPTION, description))
    facts.append((_LABEL_FAILING_SINCE, since))
    name = _one_line(description) or url
    if len(name) > _SUBJECT_NAME_LIMIT:
        name = name[: _SUBJECT_NAME_LIMIT - 1].rstrip() + "…"
    return _Letter(
        subject=_WEBHOOK_SUBJECT.format(endpoint=name),
        organization=organization_name,
        title=_WEBHOOK_TITLE,
        blocks=(
            _Paragraph(_WEBHOOK_INTRO.format(organization=organization_name, since=since)),
            _Facts(tuple(facts)),
            _Paragraph(_WEBHOOK_CONSEQUENCE),
            _Paragraph(_WEBHOOK_ADVICE),
            _Action(_WEBHOOK_ACTION, _checked_link(webhooks_url)),
        ),
        footer=_WEBHOOK_FOOTER.format(organization=organization_name),
    ).render()


# -- Plain text ---------------------------------------------------------------------------


def _wrap(text: str, indent: str = "") -> str:
    # Addresses must stay whole to be clickable: no breaking of long words or at hyphens.
    lines = textwrap.wrap(text, _TEXT_WIDTH - len(indent), break_long_words=False, break_on_hyphens=False)
    return "\n".join(indent + line for line in lines)


def _text(letter: _Letter) -> str:
    head = f"{letter.organization}\n{letter.title}\n{'=' * len(letter.title)}"
    body = [_text_block(block) for block in letter.blocks]
    return "\n\n".join([head, *body, f"-- \n{_wrap(letter.footer)}"]) + "\n"


def _text_block(block: _Block) -> str:
    match block:
        case _Paragraph(text):
            return _wrap(text)
        case _Facts(rows):
            width = max(len(label) for label, _ in rows) + 2
            return "\n".join(f"  {(label + ':').ljust(width)}{_one_line(value)}" for label, value in rows)
        case _Heading(text):
            return f"{text}\n{'-' * len(text)}"
        case _Group(title, message, orders):
            lines = [f"* {title}", _wrap(message, "  ")]
            return "\n".join([*lines, _wrap(orders, "  ")] if orders else lines)
        case _Action(label, url):
            return f"{label}:\n{url}"


# -- HTML -----------------------------------------------------------------------------------

# Inline styles only: mail clients drop <style> blocks and never load external resources.
_FONT = "font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
_MUTED = "color:#52606d;"
_RULE = "border-bottom:1px solid #e4e7eb;"
_STYLE = {
    "body": "margin:0;padding:0;background-color:#f5f7fa;",
    "wrap": f"max-width:600px;margin:0 auto;padding:24px 12px;{_FONT}color:#1f2933;font-size:15px;"
    "line-height:1.5;",
    "card": "background-color:#ffffff;border:1px solid #e4e7eb;border-radius:6px;padding:24px;",
    "overline": f"margin:0 0 4px;font-size:13px;{_MUTED}",
    "title": "margin:0 0 16px;font-size:20px;line-height:1.3;font-weight:600;",
    "p": "margin:0 0 16px;",
    "table": "width:100%;border-collapse:collapse;margin:0 0 16px;",
    # The label column as narrow as its longest label, the values beside it.
    "th": f"width:1%;white-space:nowrap;text-align:left;font-weight:normal;padding:6px 24px 6px 0;"
    f"vertical-align:top;{_MUTED}{_RULE}",
    "td": f"text-align:left;padding:6px 0;vertical-align:top;word-break:break-word;{_RULE}",
    "heading": "margin:24px 0 8px;font-size:16px;font-weight:600;",
    "group": "margin:0 0 12px;padding:4px 0 4px 12px;border-left:3px solid #cbd2d9;",
    "group_title": "margin:0;font-weight:600;word-break:break-word;",
    "group_text": "margin:2px 0 0;",
    "group_orders": f"margin:2px 0 0;font-size:13px;word-break:break-word;{_MUTED}",
    "action": "margin:24px 0 8px;",
    "button": "display:inline-block;padding:10px 20px;border-radius:4px;background-color:#1f4e79;"
    "color:#ffffff;font-weight:600;text-decoration:none;",
    "fallback": f"margin:0;font-size:13px;word-break:break-all;{_MUTED}",
    "link": "color:#1f4e79;",
    "footer": "margin:16px 12px 0;font-size:12px;color:#7b8794;",
}


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _tag(name: str, style: str, content: str) -> str:
    return f'<{name} style="{_STYLE[style]}">{content}</{name}>'


def _html(letter: _Letter) -> str:
    heading = _tag("p", "overline", _e(letter.organization)) + _tag("h1", "title", _e(letter.title))
    card = _tag("div", "card", "\n".join([heading, *map(_html_block, letter.blocks)]))
    page = _tag("div", "wrap", card + _tag("p", "footer", _e(letter.footer)))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(_one_line(letter.subject))}</title>\n</head>\n"
        f'<body style="{_STYLE["body"]}">\n{page}\n</body>\n</html>\n'
    )


def _html_block(block: _Block) -> str:
    match block:
        case _Paragraph(text):
            return _tag("p", "p", _e(text))
        case _Facts(rows):
            th = f'<th scope="row" style="{_STYLE["th"]}">'
            cells = "".join(
                f"<tr>{th}{_e(label)}</th>{_tag('td', 'td', _e(value))}</tr>" for label, value in rows
            )
            return f'<table role="presentation" style="{_STYLE["table"]}">{cells}</table>'
        case _Heading(text):
            return _tag("h2", "heading", _e(text))
        case _Group(title, message, orders):
            lines = _tag("p", "group_title", _e(title)) + _tag("p", "group_text", _e(message))
            return _tag("div", "group", lines + (_tag("p", "group_orders", _e(orders)) if orders else ""))
        case _Action(label, url):
            button = f'<a href="{_e(url)}" style="{_STYLE["button"]}">{_e(label)}</a>'
            link = f'<a href="{_e(url)}" style="{_STYLE["link"]}">{_e(url)}</a>'
            return _tag("p", "action", button) + "\n" + _tag("p", "fallback", f"{_LINK_FALLBACK} {link}")
