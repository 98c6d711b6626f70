// The progress card of one batch job: a view that only moves forward (by `seq`), fed either
// by its own WebSocket (with a polling fallback) or by the page (the organization socket).

import { ApiError, getJSON, postJSON, request, withQuery } from "./api.js";
import * as fmt from "./format.js";
import { jobLink } from "./job-link.js";
import { jobPoller, ReconnectingSocket } from "./live.js";
import { priorityBadge } from "./priority.js";
import { reasonLabel } from "./reasons.js";
import { announce, el, errorMessage, setText, toast } from "./ui.js";

const STATUS_TEXT = {
  pending: "Waiting to start",
  processing: "Processing",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};
const FAILURES_PAGE = 50;
const FAILURES_MAX_PAGE = 500;
const PAUSED_NOTE = "Live updates paused — refreshing every 2 s";

export function statusText(job) {
  if (job.cancel_requested && !job.finished) return "Cancelling…";
  return STATUS_TEXT[job.status] || job.status;
}

/** "Done: 297 invoices created, 3 failed", "Cancelled after 120 of 1,000 orders", ... */
export function summaryOf(job) {
  const created = fmt.plural(job.successful_items, "invoice", "invoices");
  if (job.status === "completed") {
    return job.failed_items ? `Done: ${created} created, ${fmt.count(job.failed_items)} failed` : `Done: ${created} created`;
  }
  const progress = `${fmt.count(job.processed_items)} of ${fmt.plural(job.total_items, "order", "orders")}`;
  if (job.status === "cancelled") return `Cancelled after ${progress}`;
  const reason = job.errors && job.errors.length ? job.errors[job.errors.length - 1] : null;
  const detail = reason && (reason.message || reason.error) ? `: ${reason.message || reason.error}` : "";
  return `Failed after ${progress}${detail}`;
}

/**
 * Asks for a new job over a finished job's orders that got no invoice, and says how it went.
 * Returns { job } (the new job, if created) and { done } (whether retrying is over for it).
 */
export async function retryJob(jobId) {
  try {
    const job = await postJSON(`/api/batch-jobs/${encodeURIComponent(jobId)}/retry`, {});
    toast(`Retrying ${fmt.plural(job.total_items, "order", "orders")} in a new job`);
    return { job, done: true };
  } catch (error) {
    if (error instanceof ApiError && (error.code === "already_retried" || error.code === "nothing_to_retry")) {
      toast(errorMessage(error));
      return { job: null, done: true };
    }
    toast(`Could not retry: ${errorMessage(error)}`, "error");
    return { job: null, done: false };
  }
}

function statField(label, field) {
  const value = el("dd", { dataset: { field } });
  return { row: el("div", { className: "stat" }, [el("dt", { text: label }), value]), value };
}

export class ProgressCard {
  /**
   * @param job the REST job object
   * @param options live (open its own socket), onChange(job), onFinished(job), onDismiss(card),
   *   onRetried(newJob, card) (a retry job was created; show it),
   *   announceStart, transportNote (show the "paused" note in the card)
   */
  constructor(job, options = {}) {
    this.options = { live: true, announceStart: true, transportNote: true, ...options };
    this.job = { ...job };
    this.seq = Number.isInteger(job.seq) ? job.seq : -1;
    this.wasFinished = Boolean(job.finished);
    this.milestone = Math.floor(this.percent() / 25);
    this.feed = null;
    this.gone = false;
    this.failures = { loaded: 0, shownFor: -1, loading: false, stale: true, cursor: null };
    this.build();
    this.render();
    if (this.options.announceStart && !this.wasFinished) {
      announce(`${this.title()}: started.`);
    }
  }

  get id() {
    return this.job.id;
  }

  get finished() {
    return Boolean(this.job.finished);
  }

  title() {
    const verb = this.job.retry_of ? "Retrying" : "Invoicing";
    return `${verb} ${fmt.plural(this.job.total_items, "order", "orders")}`;
  }

  percent() {
    if (this.job.status === "completed") return 100;
    return fmt.percentOf(this.job.processed_items, this.job.total_items);
  }

  build() {
    const titleId = `job-${this.job.id}-title`;
    this.titleEl = el("h3", { className: "job-card__title", attrs: { id: titleId } });
    this.statusEl = el("span", { className: "badge", dataset: { field: "status" } });
    // Urgent and low jobs say so beside the status; a normal one stays quiet.
    this.priorityEl = el("span", { className: "job-card__priority", dataset: { field: "priority" } });
    this.bar = el("div", { className: "meter__bar" });
    this.meter = el("div", {
      className: "meter",
      attrs: { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-labelledby": titleId },
    }, [this.bar]);
    this.percentEl = el("span", { className: "job-card__percent", dataset: { field: "percent" } });
    this.processedEl = el("span", { dataset: { field: "processed" } });
    this.totalEl = el("span", { dataset: { field: "total" } });
    const processed = el("div", { className: "stat stat--wide" }, [
      el("dt", { text: "Processed" }),
      el("dd", {}, [this.processedEl, document.createTextNode(" / "), this.totalEl]),
    ]);
    const succeeded = statField("Succeeded", "succeeded");
    const failed = statField("Failed", "failed");
    const rate = statField("Rate", "rate");
    const eta = statField("Time left", "eta");
    Object.assign(this, { succeededEl: succeeded.value, failedEl: failed.value, rateEl: rate.value, etaEl: eta.value });
    this.summaryEl = el("p", { className: "job-card__summary", attrs: { hidden: true } });
    this.noteEl = el("p", { className: "job-card__note", text: PAUSED_NOTE, attrs: { hidden: true } });
    this.buildFailures();
    this.cancelButton = el("button", { className: "button button--danger", text: "Cancel job", attrs: { type: "button" } });
    this.dismissButton = el("button", { className: "button", text: "Dismiss", attrs: { type: "button", hidden: true } });
    this.retryButton = el("button", { className: "button button--primary", attrs: { type: "button", hidden: true } });
    this.retried = false;
    this.pageLink = jobLink(this.job.id, "Job details", { className: "job-card__link" });
    this.pageLink.setAttribute("aria-describedby", titleId);
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.retryButton.addEventListener("click", () => this.retry());
    this.dismissButton.addEventListener("click", () => this.dismiss());
    this.element = el("article", {
      className: "job-card",
      attrs: { "aria-labelledby": titleId },
      dataset: { jobId: this.job.id, transport: "websocket" },
    }, [
      el("div", { className: "job-card__head" }, [
        this.titleEl,
        el("div", { className: "job-card__badges" }, [this.priorityEl, this.statusEl]),
      ]),
      el("div", { className: "job-card__progress" }, [this.meter, this.percentEl]),
      el("dl", { className: "job-card__stats" }, [processed, succeeded.row, failed.row, rate.row, eta.row]),
      this.summaryEl,
      this.noteEl,
      this.failuresEl,
      el("div", { className: "job-card__actions" }, [this.pageLink, this.cancelButton, this.retryButton, this.dismissButton]),
    ]);
  }

  buildFailures() {
    this.failuresCount = el("span");
    this.failuresList = el("ol", { className: "failures__list" });
    this.failuresStatus = el("p", { className: "failures__status" });
    this.failuresMore = el("button", { className: "button button--small", text: "Show more", attrs: { type: "button", hidden: true } });
    this.failuresEl = el("details", { className: "failures", attrs: { hidden: true } }, [
      el("summary", {}, [document.createTextNode("Failed orders "), this.failuresCount]),
      this.failuresList,
      this.failuresStatus,
      this.failuresMore,
    ]);
    this.failuresEl.addEventListener("toggle", () => {
      if (this.failuresEl.open && this.failures.stale) this.loadFailures(true);
    });
    this.failuresMore.addEventListener("click", () => this.loadFailures(false));
  }

  /** Shows a newer state; `full` marks a whole job object (snapshot, poll, REST answer). */
  apply(data, seq, { full = false } = {}) {
    if (!Number.isInteger(seq) || seq < this.seq || (seq === this.seq && !full)) return false;
    this.seq = seq;
    const { type, job_id: _jobId, organization_id: _org, job, ...fields } = data;
    Object.assign(this.job, job || fields);
    this.render();
    if (this.options.onChange) this.options.onChange(this.job, this);
    this.announceProgress();
    if (this.finished && !this.wasFinished) {
      this.wasFinished = true;
      this.onFinish();
    }
    return true;
  }

  render() {
    const job = this.job;
    const percent = this.percent();
    setText(this.titleEl, this.title());
    setText(this.statusEl, statusText(job));
    this.statusEl.className = `badge badge--${job.cancel_requested && !this.finished ? "cancelling" : job.status}`;
    this.element.dataset.status = job.status;
    this.renderPriority();
    this.element.classList.toggle("job-card--finished", this.finished);
    this.meter.setAttribute("aria-valuenow", String(percent));
    const valueText = job.status === "pending"
      ? "Waiting to start"
      : `${fmt.count(job.processed_items)} of ${fmt.plural(job.total_items, "order", "orders")} processed, ${percent} percent`;
    this.meter.setAttribute("aria-valuetext", valueText);
    this.meter.classList.toggle("meter--waiting", job.status === "pending");
    this.bar.style.width = `${percent}%`;
    setText(this.percentEl, `${percent}%`);
    this.number(this.processedEl, job.processed_items);
    this.number(this.totalEl, job.total_items);
    this.number(this.succeededEl, job.successful_items);
    this.number(this.failedEl, job.failed_items);
    this.failedEl.classList.toggle("is-bad", job.failed_items > 0);
    setText(this.rateEl, fmt.rate(job.items_per_second));
    setText(this.etaEl, this.finished ? "—" : job.status === "pending" ? "—" : fmt.eta(job.eta_seconds));
    this.summaryEl.hidden = !this.finished;
    if (this.finished) setText(this.summaryEl, summaryOf(job));
    const hadFocus = document.activeElement === this.cancelButton;
    this.cancelButton.disabled = this.finished || Boolean(job.cancel_requested) || this.gone;
    this.cancelButton.hidden = this.finished;
    // The job ended (or went) under a focused Cancel: the focus stays in the card.
    if (hadFocus && (this.cancelButton.hidden || this.cancelButton.disabled)) this.focusTitle();
    this.dismissButton.hidden = !this.finished && !this.gone;
    const uninvoiced = this.uninvoiced();
    this.retried = this.retried || Boolean(job.retried_as);
    this.retryButton.hidden = !this.finished || this.gone || this.retried || uninvoiced === 0;
    setText(this.retryButton, fmt.retryLabel(job));
    if (this.finished) this.noteEl.hidden = true;
    this.renderFailures();
  }

  renderPriority() {
    const priority = this.job.priority || "normal";
    if (this.priorityEl.dataset.value === priority) return;
    this.priorityEl.dataset.value = priority;
    this.priorityEl.replaceChildren(...[priorityBadge(priority, { quiet: true })].filter(Boolean));
  }

  number(node, value) {
    node.dataset.value = String(value ?? 0);
    setText(node, fmt.count(value));
  }

  announceProgress() {
    const milestone = Math.floor(this.percent() / 25);
    if (milestone > this.milestone && !this.finished) {
      announce(`${this.title()}: ${milestone * 25} percent done.`);
    }
    this.milestone = Math.max(this.milestone, milestone);
  }

  onFinish() {
    this.stopFeed();
    const job = this.job;
    const kind = job.status === "failed" ? "error" : job.status === "completed" && !job.failed_items ? "success" : "info";
    toast(summaryOf(job), kind);
    if (this.options.onFinished) this.options.onFinished(job, this);
  }

  setTransport(kind) {
    this.element.dataset.transport = kind;
    this.noteEl.hidden = !(kind === "polling" && this.options.transportNote && !this.finished);
  }

  // ---- failed orders --------------------------------------------------------------

  renderFailures() {
    const failed = this.job.failed_items || 0;
    this.failuresEl.hidden = failed === 0;
    setText(this.failuresCount, `(${fmt.count(failed)})`);
    if (failed !== this.failures.shownFor) {
      this.failures.stale = true;
      if (this.failuresEl.open) this.scheduleFailures();
    }
  }

  scheduleFailures() {
    // At most one reload every 2 s while the count keeps growing.
    if (this.failuresTimer) return;
    const wait = Math.max(0, 2000 - (Date.now() - (this.failures.lastLoad || 0)));
    this.failuresTimer = setTimeout(() => {
      this.failuresTimer = null;
      if (this.failuresEl.open && this.failures.stale) this.loadFailures(true);
    }, wait);
  }

  async loadFailures(fromStart) {
    if (this.failures.loading) {
      this.failures.again = true;
      return;
    }
    this.failures.loading = true;
    this.failures.lastLoad = Date.now();
    const expected = this.job.failed_items || 0;
    const limit = fromStart
      ? Math.min(FAILURES_MAX_PAGE, Math.max(FAILURES_PAGE, this.failures.loaded))
      : FAILURES_PAGE;
    const path = withQuery(`/api/batch-jobs/${encodeURIComponent(this.id)}/items`, {
      status: "failed",
      limit,
      cursor: fromStart ? null : this.failures.cursor,
    });
    setText(this.failuresStatus, "Loading…");
    try {
      const page = await getJSON(path);
      if (fromStart) {
        this.failuresList.replaceChildren();
        this.failures.loaded = 0;
      }
      for (const item of page.items) this.failuresList.append(this.failureRow(item));
      this.failures.loaded += page.items.length;
      this.failures.cursor = page.next_cursor;
      this.failures.shownFor = expected;
      this.failures.stale = expected !== (this.job.failed_items || 0);
      this.failuresMore.hidden = !page.next_cursor;
      setText(this.failuresStatus, this.failures.loaded ? "" : "No failed orders yet.");
    } catch (error) {
      setText(this.failuresStatus, `Could not load the failed orders: ${errorMessage(error)}`);
    } finally {
      this.failures.loading = false;
    }
    if (this.failures.again || this.failures.stale) {
      this.failures.again = false;
      if (this.failuresEl.open && this.failures.stale) this.scheduleFailures();
    }
  }

  failureRow(item) {
    const number = item.order_number || `Order ${String(item.order_id).slice(0, 8)}`;
    const reason = item.error ? [reasonLabel(item.error.code), item.error.message].filter(Boolean).join(": ") : "Unknown reason";
    return el("li", { className: "failures__item", dataset: { orderId: item.order_id } }, [
      el("span", { className: "failures__number", text: number }),
      el("span", { className: "failures__reason", text: reason }),
    ]);
  }

  // ---- actions ----------------------------------------------------------------------

  async cancel() {
    if (this.finished || this.job.cancel_requested) return;
    const question = `Cancel this job? ${fmt.count(this.job.processed_items)} of ${fmt.plural(this.job.total_items, "order", "orders")} are already processed; their invoices stay.`;
    if (!window.confirm(question)) return;
    this.cancelButton.disabled = true;
    try {
      const job = await postJSON(`/api/batch-jobs/${encodeURIComponent(this.id)}/cancel`, {});
      this.apply(job, job.seq, { full: true });
      if (!this.finished) toast("Cancelling: the job stops after its current chunk.");
    } catch (error) {
      if (error instanceof ApiError && error.code === "job_finished") {
        toast("The job had already finished.");
        await this.refresh();
      } else {
        toast(`Could not cancel: ${errorMessage(error)}`, "error");
      }
      this.render();
    }
    // The Cancel button is now hidden or disabled: keep focus in the card, on its heading.
    this.focusTitle();
  }

  focusTitle() {
    this.titleEl.setAttribute("tabindex", "-1");
    this.titleEl.focus();
  }

  /** Orders of a finished job without an invoice: failed, cancelled or never reached. */
  uninvoiced() {
    return Math.max(0, (this.job.total_items || 0) - (this.job.successful_items || 0));
  }

  async retry() {
    if (!this.finished || this.retried) return;
    this.retryButton.disabled = true;
    const outcome = await retryJob(this.id);
    this.retried = outcome.done;
    if (outcome.job) this.job.retried_as = outcome.job.id;
    this.retryButton.disabled = false;
    this.render();
    if (outcome.job && this.options.onRetried) this.options.onRetried(outcome.job, this);
  }

  async refresh() {
    try {
      const job = await getJSON(`/api/batch-jobs/${encodeURIComponent(this.id)}`);
      this.apply(job, job.seq, { full: true });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.markGone();
    }
  }

  markGone() {
    this.gone = true;
    this.stopFeed();
    setText(this.summaryEl, "This job no longer exists.");
    this.summaryEl.hidden = false;
    this.render();
  }

  dismiss() {
    this.destroy();
    if (this.options.onDismiss) this.options.onDismiss(this);
  }

  destroy() {
    this.stopFeed();
    clearTimeout(this.failuresTimer);
    this.element.remove();
  }

  // ---- its own live feed --------------------------------------------------------------

  /** Opens the job's WebSocket; polls every 2 s while it is down. */
  start() {
    if (!this.options.live || this.finished || this.feed) return this;
    const poller = jobPoller(
      this.id,
      request,
      (job) => this.apply(job, job.seq, { full: true }),
      () => this.markGone(),
    );
    const socket = new ReconnectingSocket(`/ws/batch-jobs/${encodeURIComponent(this.id)}`, {
      onMessage: (message) => this.onMessage(message),
      onLive: () => {
        poller.stop();
        this.setTransport("websocket");
      },
      onDown: () => {
        if (this.finished || this.gone) return;
        this.setTransport("polling");
        poller.start();
      },
      isDone: () => this.finished || this.gone,
    });
    this.feed = { socket, poller };
    socket.start();
    return this;
  }

  onMessage(message) {
    switch (message.type) {
      case "snapshot":
        if (message.job) this.apply(message.job, message.job.seq, { full: true });
        break;
      case "progress":
        this.apply(message, message.seq);
        break;
      case "finished":
        this.apply(message.job, message.seq, { full: true });
        break;
      case "error":
        if (message.error && message.error.code === "job_not_found") this.markGone();
        else console.warn("Job socket error", message.error);
        break;
      default:
        break;
    }
  }

  stopFeed() {
    if (!this.feed) return;
    this.feed.socket.stop();
    this.feed.poller.stop();
    this.feed = null;
  }
}
