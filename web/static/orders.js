// Orders page: uninvoiced confirmed orders, selection, "Create N invoices", job cards, and
// the recent invoices that refresh when a job ends.

import { getJSON, postJSON, withQuery } from "./api.js";
import { CardList, fetchActiveJobs } from "./active-jobs.js";
import * as fmt from "./format.js";
import { ProgressCard } from "./progress-card.js";
import { el, errorMessage, setText, toast } from "./ui.js";

const PAGE_SIZE = 50;
const RECENT_INVOICES = 10;
const ORDER_FILTER = { status: "confirmed", invoiced: false };

const $ = (selector) => document.querySelector(selector);

const view = {
  body: $("[data-orders-body]"),
  table: $(".orders-table"),
  title: $("#orders-title"),
  empty: $("[data-orders-empty]"),
  error: $("[data-orders-error]"),
  total: $("[data-orders-total]"),
  selectPage: $("[data-select-page]"),
  banner: $("[data-select-banner]"),
  bannerText: $("[data-select-banner-text]"),
  bannerAction: $("[data-select-banner-action]"),
  create: $("[data-create]"),
  selectedCount: $("[data-selected-count]"),
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
  total: null,
  selected: new Set(),
  allMatching: false,
  loading: false,
  submitting: false,
};

// ---- orders table ------------------------------------------------------------------

async function loadOrders({ refresh = false } = {}) {
  state.loading = true;
  view.table.setAttribute("aria-busy", "true");
  renderPager();
  const before = new Set(state.items.map((order) => order.id));
  try {
    const page = await getJSON(withQuery("/api/sales-orders", {
      ...ORDER_FILTER,
      limit: PAGE_SIZE,
      cursor: state.cursors[state.cursors.length - 1],
      include_total: true,
    }));
    if (page.items.length === 0 && state.cursors.length > 1) {
      // The page emptied (its orders got invoiced): start again from the first page.
      state.cursors = [null];
      state.loading = false;
      return loadOrders({ refresh });
    }
    state.items = page.items;
    state.nextCursor = page.next_cursor;
    state.total = Number.isInteger(page.total) ? page.total : null;
    if (refresh) {
      // Orders that left the list were invoiced: they cannot be selected any more.
      const shown = new Set(page.items.map((order) => order.id));
      for (const id of before) if (!shown.has(id)) state.selected.delete(id);
    }
    view.error.hidden = true;
  } catch (error) {
    setText(view.error, `Could not load the orders: ${errorMessage(error)}`);
    view.error.hidden = false;
  } finally {
    state.loading = false;
    view.table.removeAttribute("aria-busy");
  }
  renderOrders();
}

function orderRow(order) {
  const checkbox = el("input", {
    attrs: { type: "checkbox", "aria-label": `Select order ${order.number}` },
    dataset: { orderId: order.id },
  });
  checkbox.checked = state.allMatching || state.selected.has(order.id);
  checkbox.addEventListener("change", () => toggleOrder(order.id, checkbox.checked));
  return el("tr", { dataset: { orderId: order.id } }, [
    el("td", { className: "col-check" }, [el("label", { className: "check" }, [checkbox])]),
    el("td", { className: "col-number", text: order.number }),
    el("td", { className: "col-customer", text: order.customer_name }),
    el("td", { className: "col-date", text: fmt.isoDate(order.order_date) }),
    el("td", { className: "col-total num", text: fmt.money(order.total, order.currency) }),
  ]);
}

function renderOrders() {
  view.body.replaceChildren(...state.items.map(orderRow));
  view.empty.hidden = state.items.length > 0 || !view.error.hidden;
  setText(view.total, state.total === null ? "" : `(${fmt.count(state.total)})`);
  renderSelection();
  renderPager();
}

function renderPager() {
  const index = state.cursors.length - 1;
  const focused = document.activeElement;
  view.prev.disabled = index === 0;
  view.next.disabled = !state.nextCursor;
  // A pager button that just got disabled must not swallow the keyboard focus.
  if (focused === view.prev && view.prev.disabled) (view.next.disabled ? view.selectPage : view.next).focus();
  if (focused === view.next && view.next.disabled) (view.prev.disabled ? view.selectPage : view.prev).focus();
  if (state.items.length === 0) {
    setText(view.pageInfo, "");
    return;
  }
  const first = index * PAGE_SIZE + 1;
  const last = first + state.items.length - 1;
  const of = state.total === null ? "" : ` of ${fmt.count(state.total)}`;
  setText(view.pageInfo, `${fmt.count(first)}–${fmt.count(last)}${of}`);
}

// ---- selection -------------------------------------------------------------------

function selectedCount() {
  return state.allMatching ? state.total || 0 : state.selected.size;
}

function pageFullySelected() {
  return state.items.length > 0 && state.items.every((order) => state.allMatching || state.selected.has(order.id));
}

function toggleOrder(id, checked) {
  if (state.allMatching && !checked) {
    // Leaving "all matching": keep this page's other orders selected.
    state.allMatching = false;
    for (const order of state.items) state.selected.add(order.id);
  }
  if (checked) state.selected.add(id);
  else state.selected.delete(id);
  renderSelection();
}

function togglePage(checked) {
  if (!checked) state.allMatching = false;
  for (const order of state.items) {
    if (checked) state.selected.add(order.id);
    else state.selected.delete(order.id);
  }
  for (const box of view.body.querySelectorAll("input[type=checkbox]")) box.checked = checked;
  renderSelection();
}

function clearSelection() {
  state.selected.clear();
  state.allMatching = false;
  for (const box of view.body.querySelectorAll("input[type=checkbox]")) box.checked = false;
  renderSelection();
}

function renderSelection() {
  const onPage = state.items.filter((order) => state.allMatching || state.selected.has(order.id)).length;
  view.selectPage.checked = pageFullySelected();
  view.selectPage.indeterminate = onPage > 0 && !view.selectPage.checked;
  view.selectPage.disabled = state.items.length === 0;
  const n = selectedCount();
  setText(view.create, `Create ${fmt.plural(n, "invoice", "invoices")}`);
  view.create.disabled = n === 0 || state.submitting;
  setText(view.selectedCount, n ? `${fmt.count(n)} selected` : "");
  renderBanner();
}

function renderBanner() {
  const total = state.total;
  if (state.allMatching) {
    setText(view.bannerText, `All ${fmt.count(total)} matching orders are selected.`);
    setText(view.bannerAction, "Clear selection");
    view.banner.hidden = false;
  } else if (pageFullySelected() && total !== null && total > state.items.length) {
    setText(view.bannerText, `All ${fmt.count(state.items.length)} on this page are selected.`);
    setText(view.bannerAction, `Select all ${fmt.count(total)} matching orders`);
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
    view.bannerAction.focus();
  }
}

// ---- batch jobs --------------------------------------------------------------------

const cards = new CardList(document.querySelector("[data-job-cards]"));
let refreshTimer = null;

function onJobFinished() {
  // Several jobs may end together: one refresh. Back to the first page, as the orders
  // before the current page may have gone.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const onFirstPage = state.cursors.length === 1;
    state.cursors = [null];
    loadOrders({ refresh: onFirstPage });
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
    onRetried: (retry) => focusCard(showJob(retry)),
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

async function createInvoices() {
  const n = selectedCount();
  if (!n || state.submitting) return;
  const body = state.allMatching ? { filter: ORDER_FILTER } : { order_ids: [...state.selected] };
  state.submitting = true;
  renderSelection();
  try {
    const job = await postJSON("/api/batch-jobs", body);
    toast("Batch job started");
    clearSelection();
    focusCard(showJob(job));
  } catch (error) {
    toast(`Could not start the batch: ${errorMessage(error)}`, "error");
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
view.invoicesRefresh.addEventListener("click", loadInvoices);
view.next.addEventListener("click", () => {
  if (!state.nextCursor || state.loading) return;
  state.cursors.push(state.nextCursor);
  loadOrders();
});
view.prev.addEventListener("click", () => {
  if (state.cursors.length < 2 || state.loading) return;
  state.cursors.pop();
  loadOrders();
});

loadOrders();
loadInvoices();
restoreActiveJobs();
