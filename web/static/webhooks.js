// Webhooks page (administrators): the organization's endpoints, each with its status, its
// actions, its test calls (webhook-ping.js), an edit form and its deliveries
// (webhook-deliveries.js). A new or rotated secret is shown once, in its endpoint's card, and
// is gone with the page: nothing keeps it.

import { getJSON, postJSON, request } from "./api.js";
import * as fmt from "./format.js";
import { announce, el, errorMessage, setText, toast } from "./ui.js";
import { apiPath, button, Deliveries } from "./webhook-deliveries.js";
import { PingTest } from "./webhook-ping.js";

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
  editTemplate: $("#webhook-edit-template"),
};
/** The cards on the page by endpoint id, in the list's order. */
const cards = new Map();
/** Which field a 400 of the API is about; the others are said under the form. */
const FIELD_OF_ERROR = {
  invalid_url: "url",
  webhook_url_not_allowed: "url",
  missing_field: "url",
  invalid_events: "events",
  invalid_description: "description",
};
const NO_URL = "Give the URL that should get the calls (https://…).";
const NO_EVENT = "Choose at least one event.";

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

/**
 * An endpoint's edit form, in its card: the New endpoint form's fields (from the page's
 * template), filled from the endpoint. Save sends only what changed; each error is said
 * under its field, which is marked and focused.
 */
class EditForm {
  constructor(endpoint) {
    const { item } = endpoint;
    const prefix = `webhook-edit-${item.id}`;
    this.endpoint = endpoint;
    this.form = view.editTemplate.content.firstElementChild.cloneNode(true);
    this.form.id = prefix;
    for (const node of this.form.querySelectorAll("[data-part]")) node.id = `${prefix}-${node.dataset.part}`;
    for (const label of this.form.querySelectorAll("label[data-for]")) label.htmlFor = `${prefix}-${label.dataset.for}`;
    for (const node of this.form.querySelectorAll("[data-described-by]")) {
      node.setAttribute("aria-describedby", `${prefix}-${node.dataset.describedBy}`);
    }
    // "Edit endpoint https://…": each open form has a name of its own.
    this.form.setAttribute("aria-labelledby", `${prefix}-title ${endpoint.title.id}`);
    const part = (name) => this.form.querySelector(`[data-part="${name}"]`);
    this.fields = { url: part("url"), description: part("description") };
    this.boxes = [...this.form.querySelectorAll("input[name=events]")];
    this.errors = {
      url: part("url-error"),
      description: part("description-error"),
      events: part("events-error"),
      form: part("error"),
    };
    this.fields.url.value = item.url;
    this.fields.description.value = item.description;
    for (const box of this.boxes) box.checked = item.events.includes(box.value);
    this.form.addEventListener("submit", (event) => this.save(event));
    this.form.querySelector("[data-edit-cancel]").addEventListener("click", () => endpoint.closeEdit());
    this.form.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented) return;
      event.preventDefault();
      endpoint.closeEdit();
    });
  }

  /** The fields that differ from the endpoint, as PATCH takes them. */
  changes(url, description, events) {
    const { item } = this.endpoint;
    const changes = {};
    if (url !== item.url) changes.url = url;
    if (description !== item.description) changes.description = description;
    if ([...events].sort().join() !== [...item.events].sort().join()) changes.events = events;
    return changes;
  }

  async save(event) {
    event.preventDefault();
    if (this.form.getAttribute("aria-busy") === "true") return;
    this.clearErrors();
    const url = this.fields.url.value.trim();
    const description = this.fields.description.value.trim();
    const events = this.boxes.filter((box) => box.checked).map((box) => box.value);
    if (!url) {
      this.showError(NO_URL, "url");
      return;
    }
    if (!events.length) {
      this.showError(NO_EVENT, "events");
      return;
    }
    const changes = this.changes(url, description, events);
    if (!Object.keys(changes).length) {
      this.endpoint.closeEdit();
      toast("Nothing changed: there was nothing to save.", "info");
      return;
    }
    this.form.setAttribute("aria-busy", "true");
    try {
      const response = await request(apiPath(this.endpoint.item.id), { method: "PATCH", body: changes });
      this.endpoint.update(await response.json());
      // Closed (and perhaps opened again) while the answer was on its way: that form stays.
      if (this.endpoint.editor === this) this.endpoint.closeEdit();
      toast("Saved", "success");
    } catch (error) {
      if (this.endpoint.editor === this) this.showError(errorMessage(error), FIELD_OF_ERROR[error.code]);
      else toast(`Not saved: ${errorMessage(error)}`, "error");
    } finally {
      this.form.setAttribute("aria-busy", "false");
    }
  }

  clearErrors() {
    for (const node of Object.values(this.errors)) node.hidden = true;
    for (const input of Object.values(this.fields)) input.removeAttribute("aria-invalid");
  }

  /** The error under its field (marked and focused), or under the form when it is no field's. */
  showError(text, field) {
    const node = (field && this.errors[field]) || this.errors.form;
    setText(node, text);
    node.hidden = false;
    const input = field === "events" ? this.boxes[0] : this.fields[field];
    if (field === "url" || field === "description") input.setAttribute("aria-invalid", "true");
    if (input) input.focus();
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
    this.editButton = button("Edit", () => (this.editor ? this.closeEdit() : this.openEdit()));
    this.editButton.setAttribute("aria-expanded", "false");
    this.editor = null;
    this.toggleButton = button("", () => this.toggle());
    this.rotateButton = button("Rotate secret", () => this.rotate());
    this.deleteButton = button("Delete", () => this.remove(), { className: "button button--danger button--small" });
    this.ping = new PingTest(this, item.id);
    this.actions = el("div", { className: "webhook__actions" }, [
      this.editButton,
      this.toggleButton,
      this.rotateButton,
      this.ping.button,
      this.deleteButton,
    ]);
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
      this.actions,
      this.ping.line,
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
    this.editButton.setAttribute("aria-label", `Edit webhook ${item.url}`);
    this.ping.update(item, this.toggleButton);
    this.deliveries.name(item.url);
  }

  openEdit() {
    this.editor = new EditForm(this);
    this.ping.line.after(this.editor.form);
    this.editButton.setAttribute("aria-expanded", "true");
    this.editButton.setAttribute("aria-controls", this.editor.form.id);
    this.editor.fields.url.focus();
  }

  /** Closes the form, what it holds unsaved dropped, and goes on from the Edit button. */
  closeEdit() {
    if (this.editor) this.editor.form.remove();
    this.editor = null;
    this.editButton.setAttribute("aria-expanded", "false");
    this.editButton.removeAttribute("aria-controls");
    this.editButton.focus();
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
  if (!url) return addError(NO_URL, "url");
  if (!events.length) return addError(NO_EVENT, "events");
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
