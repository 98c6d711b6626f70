// One job's page (/jobs/{id}): its facts, kept live while it runs (the job's WebSocket, polling
// while that is down), every order with its outcome (filtered, paged), the retry chain both
// ways, and the actions still possible.

import { ApiError, getJSON, postJSON, request, withQuery } from "./api.js";
import * as fmt from "./format.js";
import { jobLink } from "./job-link.js";
import { jobPoller, ReconnectingSocket } from "./live.js";
import { priorityBadge, priorityText } from "./priority.js";
import { retryJob, statusText, summaryOf } from "./progress-card.js";
import { reasonLabel } from "./reasons.js";
import { announce, el, errorMessage, setText, toast } from "./ui.js";

const ITEMS_PAGE = 50;
const ITEM_STATUS = { pending: "Pending", succeeded: "Invoiced", failed: "Failed", cancelled: "Cancelled" };
const ITEM_BADGE = { pending: "pending", succeeded: "completed", failed: "failed", cancelled: "cancelled" };

const root = document.querySelector("[data-job-page]");
const jobId = root.dataset.jobId;
const $ = (selector) => root.querySelector(selector);
const field = (name) => root.querySelector(`[data-field="${name}"]`);
const view = {
  title: $("[data-job-title]"),
  cancel: $("[data-cancel]"),
  retry: $("[data-retry]"),
  // Administrators only (the template leaves the form out for members): null then.
  priorityForm: $("[data-priority-form]"),
  priorityChoice: $("[data-priority-choice]"),
  priorityChange: $("[data-priority-change]"),
  feedNote: $("[data-feed-note]"),
  retryOf: $("[data-chain-retry-of]"),
  retriedAs: $("[data-chain-retried-as]"),
  filter: $("[data-item-filter]"),
  caption: $("[data-items-caption]"),
  body: $("[data-items-body]"),
  empty: $("[data-items-empty]"),
  error: $("[data-items-error]"),
  prev: $("[data-items-prev]"),
  next: $("[data-items-next]"),
  pageInfo: $("[data-items-page]"),
  itemsTitle: $("#orders-title"),
};

// shownPriority: the job's priority the choice last showed, first as the template rendered it
// (a choice made before this script ran is the user's, and stays).
const state = {
  job: null,
  seq: -1,
  feed: null,
  busy: false,
  shownPriority: field("priority").dataset.value,
  // The server refused a change for good (the job ended, or this user is no longer an admin).
  priorityClosed: false,
};
const items = { cursors: [null], next: null, loading: false, again: false, status: "" };

const finished = () => Boolean(state.job && state.job.finished);

// ---- the job ---------------------------------------------------------------------------

/** Shows a newer state of the job (`full`: a whole job object, else a progress event). */
function apply(data, seq, { full = false } = {}) {
  if (!Number.isInteger(seq) || seq < state.seq || (seq === state.seq && !full)) return;
  const wasFinished = finished();
  const before = state.job && state.job.status;
  state.seq = seq;
  const { type: _type, job_id: _id, organization_id: _org, job, ...fields } = data;
  state.job = { ...(state.job || {}), ...(job || fields) };
  render();
  if (before && before !== state.job.status) announce(`Job ${statusText(state.job).toLowerCase()}.`);
  if (finished() && !wasFinished) {
    stopFeed();
    if (before) {
      announce(summaryOf(state.job));
      loadItems();
    }
  }
}

function title(job) {
  const verb = job.retry_of ? "Retrying" : "Invoicing";
  return `${verb} ${fmt.plural(job.total_items, "order", "orders")}`;
}

function uninvoiced(job) {
  return Math.max(0, (job.total_items || 0) - (job.successful_items || 0));
}

function durationOf(job) {
  if (!job.started_at) return "—";
  if (!job.finished) return `${fmt.duration(fmt.secondsBetween(job.started_at, new Date().toISOString()))} so far`;
  return fmt.duration(fmt.secondsBetween(job.started_at, job.completed_at));
}

function setTime(name, text) {
  const node = field(name);
  node.setAttribute("datetime", text || "");
  setText(node, fmt.dateTime(text));
}

function chainLink(container, holder, id) {
  holder.hidden = !id;
  if (!id) return;
  const current = holder.querySelector("a");
  if (current && current.dataset.jobLink === id) return;
  container.replaceChildren(jobLink(id));
}

function render() {
  const job = state.job;
  const status = field("status");
  const cancelling = job.cancel_requested && !finished();
  root.dataset.status = job.status;
  document.title = `${title(job)} · Batch invoicing`;
  setText(view.title, title(job));
  setText(status, statusText(job));
  status.className = `badge badge--${cancelling ? "cancelling" : job.status}`;
  const progress = `${fmt.count(job.processed_items)} of ${fmt.plural(job.total_items, "order", "orders")} processed`;
  setText(field("summary"), finished() ? summaryOf(job) : progress);
  setText(field("created_by_name"), job.created_by_name || "—");
  setTime("created_at", job.created_at);
  setTime("started_at", job.started_at);
  setTime("completed_at", job.completed_at);
  setText(field("duration"), durationOf(job));
  // Slots on a part of the job right now: shown while it runs (0 between parts, or backing off).
  setText(field("active_workers"), job.status === "processing" ? fmt.count(job.active_workers ?? 0) : "—");
  const pending = Math.max(0, job.total_items - job.processed_items - job.cancelled_items);
  for (const [name, value] of Object.entries({
    total_items: job.total_items,
    successful_items: job.successful_items,
    failed_items: job.failed_items,
    cancelled_items: job.cancelled_items,
    pending_items: pending,
  })) {
    field(name).dataset.value = String(value ?? 0);
    setText(field(name), fmt.count(value));
  }
  field("failed_items").classList.toggle("is-bad", job.failed_items > 0);
  chainLink(field("retry_of"), view.retryOf, job.retry_of);
  chainLink(field("retried_as"), view.retriedAs, job.retried_as);
  const hadFocus = document.activeElement === view.cancel;
  view.cancel.hidden = finished();
  view.cancel.disabled = state.busy || Boolean(job.cancel_requested);
  // The job ended under a focused Cancel: the focus goes to the page's heading, not the body.
  if (hadFocus && (view.cancel.hidden || view.cancel.disabled) && !state.busy) view.title.focus();
  view.retry.hidden = !finished() || Boolean(job.retried_as) || uninvoiced(job) === 0;
  view.retry.disabled = state.busy;
  setText(view.retry, fmt.retryLabel(job));
  renderPriority(job);
}

function renderPriority(job) {
  const node = field("priority");
  if (node.dataset.value !== job.priority) {
    node.dataset.value = job.priority;
    node.replaceChildren(...[priorityBadge(job.priority, { named: false })].filter(Boolean));
  }
  if (!view.priorityForm) return;
  const hadFocus = view.priorityForm.contains(document.activeElement);
  // Not once the job is over or stopping, nor after the server said this user may not.
  view.priorityForm.hidden = finished() || job.cancel_requested || state.priorityClosed;
  // Someone else moved the job meanwhile: the choice follows, unless this user picked another.
  const choice = view.priorityChoice;
  if (choice.value === state.shownPriority) choice.value = job.priority;
  state.shownPriority = job.priority;
  view.priorityChange.disabled = state.busy;
  // The job ended under the focused choice: the focus goes to the heading, not the body.
  if (hadFocus && view.priorityForm.hidden) view.title.focus();
}

async function refresh() {
  const job = await getJSON(`/api/batch-jobs/${encodeURIComponent(jobId)}`);
  apply(job, job.seq, { full: true });
}

async function cancel() {
  const job = state.job;
  if (finished() || job.cancel_requested) return;
  const question = `Cancel this job? ${fmt.count(job.processed_items)} of ${fmt.plural(job.total_items, "order", "orders")} are already processed; their invoices stay.`;
  if (!window.confirm(question)) return;
  state.busy = true;
  render();
  try {
    const answer = await postJSON(`/api/batch-jobs/${encodeURIComponent(jobId)}/cancel`, {});
    apply(answer, answer.seq, { full: true });
    if (!finished()) toast("Cancelling: the job stops after its current chunk.");
  } catch (error) {
    if (error instanceof ApiError && error.code === "job_finished") {
      toast("The job had already finished.");
      await refresh().catch(() => {});
    } else {
      toast(`Could not cancel: ${errorMessage(error)}`, "error");
    }
  } finally {
    state.busy = false;
    render();
    // The button is gone or disabled now: focus the heading, never the page body.
    view.title.focus();
  }
}

async function changePriority(event) {
  event.preventDefault();
  const wanted = view.priorityChoice.value;
  if (finished() || state.busy) return;
  if (wanted === state.job.priority) {
    toast(`The job's priority is already ${priorityText(wanted).toLowerCase()}.`);
    return;
  }
  state.busy = true;
  render();
  try {
    const answer = await postJSON(`/api/batch-jobs/${encodeURIComponent(jobId)}/priority`, { priority: wanted });
    apply(answer, answer.seq, { full: true });
    toast(`Priority changed to ${priorityText(answer.priority).toLowerCase()}.`, "success");
  } catch (error) {
    if (error instanceof ApiError && error.code === "job_finished") {
      toast("The job had already finished: its priority no longer matters.");
      state.priorityClosed = true;
      await refresh().catch(() => {});
    } else {
      toast(`Could not change the priority: ${errorMessage(error)}`, "error");
      if (error instanceof ApiError && error.code === "admin_required") state.priorityClosed = true;
    }
  } finally {
    state.busy = false;
    render();
    // The button was disabled while asking; once the job is over the form is gone.
    (view.priorityForm.hidden ? view.title : view.priorityChange).focus();
  }
}

async function retry() {
  if (!finished() || state.job.retried_as) return;
  state.busy = true;
  render();
  const outcome = await retryJob(jobId);
  state.busy = false;
  if (outcome.job) {
    state.job = { ...state.job, retried_as: outcome.job.id };
    render();
    field("retried_as").querySelector("a").focus();
    return;
  }
  if (outcome.done) await refresh().catch(() => {});
  render();
  if (view.retry.hidden) view.title.focus();
}

// ---- live while it runs ------------------------------------------------------------------

function setTransport(kind) {
  root.dataset.transport = kind;
  view.feedNote.hidden = kind !== "polling" || finished();
}

function onMessage(message) {
  if (message.type === "snapshot" && message.job) apply(message.job, message.job.seq, { full: true });
  else if (message.type === "progress") apply(message, message.seq);
  // A "finished" event's job is finished, whichever worker version sent it.
  else if (message.type === "finished") apply({ ...message.job, finished: true }, message.seq, { full: true });
  else if (message.type === "error") console.warn("Job socket error", message.error);
}

function startFeed() {
  if (finished() || state.feed) return;
  const poller = jobPoller(jobId, request, (job) => apply(job, job.seq, { full: true }));
  const socket = new ReconnectingSocket(`/ws/batch-jobs/${encodeURIComponent(jobId)}`, {
    onMessage,
    onLive: () => {
      poller.stop();
      setTransport("websocket");
    },
    onDown: () => {
      if (finished()) return;
      setTransport("polling");
      poller.start();
    },
    isDone: finished,
  });
  // The duration keeps counting between events.
  const clock = setInterval(() => setText(field("duration"), durationOf(state.job)), 1000);
  state.feed = { socket, poller, clock };
  socket.start();
}

function stopFeed() {
  if (!state.feed) return;
  state.feed.socket.stop();
  state.feed.poller.stop();
  clearInterval(state.feed.clock);
  state.feed = null;
  setTransport("done");
}

// ---- the orders ----------------------------------------------------------------------------

function reasonCell(item) {
  if (!item.error) return el("td", { dataset: { label: "Reason" }, text: "—" });
  const label = reasonLabel(item.error.code);
  const message = item.error.message && item.error.message !== label ? item.error.message : "";
  return el("td", { className: "job-items__reason", dataset: { label: "Reason" } }, [
    el("div", {}, [
      el("span", { className: "job-items__label", text: label }),
      message ? el("span", { className: "job-items__message", text: message }) : null,
    ]),
  ]);
}

function itemRow(item) {
  const number = item.order_number || `Order ${String(item.order_id).slice(0, 8)}`;
  return el("tr", { dataset: { orderId: item.order_id, status: item.status } }, [
    el("td", { className: "num", text: fmt.count(item.position), dataset: { label: "#" } }),
    el("td", { className: "col-number", text: number, dataset: { label: "Order" } }),
    el("td", { dataset: { label: "Status" } }, [
      el("span", { className: `badge badge--${ITEM_BADGE[item.status] || item.status}`, text: ITEM_STATUS[item.status] || item.status }),
    ]),
    reasonCell(item),
    el("td", { dataset: { label: "Invoice" } }, [el("span", { className: "mono", text: item.invoice_number || "—" })]),
  ]);
}

async function loadItems() {
  if (items.loading) {
    // The filter or page changed meanwhile: load again once this answer is in.
    items.again = true;
    return;
  }
  items.loading = true;
  items.again = false;
  const table = view.body.closest("table");
  table.setAttribute("aria-busy", "true");
  try {
    const page = await getJSON(withQuery(`/api/batch-jobs/${encodeURIComponent(jobId)}/items`, {
      status: items.status,
      limit: ITEMS_PAGE,
      cursor: items.cursors[items.cursors.length - 1],
    }));
    items.next = page.next_cursor;
    view.body.replaceChildren(...page.items.map(itemRow));
    view.empty.hidden = page.items.length > 0;
    view.error.hidden = true;
    const index = items.cursors.length - 1;
    const shown = items.status ? (ITEM_STATUS[items.status] || items.status).toLowerCase() : "all";
    setText(view.caption, `Orders of this job: ${shown}, page ${index + 1}`);
    setText(view.pageInfo, page.items.length ? `Page ${index + 1}` : "");
  } catch (error) {
    setText(view.error, `Could not load the orders: ${errorMessage(error)}`);
    view.error.hidden = false;
  } finally {
    items.loading = false;
    table.removeAttribute("aria-busy");
  }
  const focused = document.activeElement;
  view.prev.disabled = items.cursors.length < 2;
  view.next.disabled = !items.next;
  if ((focused === view.prev || focused === view.next) && focused.disabled) view.itemsTitle.focus();
  if (items.again) loadItems();
}

view.filter.addEventListener("change", () => {
  items.status = view.filter.value;
  items.cursors = [null];
  loadItems();
});
view.next.addEventListener("click", () => {
  if (!items.next || items.loading) return;
  items.cursors.push(items.next);
  loadItems();
});
view.prev.addEventListener("click", () => {
  if (items.cursors.length < 2 || items.loading) return;
  items.cursors.pop();
  loadItems();
});
view.cancel.addEventListener("click", cancel);
view.retry.addEventListener("click", retry);
if (view.priorityForm) view.priorityForm.addEventListener("submit", changePriority);

async function start() {
  const wanted = new URLSearchParams(window.location.search).get("status");
  if (wanted && wanted in ITEM_STATUS) {
    view.filter.value = wanted;
    items.status = wanted;
  }
  try {
    await refresh();
  } catch (error) {
    toast(`Could not load the job: ${errorMessage(error)}`, "error");
    return;
  }
  loadItems();
  startFeed();
}

start();
