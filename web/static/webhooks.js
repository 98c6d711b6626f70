// Webhooks page (administrators): the organization's endpoints, each with its status, its
// actions and its deliveries. A new or rotated secret is shown once, in its endpoint's card,
// and is gone with the page: nothing keeps it.

import { getJSON, postJSON, request, withQuery } from "./api.js";
import * as fmt from "./format.js";
import { announce, el, errorMessage, setText, toast } from "./ui.js";

const DELIVERIES_PAGE = 20;
const SECRET_WARNING = "Copy this secret now: it will not be shown again.";
const $ = (selector) => document.querySelector(selector);
const view = {
  title: $("#webhooks-title"),
  list: $("[data-webhooks-list]"),
  empty: $("[data-webhooks-empty]"),
  error: $("[data-webhooks-error]"),
  refresh: $("[data-webhooks-refresh]"),
  form: $("[data-add-form]"),
  url: $("[data-webhook-url]"),
  description: $("[data-webhook-description]"),
  events: $("[data-webhook-events]"),
  addError: $("[data-add-error]"),
  submit: $("[data-add-submit]"),
};
/** The cards on the page by endpoint id, in the list's order. */
const cards = new Map();
const DELIVERY_STATUS = {
  pending: ["Pending", "badge--pending"],
  delivered: ["Delivered", "badge--completed"],
  failed: ["Failed", "badge--failed"],
};

/** A delivery's time, its year left out in the current year: the time column stays narrow. */
function shortTime(text) {
  const date = new Date(text);
  const sameYear = date.getFullYear() === new Date().getFullYear();
  return date.toLocaleString(undefined, {
    year: sameYear ? undefined : "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

const apiPath = (id, action = "") => `/api/webhooks/${encodeURIComponent(id)}${action}`;

function button(text, onClick, { className = "button button--small", label } = {}) {
  const node = el("button", { className, text, attrs: { type: "button", "aria-label": label } });
  node.addEventListener("click", onClick);
  return node;
}

/** What a card says of an endpoint's state: a badge, and a sentence when it needs attention. */
function endpointStatus(item) {
  const since = item.failing_since ? fmt.dateTime(item.failing_since) : null;
  if (item.enabled) {
    const note = since
      ? `Failing since ${since}: no call has gone through since then. After a day of failures the endpoint is disabled.`
      : "";
    return { text: "Enabled", badge: "badge--completed", note, kind: "warning" };
  }
  if (item.disabled_reason === "failing") {
    const from = since ? `Every call failed from ${since} for a day. ` : "";
    const note = `${from}Fix the receiver, enable the endpoint, then redeliver what it missed.`;
    return { text: "Disabled after a day of failures", badge: "badge--failed", note, kind: "danger" };
  }
  const text = item.disabled_reason === "admin" ? "Disabled by an administrator" : "Disabled";
  return { text, badge: "badge--cancelled", note: "", kind: "warning" };
}

async function copySecret(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    toast("Secret copied to the clipboard.", "success");
  } catch {
    // No clipboard permission (or not a secure context): leave it selected to copy by hand.
    input.focus();
    input.select();
    toast("Copy it by hand: it is selected.", "info");
  }
}

/** One endpoint's deliveries, newest first, in a disclosure loaded when first opened. */
class Deliveries {
  constructor(item) {
    this.id = item.id;
    this.cursor = null;
    this.loaded = false;
    this.body = el("tbody");
    const heads = ["Event", "Status", "Attempts", "Last answer", "When"].map((name) =>
      el("th", { text: name, className: name === "Attempts" ? "num" : "", attrs: { scope: "col" } }),
    );
    heads.push(el("th", { attrs: { scope: "col" } }, [el("span", { className: "visually-hidden", text: "Actions" })]));
    this.table = el("table", { className: "table table--stack deliveries-table", attrs: { hidden: true } }, [
      el("caption", { className: "visually-hidden", text: `Deliveries to ${item.url}` }),
      el("thead", {}, [el("tr", {}, heads)]),
      this.body,
    ]);
    this.empty = el("p", {
      className: "empty",
      text: "No calls yet: one is made when a batch ends with one of this endpoint's events.",
      attrs: { hidden: true },
    });
    this.error = el("p", { className: "form-error deliveries__error", attrs: { role: "alert", hidden: true } });
    this.more = button("Load more", () => this.loadMore(), { className: "button", label: `Load more deliveries to ${item.url}` });
    this.more.hidden = true;
    const refresh = button("Refresh", () => this.load(), {
      className: "button button--quiet button--small",
      label: `Refresh deliveries to ${item.url}`,
    });
    this.root = el("details", { className: "deliveries" }, [
      el("summary", { className: "deliveries__summary" }, [
        document.createTextNode("Deliveries"),
        el("span", { className: "visually-hidden", text: ` to ${item.url}` }),
      ]),
      el("div", { className: "deliveries__body" }, [
        el("div", { className: "deliveries__tools" }, [el("span", { text: "Newest first" }), refresh]),
        this.error,
        el("div", { className: "table-wrap" }, [this.table]),
        this.empty,
        el("div", { className: "deliveries__more" }, [this.more]),
      ]),
    ]);
    this.root.addEventListener("toggle", () => {
      if (this.root.open && !this.loaded) this.load();
    });
  }

  /** The first page again (append: the next one); the rows added, or null on an error. */
  async load({ append = false } = {}) {
    const path = withQuery(apiPath(this.id, "/deliveries"), { limit: DELIVERIES_PAGE, cursor: append ? this.cursor : null });
    this.table.setAttribute("aria-busy", "true");
    try {
      const { items, next_cursor: next } = await getJSON(path);
      const rows = items.map((delivery) => this.row(delivery));
      if (append) this.body.append(...rows);
      else this.body.replaceChildren(...rows);
      this.cursor = next;
      this.loaded = true;
      this.more.hidden = !next;
      this.table.hidden = this.body.children.length === 0;
      this.empty.hidden = !this.table.hidden;
      this.error.hidden = true;
      return rows;
    } catch (error) {
      setText(this.error, `The deliveries could not be loaded: ${errorMessage(error)}`);
      this.error.hidden = false;
      return null;
    } finally {
      this.table.setAttribute("aria-busy", "false");
    }
  }

  async loadMore() {
    const rows = await this.load({ append: true });
    // The button is gone with the last page: go on from the first row it brought.
    if (this.more.hidden && rows && rows.length) rows[0].querySelector("button").focus();
  }

  row(delivery) {
    const tr = el("tr");
    const redeliver = button("Redeliver", () => this.redeliver(tr, redeliver));
    const actions = el("td", { className: "num" }, [redeliver]);
    this.fill(tr, delivery, actions, redeliver);
    return tr;
  }

  /** (Re)writes a row's cells; the actions cell is kept, so its button keeps the focus. */
  fill(tr, delivery, actions, redeliver) {
    tr.dataset.deliveryId = delivery.id;
    tr.dataset.status = delivery.status;
    const [statusText, badge] = DELIVERY_STATUS[delivery.status] || [delivery.status, "badge--pending"];
    // One element per cell: a phone shows the cell as a label beside a single value.
    const status = el("div", {}, [el("span", { className: `badge ${badge}`, text: statusText })]);
    if (delivery.status === "pending" && delivery.next_attempt_at) {
      status.append(el("span", { className: "deliveries__note", text: `Next attempt ${shortTime(delivery.next_attempt_at)}` }));
    }
    const answer = el("div");
    if (delivery.last_status_code !== null) answer.append(el("span", { className: "deliveries__code", text: `HTTP ${delivery.last_status_code}` }));
    if (delivery.last_error) answer.append(el("span", { className: "deliveries__note", text: delivery.last_error }));
    if (!answer.hasChildNodes()) answer.textContent = "—";
    const when = shortTime(delivery.created_at);
    redeliver.setAttribute("aria-label", `Redeliver ${delivery.event_type} of ${when}`);
    const cells = [
      el("td", { className: "mono", text: delivery.event_type, dataset: { label: "Event" } }),
      el("td", { className: "deliveries__status", dataset: { label: "Status" } }, [status]),
      el("td", { className: "num", text: fmt.count(delivery.attempts), dataset: { label: "Attempts" } }),
      el("td", { className: "deliveries__answer", dataset: { label: "Last answer" } }, [answer]),
      el("td", { className: "deliveries__when", text: when, dataset: { label: "When" } }),
    ];
    // Taken out of the document, even for a moment, the button would lose the focus.
    for (const cell of [...tr.children]) if (cell !== actions) cell.remove();
    if (actions.parentElement === tr) actions.before(...cells);
    else tr.append(...cells, actions);
  }

  async redeliver(tr, redeliver) {
    if (tr.dataset.busy) return;
    tr.dataset.busy = "true";
    this.error.hidden = true;
    try {
      const delivery = await postJSON(`/api/webhook-deliveries/${encodeURIComponent(tr.dataset.deliveryId)}/redeliver`, {});
      this.fill(tr, delivery, redeliver.parentElement, redeliver);
      toast("Delivery queued: the call is made again shortly.", "success");
    } catch (error) {
      setText(this.error, errorMessage(error));
      this.error.hidden = false;
    } finally {
      delete tr.dataset.busy;
    }
  }
}

/** One endpoint: what it is, its state, its actions, its secret once, its deliveries. */
class Endpoint {
  constructor(item) {
    const headingId = `webhook-${item.id}`;
    this.title = el("h3", { className: "webhook__url", attrs: { id: headingId } });
    this.badge = el("span");
    this.description = el("p", { className: "webhook__description" });
    this.events = el("dd", { className: "webhook__events" });
    this.created = el("dd");
    this.note = el("p");
    this.secret = el("div", { className: "webhook__secret", attrs: { hidden: true } });
    this.toggleButton = button("", () => this.toggle());
    this.rotateButton = button("Rotate secret", () => this.rotate());
    this.deleteButton = button("Delete", () => this.remove(), { className: "button button--danger button--small" });
    this.deliveries = new Deliveries(item);
    this.root = el("li", { className: "webhook", dataset: { webhookId: item.id } }, [
      el("div", { className: "webhook__head" }, [this.title, this.badge]),
      this.description,
      el("dl", { className: "webhook__facts" }, [
        el("div", {}, [el("dt", { text: "Events" }), this.events]),
        el("div", {}, [el("dt", { text: "Added" }), this.created]),
      ]),
      this.note,
      this.secret,
      el("div", { className: "webhook__actions" }, [this.toggleButton, this.rotateButton, this.deleteButton]),
      this.deliveries.root,
    ]);
    this.update(item);
  }

  update(item) {
    this.item = item;
    const status = endpointStatus(item);
    this.root.dataset.enabled = String(item.enabled);
    setText(this.title, item.url);
    this.badge.className = `badge ${status.badge}`;
    setText(this.badge, status.text);
    setText(this.description, item.description);
    this.description.hidden = !item.description;
    this.events.replaceChildren(...item.events.map((event) => el("code", { className: "webhook__event", text: event })));
    setText(this.created, fmt.dateTime(item.created_at));
    this.note.className = `webhook__note webhook__note--${status.kind}`;
    setText(this.note, status.note);
    this.note.hidden = !status.note;
    const toggle = item.enabled ? "Disable" : "Enable";
    setText(this.toggleButton, toggle);
    this.toggleButton.setAttribute("aria-label", `${toggle} webhook ${item.url}`);
    this.rotateButton.setAttribute("aria-label", `Rotate secret of webhook ${item.url}`);
    this.deleteButton.setAttribute("aria-label", `Delete webhook ${item.url}`);
  }

  /** Runs one action at a time; buttons stay enabled (and focused), a second click waits. */
  async act(work) {
    if (this.root.getAttribute("aria-busy") === "true") return;
    this.root.setAttribute("aria-busy", "true");
    try {
      await work();
    } catch (error) {
      toast(errorMessage(error), "error");
    } finally {
      this.root.setAttribute("aria-busy", "false");
    }
  }

  toggle() {
    return this.act(async () => {
      const item = await postJSON(apiPath(this.item.id, this.item.enabled ? "/disable" : "/enable"), {});
      this.update(item);
      toast(item.enabled ? "Webhook enabled: calls start again." : "Webhook disabled: it gets no calls.", "success");
    });
  }

  rotate() {
    const question = `Rotate the secret of ${this.item.url}? The old secret stops working at once: the receiver must check calls with the new one.`;
    if (!window.confirm(question)) return null;
    return this.act(async () => {
      const { secret, item } = await postJSON(apiPath(this.item.id, "/rotate-secret"), {});
      this.update(item);
      this.showSecret(secret, { rotated: true });
    });
  }

  remove() {
    const question = `Delete the webhook ${this.item.url}? It gets no more calls, and its deliveries are deleted with it.`;
    if (!window.confirm(question)) return null;
    return this.act(async () => {
      await request(apiPath(this.item.id), { method: "DELETE" });
      cards.delete(this.item.id);
      this.root.remove();
      showEmpty();
      toast("Webhook deleted.", "success");
      // The card is gone: go on from the list's heading.
      view.title.focus();
    });
  }

  showSecret(secret, { rotated }) {
    const inputId = `secret-${this.item.id}`;
    const input = el("input", {
      className: "mono",
      attrs: { id: inputId, type: "text", readonly: true, spellcheck: "false", autocomplete: "off" },
    });
    input.value = secret;
    const warning = el("p", { className: "form-error", attrs: { role: "note" } }, [
      el("strong", { text: SECRET_WARNING }),
      document.createTextNode(
        `${rotated ? " The old secret no longer works." : ""} The receiver checks each call's Invoicing-Signature header with it.`,
      ),
    ]);
    this.secret.replaceChildren(
      el("div", { className: "form secret-box", attrs: { role: "group", "aria-label": "New signing secret" } }, [
        warning,
        el("div", { className: "field" }, [el("label", { text: "Signing secret", attrs: { for: inputId } }), input]),
        el("div", { className: "toolbar" }, [
          button("Copy", () => copySecret(input), { className: "button button--primary" }),
          button("Done", () => this.hideSecret(), { className: "button" }),
        ]),
      ]),
    );
    this.secret.hidden = false;
    input.focus();
    input.select();
    announce(`${rotated ? "Secret rotated" : "Webhook added"}. ${SECRET_WARNING}`);
  }

  hideSecret() {
    this.secret.replaceChildren();
    this.secret.hidden = true;
    this.rotateButton.focus();
  }
}

function showEmpty() {
  view.empty.hidden = cards.size > 0 || !view.error.hidden;
}

async function load() {
  view.list.setAttribute("aria-busy", "true");
  try {
    const { items } = await getJSON("/api/webhooks");
    // A card already shown is kept (its open deliveries, a secret still on screen).
    const shown = items.map((item) => {
      const card = cards.get(item.id);
      if (card) card.update(item);
      return card || new Endpoint(item);
    });
    cards.clear();
    for (const card of shown) cards.set(card.item.id, card);
    view.list.replaceChildren(...shown.map((card) => card.root));
    view.error.hidden = true;
  } catch (error) {
    setText(view.error, `The webhooks could not be loaded: ${errorMessage(error)}`);
    view.error.hidden = false;
  } finally {
    view.list.setAttribute("aria-busy", "false");
    showEmpty();
  }
}

const FIELD_OF_ERROR = {
  invalid_url: "url",
  webhook_url_not_allowed: "url",
  missing_field: "url",
  invalid_events: "events",
  invalid_description: "description",
};

function addError(text, field) {
  setText(view.addError, text);
  view.addError.hidden = false;
  const target = field === "events" ? view.events.querySelector("input") : view[field];
  if (field === "url" || field === "description") target.setAttribute("aria-invalid", "true");
  if (target) target.focus();
}

async function add(event) {
  event.preventDefault();
  view.addError.hidden = true;
  view.url.removeAttribute("aria-invalid");
  view.description.removeAttribute("aria-invalid");
  const url = view.url.value.trim();
  const events = [...view.events.querySelectorAll("input:checked")].map((input) => input.value);
  if (!url) return addError("Give the URL that should get the calls (https://…).", "url");
  if (!events.length) return addError("Choose at least one event.", "events");
  view.submit.disabled = true;
  try {
    const { secret, item } = await postJSON("/api/webhooks", { url, events, description: view.description.value.trim() });
    view.form.reset();
    const card = cards.get(item.id) || new Endpoint(item);
    cards.set(item.id, card);
    view.list.append(card.root);
    showEmpty();
    card.showSecret(secret, { rotated: false });
  } catch (error) {
    addError(errorMessage(error), FIELD_OF_ERROR[error.code]);
  } finally {
    view.submit.disabled = false;
  }
  return null;
}

view.form.addEventListener("submit", add);
view.refresh.addEventListener("click", load);
load();
