// Orders page: uninvoiced confirmed orders under the month-end filters, selection with its
// totals, "Create N invoices", job cards, and the recent invoices that refresh when a job ends.
//
// The list never goes blank: a load keeps the rows it has and says "Updating…"; the page of
// rows and its count are separate requests (a count of tens of thousands must not hold up the
// rows), and an answer to a request since superseded is dropped.

import { getJSON, postJSON, withQuery } from "./api.js";
import { CardList, fetchActiveJobs } from "./active-jobs.js";
import * as fmt from "./format.js";
import { jobLink } from "./job-link.js";
import { FilterBar } from "./order-filters.js";
import { ProgressCard } from "./progress-card.js";
import { matchingTotals, sumOrders, totalsText } from "./selection-totals.js";
import { el, errorMessage, setText, toast } from "./ui.js";

const PAGE_SIZE = 50;
const RECENT_INVOICES = 10;
const ORDER_FILTER = { status: "confirmed", invoiced: false };

const $ = (selector) => document.querySelector(selector);

const view = {
  panel: $(".orders"),
  body: $("[data-orders-body]"),
  table: $(".orders-table"),
  title: $("#orders-title"),
  status: $("[data-orders-status]"),
  empty: $("[data-orders-empty]"),
  error: $("[data-orders-error]"),
  errorText: $("[data-orders-error-text]"),
  retry: $("[data-orders-retry]"),
  total: $("[data-orders-total]"),
  selectPage: $("[data-select-page]"),
  banner: $("[data-select-banner]"),
  bannerText: $("[data-select-banner-text]"),
  bannerAction: $("[data-select-banner-action]"),
  create: $("[data-create]"),
  priority: $("[data-priority]"),
  selectedCount: $("[data-selected-count]"),
  selectedTotals: $("[data-selected-totals]"),
  held: $("[data-held-message]"),
  heldText: $("[data-held-text]"),
  heldDismiss: $("[data-held-dismiss]"),
  prev: $("[data-prev]"),
  next: $("[data-next]"),
  pageInfo: $("[data-page-info]"),
  invoices: $("[data-invoices]"),
  invoicesEmpty: $("[data-invoices-empty]"),
  invoicesRefresh: $("[data-invoices-refresh]"),
};

const state = {
  cursors: [null], // the cursor of each page visited; the last is the current page
  items: [],
  nextCursor: null,
  loaded: false, // a page of rows has arrived since the filter last changed
  loadingRows: false,
  total: null, // every matching order; null until counted
  held: 0, // of those, orders running jobs hold (no batch may take them)
  errors: { rows: null, count: null },
  selected: new Map(), // order id → order, across pages (their totals are summed)
  allMatching: false,
  matchingTotals: null, // the server's totals of "all matching"; null while calculating
  submitting: false,
};

const filters = new FilterBar($("[data-filters]"), $("[data-filters-clear]"), filterChanged);

// Each kind of request has a number and an AbortController: starting one supersedes the last.
const latest = { rows: 0, count: 0, totals: 0 };
const controllers = { rows: null, count: null, totals: null };

function supersede(kind) {
  if (controllers[kind]) controllers[kind].abort();
  controllers[kind] = new AbortController();
  latest[kind] += 1;
  return { seq: latest[kind], signal: controllers[kind].signal };
}

function listQuery() {
  return { ...ORDER_FILTER, ...filters.filter };
}

// ---- loading ---------------------------------------------------------------------------

async function loadOrders({ recount = false, focusTitle = false, refresh = false } = {}) {
  const { seq, signal } = supersede("rows");
  if (recount) loadCount();
  setLoading(true);
  const before = new Set(state.items.map((order) => order.id));
  try {
    const page = await getJSON(withQuery("/api/sales-orders", {
      ...listQuery(),
      limit: PAGE_SIZE,
      cursor: state.cursors[state.cursors.length - 1],
    }), { signal });
    if (seq !== latest.rows) return;
    if (page.items.length === 0 && state.cursors.length > 1) {
      // The page emptied (its orders got invoiced): start again from the first page.
      state.cursors = [null];
      loadOrders({ focusTitle, refresh });
      return;
    }
    if (refresh) {
      // Orders that left the list were invoiced: they cannot be selected any more.
      const shown = new Set(page.items.map((order) => order.id));
      for (const id of before) if (!shown.has(id)) state.selected.delete(id);
    }
    // An order a running job took since it was ticked cannot be in the next batch.
    for (const order of page.items) if (!selectable(order)) state.selected.delete(order.id);
    state.items = page.items;
    state.nextCursor = page.next_cursor;
    state.loaded = true;
    state.errors.rows = null;
    setLoading(false);
    renderOrders();
    if (focusTitle) view.title.focus();
  } catch (error) {
    if (seq !== latest.rows || error.name === "AbortError") return;
    state.errors.rows = `Could not load the orders: ${errorMessage(error)}`;
    setLoading(false);
    renderOrders();
  }
}

async function loadCount() {
  const { seq, signal } = supersede("count");
  renderCount();
  try {
    const page = await getJSON(withQuery("/api/sales-orders", {
      ...listQuery(),
      limit: 1,
      include_total: true,
    }), { signal });
    if (seq !== latest.count) return;
    state.total = page.total;
    state.held = page.in_active_jobs || 0;
    state.errors.count = null;
    if (state.allMatching) loadMatchingTotals();
  } catch (error) {
    if (seq !== latest.count || error.name === "AbortError") return;
    state.errors.count = `Could not count the orders: ${errorMessage(error)}`;
  }
  renderOrders();
}

async function loadMatchingTotals() {
  const { seq, signal } = supersede("totals");
  state.matchingTotals = null;
  renderSelection();
  try {
    const totals = await matchingTotals(listQuery(), { signal });
    if (seq !== latest.totals) return;
    state.matchingTotals = totals;
  } catch (error) {
    if (seq !== latest.totals || error.name === "AbortError") return;
    state.matchingTotals = { error: errorMessage(error) };
  }
  renderSelection();
}

function forgetMatchingTotals() {
  if (controllers.totals) controllers.totals.abort();
  latest.totals += 1;
  state.matchingTotals = null;
}

function setLoading(loading) {
  state.loadingRows = loading;
  if (loading) view.table.setAttribute("aria-busy", "true");
  else view.table.removeAttribute("aria-busy");
  view.panel.classList.toggle("is-updating", loading && state.loaded);
  setText(view.status, loading ? (state.loaded ? "Updating…" : "Loading orders…") : "");
}

function retry() {
  const recount = state.errors.count !== null || state.total === null;
  state.errors = { rows: null, count: null };
  renderError();
  loadOrders({ recount });
}

function filterChanged() {
  // A new question: first page, nothing selected, no count yet. The focus stays in the filter.
  state.cursors = [null];
  state.total = null;
  state.held = 0;
  state.loaded = false;
  clearSelection();
  loadOrders({ recount: true });
}

// ---- orders table ------------------------------------------------------------------

function selectable(order) {
  return !order.active_job_id && !order.invoice_id;
}

function heldNote(order) {
  const short = String(order.active_job_id).slice(0, 8);
  return el("span", { className: "order-held" }, [jobLink(order.active_job_id, `In job ${short}`)]);
}

function orderRow(order) {
  const free = selectable(order);
  const checkbox = el("input", {
    attrs: {
      type: "checkbox",
      "aria-label": free ? `Select order ${order.number}` : `Order ${order.number} is in a running job`,
      disabled: !free,
    },
    dataset: { orderId: order.id },
  });
  checkbox.checked = isSelected(order);
  checkbox.addEventListener("change", () => toggleOrder(order, checkbox.checked));
  const cell = (className, label, children, text) =>
    el("td", { className, text, dataset: { label } }, children);
  return el("tr", { className: free ? "" : "is-held", dataset: { orderId: order.id } }, [
    el("td", { className: "col-check" }, [el("label", { className: "check" }, [checkbox])]),
    cell("col-number", "Order", [
      el("span", { className: "order-number", text: order.number }),
      free ? null : heldNote(order),
    ]),
    cell("col-customer", "Customer", [], order.customer_name),
    cell("col-date", "Date", [], fmt.isoDate(order.order_date)),
    cell("col-total num", "Total", [], order.total === null ? "No total" : fmt.money(order.total, order.currency)),
  ]);
}

function renderOrders() {
  // The rows are rebuilt (a count arriving, a job ending, a refresh): whatever in a row had
  // the keyboard focus gets it back in that order's new row, or the heading if it is gone.
  const focused = document.activeElement;
  const row = view.body.contains(focused) ? focused.closest("tr[data-order-id]") : null;
  const where = row && { orderId: row.dataset.orderId, tag: focused.tagName, index: [...row.querySelectorAll(focused.tagName)].indexOf(focused) };
  view.body.replaceChildren(...state.items.map(orderRow));
  if (where) {
    const again = view.body.querySelector(`tr[data-order-id="${CSS.escape(where.orderId)}"]`);
    const target = again && again.querySelectorAll(where.tag)[where.index];
    (target && !target.disabled ? target : view.title).focus();
  }
  renderError();
  const filtered = Object.keys(filters.filter).length > 0;
  setText(view.empty, filtered ? "No orders match these filters." : "No confirmed orders are waiting to be invoiced.");
  view.empty.hidden = !state.loaded || state.items.length > 0 || state.errors.rows !== null;
  renderCount();
  renderSelection();
  renderPager();
}

function renderCount() {
  const text = state.total !== null ? `(${fmt.count(state.total)})` : state.loaded ? "(counting…)" : "";
  setText(view.total, text);
}

function renderError() {
  const messages = [state.errors.rows, state.errors.count].filter(Boolean);
  setText(view.errorText, messages.join(" "));
  view.error.hidden = messages.length === 0;
}

function renderPager() {
  const index = state.cursors.length - 1;
  const focused = document.activeElement;
  view.prev.disabled = index === 0;
  view.next.disabled = !state.nextCursor;
  // A pager button that just got disabled must not swallow the keyboard focus.
  if ((focused === view.prev || focused === view.next) && focused.disabled) view.title.focus();
  if (state.items.length === 0) {
    setText(view.pageInfo, "");
    return;
  }
  const first = index * PAGE_SIZE + 1;
  const last = first + state.items.length - 1;
  const of = state.total === null ? "" : ` of ${fmt.count(state.total)}`;
  setText(view.pageInfo, `${fmt.count(first)}–${fmt.count(last)}${of}`);
}

function turnPage(forward) {
  if (state.loadingRows) return;
  if (forward && !state.nextCursor) return;
  if (!forward && state.cursors.length < 2) return;
  if (forward) state.cursors.push(state.nextCursor);
  else state.cursors.pop();
  loadOrders({ focusTitle: true });
}

// ---- selection -------------------------------------------------------------------

/** Every matching order a batch would take: those no running job holds. */
function selectableTotal() {
  return state.total === null ? null : Math.max(0, state.total - state.held);
}

function isSelected(order) {
  return selectable(order) && (state.allMatching || state.selected.has(order.id));
}

function selectedCount() {
  return state.allMatching ? selectableTotal() || 0 : state.selected.size;
}

function pageSelectable() {
  return state.items.filter(selectable);
}

function pageFullySelected() {
  const free = pageSelectable();
  return free.length > 0 && free.every(isSelected);
}

function toggleOrder(order, checked) {
  if (state.allMatching && !checked) {
    // Leaving "all matching": keep this page's other orders selected.
    state.allMatching = false;
    forgetMatchingTotals();
    for (const other of pageSelectable()) state.selected.set(other.id, other);
  }
  if (checked) state.selected.set(order.id, order);
  else state.selected.delete(order.id);
  renderSelection();
}

function togglePage(checked) {
  if (!checked) {
    state.allMatching = false;
    forgetMatchingTotals();
  }
  for (const order of pageSelectable()) {
    if (checked) state.selected.set(order.id, order);
    else state.selected.delete(order.id);
  }
  renderSelection();
}

function clearSelection() {
  state.selected.clear();
  state.allMatching = false;
  forgetMatchingTotals();
  renderSelection();
}

function renderSelection() {
  for (const box of view.body.querySelectorAll("input[type=checkbox]")) {
    const order = state.items.find((item) => item.id === box.dataset.orderId);
    if (order) box.checked = isSelected(order);
  }
  const free = pageSelectable();
  const onPage = free.filter(isSelected).length;
  view.selectPage.checked = pageFullySelected();
  view.selectPage.indeterminate = onPage > 0 && !view.selectPage.checked;
  view.selectPage.disabled = free.length === 0;
  const n = selectedCount();
  setText(view.create, `Create ${fmt.plural(n, "invoice", "invoices")}`);
  view.create.disabled = n === 0 || state.submitting;
  setText(view.selectedCount, n ? `${fmt.count(n)} selected` : "No orders selected");
  setText(view.selectedTotals, selectionTotalsText(n));
  renderBanner();
}

function selectionTotalsText(n) {
  if (!n) return "";
  if (!state.allMatching) return totalsText(sumOrders(state.selected.values()));
  const totals = state.matchingTotals;
  if (totals === null) return "Total: calculating…";
  if (totals.error) return `Total unavailable: ${totals.error}`;
  return totalsText(totals);
}

function leftOut() {
  return state.held ? ` (${fmt.count(state.held)} in running jobs are left out)` : "";
}

function renderBanner() {
  const total = selectableTotal();
  if (state.allMatching) {
    setText(view.bannerText, `All ${fmt.count(total)} matching orders are selected${leftOut()}.`);
    setText(view.bannerAction, "Clear selection");
    view.banner.hidden = false;
  } else if (pageFullySelected() && total !== null && total > pageSelectable().length) {
    setText(view.bannerText, `All ${fmt.count(pageSelectable().length)} on this page are selected.`);
    setText(view.bannerAction, `Select all ${fmt.count(total)} matching${leftOut()}`);
    view.banner.hidden = false;
  } else {
    view.banner.hidden = true;
  }
}

function bannerAction() {
  if (state.allMatching) {
    clearSelection();
    view.selectPage.focus();
  } else {
    state.allMatching = true;
    renderSelection();
    loadMatchingTotals();
    view.bannerAction.focus();
  }
}

// ---- batch jobs --------------------------------------------------------------------

// The cards' section (its heading keeps h1 → h2 → h3 in order) shows while it has cards.
const cards = new CardList($("[data-job-cards]"), {
  onChange: (list) => {
    $("[data-jobs-section]").hidden = list.cards.size === 0;
  },
});
let refreshTimer = null;

function onJobFinished() {
  // Several jobs may end together: one refresh. Back to the first page, as the orders
  // before the current page may have gone.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const onFirstPage = state.cursors.length === 1;
    state.cursors = [null];
    loadOrders({ recount: true, refresh: onFirstPage });
    loadInvoices();
  }, 250);
}

function showJob(job, options = {}) {
  const existing = cards.get(job.id);
  if (existing) {
    existing.apply(job, job.seq, { full: true });
    return existing;
  }
  const card = new ProgressCard(job, {
    announceStart: false,
    onFinished: onJobFinished,
    onRetried: (retried) => focusCard(showJob(retried)),
    onDismiss: (dismissed) => {
      cards.remove(dismissed);
      (view.create.disabled ? view.title : view.create).focus();
    },
    ...options,
  });
  cards.add(card);
  return card.start();
}

function focusCard(card) {
  card.titleEl.setAttribute("tabindex", "-1");
  card.titleEl.focus();
}

/** A batch of ids refused because running jobs hold some: which jobs, linked. */
function showHeld(error) {
  const { count = 0, jobs = [] } = error.details || {};
  const links = [];
  jobs.forEach((job, index) => {
    if (index) links.push(", ");
    links.push(jobLink(job.id), ` (${fmt.plural(job.orders, "order", "orders")})`);
  });
  const orders = fmt.plural(count, "selected order is", "selected orders are");
  view.heldText.replaceChildren(
    el("p", { text: `No job was created: ${orders} already in a running job.` }),
    el("p", {}, ["Held by ", ...links, "."]),
    el("p", { text: "The list is refreshed: orders in running jobs cannot be ticked. Create the rest again." }),
  );
  view.held.hidden = false;
  view.held.setAttribute("tabindex", "-1");
  view.held.focus();
}

/** No longer an admin: the choice the server refused is no longer offered. */
function withdrawUrgent() {
  view.priority.querySelector('option[value="urgent"]')?.remove();
  view.priority.value = "normal";
  view.priority.focus();
}

async function createInvoices() {
  const n = selectedCount();
  if (!n || state.submitting) return;
  const orders = state.allMatching ? { filter: listQuery() } : { order_ids: [...state.selected.keys()] };
  const body = { ...orders, priority: view.priority.value };
  state.submitting = true;
  view.held.hidden = true;
  renderSelection();
  try {
    const job = await postJSON("/api/batch-jobs", body);
    toast("Batch job started");
    // Urgent goes before every organization's work: each batch asks for it anew.
    view.priority.value = "normal";
    clearSelection();
    focusCard(showJob(job));
    loadOrders({ recount: true });
  } catch (error) {
    if (error.code === "orders_in_active_job") {
      showHeld(error);
      loadOrders({ recount: true });
    } else {
      toast(`Could not start the batch: ${errorMessage(error)}`, "error");
      if (error.code === "admin_required") withdrawUrgent();
    }
  } finally {
    state.submitting = false;
    renderSelection();
  }
}

async function restoreActiveJobs() {
  try {
    for (const job of await fetchActiveJobs()) showJob(job);
  } catch (error) {
    toast(`Could not load the running jobs: ${errorMessage(error)}`, "error");
  }
}

// ---- recent invoices ------------------------------------------------------------------

function invoiceItem(invoice) {
  return el("li", { className: "invoice", dataset: { invoiceId: invoice.id } }, [
    el("div", { className: "invoice__line" }, [
      el("span", { className: "invoice__number", text: invoice.number }),
      el("span", { className: "invoice__amount num", text: fmt.money(invoice.total, invoice.currency) }),
    ]),
    el("div", { className: "invoice__line invoice__meta" }, [
      el("span", { className: "invoice__name", text: invoice.billing_name }),
      el("span", { text: fmt.isoDate(invoice.issue_date) }),
    ]),
  ]);
}

async function loadInvoices() {
  view.invoices.setAttribute("aria-busy", "true");
  try {
    const page = await getJSON(withQuery("/api/invoices", { limit: RECENT_INVOICES }));
    view.invoices.replaceChildren(...page.items.map(invoiceItem));
    view.invoicesEmpty.hidden = page.items.length > 0;
  } catch (error) {
    toast(`Could not load the recent invoices: ${errorMessage(error)}`, "error");
  } finally {
    view.invoices.setAttribute("aria-busy", "false");
  }
}

// ---- wiring -----------------------------------------------------------------------

view.selectPage.addEventListener("change", () => togglePage(view.selectPage.checked));
view.bannerAction.addEventListener("click", bannerAction);
view.create.addEventListener("click", createInvoices);
view.retry.addEventListener("click", retry);
view.heldDismiss.addEventListener("click", () => {
  view.held.hidden = true;
  (view.create.disabled ? view.title : view.create).focus();
});
view.invoicesRefresh.addEventListener("click", loadInvoices);
view.next.addEventListener("click", () => turnPage(true));
view.prev.addEventListener("click", () => turnPage(false));

loadOrders({ recount: true });
loadInvoices();
restoreActiveJobs();
filters.loadChoices().catch((error) => {
  toast(`Could not load the customers for the filter: ${errorMessage(error)}`, "error");
});

// Below 960 px the selection bar is fixed to the bottom: the page and the toast row end where
// it begins (app.css reads its height), so it never covers an order or a message.
const selectionBar = document.querySelector("[data-selection-bar]");
new ResizeObserver(() => {
  document.body.style.setProperty("--selection-bar-height", `${selectionBar.offsetHeight}px`);
}).observe(selectionBar);
