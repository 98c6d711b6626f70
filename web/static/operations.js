// Operations page (administrators): job health refreshed every 10 s, failures by reason, the
// audit log with keyset pages, and the sweep on demand.

import { getJSON, postJSON, withQuery } from "./api.js";
import * as fmt from "./format.js";
import { jobLink } from "./job-link.js";
import { priorityBadge, priorityText } from "./priority.js";
import { reasonLabel } from "./reasons.js";
import { el, errorMessage, setText, toast } from "./ui.js";

const REFRESH_MS = 10000;
const AUDIT_PAGE = 50;
const $ = (selector) => document.querySelector(selector);
const ACTION_TEXT = {
  job_created: "Created a job",
  job_cancel_requested: "Cancelled a job",
  job_retried: "Retried a job",
  job_priority_changed: "Changed a job's priority",
};
const STUCK_TEXT = {
  lease_expired: "its worker stopped answering; the sweep will resume it",
  waiting_for_worker: "waiting for a worker for more than 5 minutes",
};

const view = {
  tiles: $("[data-tiles]"),
  statsError: $("[data-stats-error]"),
  stuckTile: $("[data-stat-tile='stuck']"),
  stuckList: $("[data-stuck-list]"),
  stuckEmpty: $("[data-stuck-empty]"),
  patternsBody: $("[data-patterns-body]"),
  patternsEmpty: $("[data-patterns-empty]"),
  auditBody: $("[data-audit-body]"),
  auditEmpty: $("[data-audit-empty]"),
  auditError: $("[data-audit-error]"),
  auditFirst: $("[data-audit-first]"),
  auditNext: $("[data-audit-next]"),
  sweep: $("[data-sweep]"),
};

function stat(name, text) {
  setText(view.tiles.querySelector(`[data-stat='${name}']`), text);
}

function renderStats(stats) {
  const { active, last_24h: day } = stats;
  stat("pending", fmt.count(active.pending));
  stat("processing", fmt.count(active.processing));
  stat("stuck", fmt.count(active.stuck));
  view.stuckTile.classList.toggle("tile--alert", active.stuck > 0);
  stat("oldest", active.oldest_pending_seconds === null ? "—" : fmt.duration(active.oldest_pending_seconds));
  stat("success", day.success_rate === null ? "—" : `${(day.success_rate * 100).toFixed(1)} %`);
  stat("success-detail", `${fmt.count(day.orders_invoiced)} of ${fmt.plural(day.orders_processed, "order", "orders")} invoiced`);
  stat("jobs", fmt.count(day.created));
  stat("jobs-detail", `${fmt.count(day.failed)} failed · ${fmt.count(day.cancelled)} cancelled`);
  stat("invoices", fmt.count(stats.invoices_last_hour));
  view.stuckList.replaceChildren(
    ...stats.stuck_jobs.map(({ reason, job }) =>
      el("li", { dataset: { jobId: job.id, priority: job.priority } }, [
        // An urgent or low job says so first; a normal one stays quiet.
        priorityBadge(job.priority, { quiet: true }),
        jobLink(job.id, `${fmt.plural(job.total_items, "order", "orders")}, started ${fmt.dateTime(job.created_at)}`),
        document.createTextNode(`: ${STUCK_TEXT[reason] || reason}.`),
      ]),
    ),
  );
  view.stuckEmpty.hidden = stats.stuck_jobs.length > 0;
  view.patternsBody.replaceChildren(
    ...stats.error_patterns.map((pattern) =>
      el("tr", {}, [
        el("td", { text: reasonLabel(pattern.code), dataset: { label: "Reason", code: pattern.code } }),
        el("td", { className: "num", text: fmt.count(pattern.count), dataset: { label: "Orders" } }),
        el("td", { text: pattern.example || "—", dataset: { label: "Latest example" } }),
        el("td", { text: fmt.dateTime(pattern.last_seen), dataset: { label: "Last seen" } }),
      ]),
    ),
  );
  view.patternsEmpty.hidden = stats.error_patterns.length > 0;
}

async function loadStats() {
  try {
    renderStats(await getJSON("/api/admin/stats"));
    view.statsError.hidden = true;
  } catch (error) {
    setText(view.statsError, `The figures could not be loaded: ${errorMessage(error)}`);
    view.statsError.hidden = false;
  } finally {
    view.tiles.setAttribute("aria-busy", "false");
  }
}

/** "urgent priority", "low priority". */
function priorityWords(priority) {
  return `${priorityText(priority).toLowerCase()} priority`;
}

function detailText(entry) {
  const { detail } = entry;
  if (entry.action === "job_retried") return `as a new job of ${fmt.plural(detail.total_items, "order", "orders")}`;
  if (entry.action === "job_created") {
    const orders = fmt.plural(detail.total_items, "order", "orders");
    const what = detail.retry_of ? `${orders}, retrying an earlier job` : orders;
    // Entries written before priorities existed have none; normal is the default, unsaid.
    return detail.priority && detail.priority !== "normal" ? `${what}, ${priorityWords(detail.priority)}` : what;
  }
  if (entry.action === "job_cancel_requested") return detail.status === "cancelled" ? "before it started" : "while it ran";
  if (entry.action === "job_priority_changed") return `to ${priorityWords(detail.priority)}`;
  return "";
}

function auditRow(entry) {
  return el("tr", { dataset: { auditId: String(entry.id) } }, [
    el("td", { text: fmt.dateTime(entry.created_at), dataset: { label: "When" } }),
    el("td", { text: entry.user_email || "the system", dataset: { label: "Who" } }),
    el("td", { text: ACTION_TEXT[entry.action] || entry.action, dataset: { label: "What" } }),
    el("td", { dataset: { label: "Job" } }, [entry.job_id ? jobLink(entry.job_id) : document.createTextNode("—")]),
    el("td", { text: detailText(entry), dataset: { label: "Detail" } }),
  ]);
}

let auditCursor = null;

async function loadAudit(cursor) {
  try {
    const found = await getJSON(withQuery("/api/admin/audit-log", { limit: AUDIT_PAGE, cursor }));
    view.auditBody.replaceChildren(...found.items.map(auditRow));
    view.auditEmpty.hidden = found.items.length > 0 || Boolean(cursor);
    view.auditError.hidden = true;
    auditCursor = found.next_cursor;
    view.auditNext.disabled = !auditCursor;
    view.auditFirst.disabled = !cursor;
  } catch (error) {
    setText(view.auditError, `The audit log could not be loaded: ${errorMessage(error)}`);
    view.auditError.hidden = false;
  }
}

async function runSweep() {
  view.sweep.disabled = true;
  try {
    const result = await postJSON("/api/admin/process-pending");
    const moved = result.enqueued + result.resumed + result.failed;
    const text = moved
      ? `Sweep done: ${fmt.count(result.enqueued)} enqueued, ${fmt.count(result.resumed)} resumed, ${fmt.count(result.failed)} given up.`
      : "Sweep done: nothing was waiting.";
    toast(text, "success");
    await loadStats();
  } catch (error) {
    toast(`The sweep could not run: ${errorMessage(error)}`, "error");
  } finally {
    view.sweep.disabled = false;
  }
}

// A new page of entries: read on from the log's heading (the clicked button may be disabled now).
const turnAuditPage = async (cursor) => {
  await loadAudit(cursor);
  $("#audit-title").focus();
};
view.auditNext.addEventListener("click", () => turnAuditPage(auditCursor));
view.auditFirst.addEventListener("click", () => turnAuditPage(null));
view.sweep.addEventListener("click", runSweep);
loadStats();
loadAudit(null);
setInterval(() => {
  if (!document.hidden) loadStats();
}, REFRESH_MS);
