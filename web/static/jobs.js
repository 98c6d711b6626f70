// Jobs page: active jobs live through the organization socket (polling while it is down),
// and the paginated history.

import { ApiError, getJSON, request, withQuery } from "./api.js";
import { CardList, fetchActiveJobs } from "./active-jobs.js";
import * as fmt from "./format.js";
import { jobLink } from "./job-link.js";
import { Poller, ReconnectingSocket } from "./live.js";
import { priorityBadge } from "./priority.js";
import { ProgressCard, retryJob, statusText } from "./progress-card.js";
import { el, errorMessage, setText } from "./ui.js";

const HISTORY_PAGE = 20;

const $ = (selector) => document.querySelector(selector);
const view = {
  cards: $("[data-job-cards]"),
  activeEmpty: $("[data-active-empty]"),
  feedNote: $("[data-feed-note]"),
  historyBody: $("[data-history-body]"),
  historyEmpty: $("[data-history-empty]"),
  historyError: $("[data-history-error]"),
  historyTitle: $("#history-title"),
  prev: $("[data-prev]"),
  next: $("[data-next]"),
  pageInfo: $("[data-page-info]"),
};

let currentUserId = null;
let transport = "websocket";

// ---- history ------------------------------------------------------------------------

const history = { cursors: [null], nextCursor: null, loading: false, jobs: new Map() };

function startedBy(job) {
  if (currentUserId && job.created_by === currentUserId) return el("span", { text: "you" });
  return el("span", { text: job.created_by_name || "—" });
}

/** The creation time, linking to the job's page, and the retry chain under it. */
function createdCell(job) {
  const chain = [];
  if (job.retry_of) chain.push(el("span", { className: "job-chain" }, [document.createTextNode("Retry of "), jobLink(job.retry_of)]));
  return el("td", { dataset: { label: "Created" } }, [jobLink(job.id, fmt.dateTime(job.created_at)), ...chain]);
}

function historyRow(job) {
  const badgeKind = job.cancel_requested && !job.finished ? "cancelling" : job.status;
  const running = !job.finished;
  const took = running ? (job.started_at ? "running" : "—") : fmt.duration(fmt.secondsBetween(job.started_at, job.completed_at));
  return el("tr", { dataset: { jobId: job.id, status: job.status } }, [
    el("td", { dataset: { label: "Status" } }, [el("span", { className: `badge badge--${badgeKind}`, text: statusText(job) })]),
    el("td", { dataset: { label: "Priority", field: "priority" } }, [priorityBadge(job.priority, { named: false })]),
    el("td", { className: "num", text: fmt.count(job.total_items), dataset: { label: "Orders" } }),
    el("td", { className: "num", text: fmt.count(job.successful_items), dataset: { label: "Succeeded" } }),
    el("td", { className: `num${job.failed_items ? " is-bad" : ""}`, text: fmt.count(job.failed_items), dataset: { label: "Failed" } }),
    el("td", { text: took, dataset: { label: "Duration" } }),
    createdCell(job),
    el("td", { dataset: { label: "Started by" } }, [startedBy(job)]),
    el("td", { className: "num" }, [retryButton(job)]),
  ]);
}

/** Finished jobs with orders left without an invoice can be retried from the history, once. */
function retryButton(job) {
  if (job.retried_as) {
    return el("span", { className: "job-chain" }, [document.createTextNode("Retried as "), jobLink(job.retried_as)]);
  }
  const uninvoiced = job.total_items - job.successful_items;
  if (!job.finished || uninvoiced <= 0) return null;
  const button = el("button", {
    className: "button button--small",
    text: "Retry",
    attrs: { type: "button", "aria-label": `${fmt.retryLabel(job)} of this job` },
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const outcome = await retryJob(job.id);
    if (outcome.job) {
      upsert(outcome.job);
      updateHistoryRow({ ...job, retried_as: outcome.job.id });
      const link = view.historyBody.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"] [data-job-link="${CSS.escape(outcome.job.id)}"]`);
      if (link) link.focus();
      return;
    }
    if (outcome.done) refreshHistorySoon();
    button.disabled = outcome.done;
  });
  return button;
}

async function loadHistory() {
  if (history.loading) return;
  history.loading = true;
  try {
    const page = await getJSON(withQuery("/api/batch-jobs", {
      limit: HISTORY_PAGE,
      cursor: history.cursors[history.cursors.length - 1],
    }));
    history.nextCursor = page.next_cursor;
    history.jobs = new Map(page.items.map((job) => [job.id, job]));
    view.historyBody.replaceChildren(...page.items.map(historyRow));
    view.historyEmpty.hidden = page.items.length > 0;
    view.historyError.hidden = true;
    const index = history.cursors.length - 1;
    setText(view.pageInfo, page.items.length ? `Page ${index + 1}` : "");
  } catch (error) {
    setText(view.historyError, `Could not load the history: ${errorMessage(error)}`);
    view.historyError.hidden = false;
  } finally {
    history.loading = false;
  }
  const focused = document.activeElement;
  view.prev.disabled = history.cursors.length < 2;
  view.next.disabled = !history.nextCursor;
  if ((focused === view.prev || focused === view.next) && focused.disabled) view.historyTitle.focus();
}

/** A running job's history row follows its card. */
function updateHistoryRow(job) {
  const known = history.jobs.get(job.id);
  if (!known) return;
  const merged = { ...known, ...job };
  history.jobs.set(job.id, merged);
  const row = view.historyBody.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
  if (row) row.replaceWith(historyRow(merged));
}

let historyTimer = null;
function refreshHistorySoon() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(loadHistory, 300);
}

view.next.addEventListener("click", () => {
  if (!history.nextCursor || history.loading) return;
  history.cursors.push(history.nextCursor);
  loadHistory();
});
view.prev.addEventListener("click", () => {
  if (history.cursors.length < 2 || history.loading) return;
  history.cursors.pop();
  loadHistory();
});

// ---- active jobs ------------------------------------------------------------------------

// A finished card stays until it is dismissed (someone may be reading it); it links to the
// job's page, and the history has the job too.
const cards = new CardList(view.cards, { emptyNote: view.activeEmpty });
// Jobs whose card was dismissed: a late message must not bring the card back.
const retired = new Set();

function upsert(job, { announceStart = true } = {}) {
  const existing = cards.get(job.id);
  if (existing) {
    existing.apply(job, job.seq, { full: true });
    return existing;
  }
  if (job.finished || retired.has(job.id)) {
    refreshHistorySoon();
    return null;
  }
  const card = new ProgressCard(job, {
    live: false,
    transportNote: false,
    announceStart,
    onChange: updateHistoryRow,
    onFinished: () => refreshHistorySoon(),
    onRetried: (retry) => upsert(retry, { announceStart: true }),
    onDismiss: (dismissed) => {
      retired.add(dismissed.id);
      cards.remove(dismissed);
      view.historyTitle.focus();
    },
  });
  card.setTransport(transport);
  cards.add(card);
  refreshHistorySoon();
  return card;
}

function setTransport(kind) {
  transport = kind;
  view.feedNote.hidden = kind !== "polling";
  for (const card of cards.values()) card.setTransport(kind);
}

// Cards whose job left the active lists: fetch each one's final state.
const etags = new Map();
async function pollCard(card) {
  const headers = etags.has(card.id) ? { "If-None-Match": etags.get(card.id) } : {};
  try {
    const response = await request(`/api/batch-jobs/${encodeURIComponent(card.id)}`, { headers });
    if (response.status === 304) return;
    etags.set(card.id, response.headers.get("ETag"));
    const job = await response.json();
    card.apply(job, job.seq, { full: true });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) card.markGone();
    else throw error;
  }
}

async function syncActive(jobs, { announceStart }) {
  const active = new Set(jobs.map((job) => job.id));
  for (const job of jobs) upsert(job, { announceStart });
  const missing = cards.values().filter((card) => !card.finished && !card.gone && !active.has(card.id));
  await Promise.all(missing.map(pollCard));
}

const poller = new Poller(async () => {
  await syncActive(await fetchActiveJobs(), { announceStart: true });
});

function onMessage(message) {
  if (message.type === "snapshot") {
    syncActive(message.jobs || [], { announceStart: false }).catch((error) => console.warn(error));
  } else if (message.type === "progress") {
    const card = cards.get(message.job_id);
    if (card) card.apply(message, message.seq);
    else upsert({ id: message.job_id, ...message, seq: message.seq });
  } else if (message.type === "finished") {
    const card = cards.get(message.job_id);
    // A "finished" event's job is finished, whichever worker version sent it.
    if (card) card.apply({ ...message.job, finished: true }, message.seq, { full: true });
    else refreshHistorySoon();
  } else if (message.type === "error") {
    console.warn("Organization socket error", message.error);
  }
}

const socket = new ReconnectingSocket("/ws/batch-jobs", {
  onMessage,
  onLive: () => {
    poller.stop();
    setTransport("websocket");
  },
  onDown: () => {
    setTransport("polling");
    poller.start();
  },
});

async function start() {
  try {
    const me = await getJSON("/api/me");
    currentUserId = me.user.id;
  } catch (error) {
    console.warn("Who am I?", error);
  }
  loadHistory();
  try {
    for (const job of await fetchActiveJobs()) upsert(job, { announceStart: false });
  } catch (error) {
    console.warn("Could not load the active jobs", error);
  }
  socket.start();
}

start();
