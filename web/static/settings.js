// Settings page: the user's API tokens in this organization (a new token is shown once), and
// when they get an email about the batches they start.

import { getJSON, postJSON, request } from "./api.js";
import * as fmt from "./format.js";
import { announce, el, errorMessage, setText, toast } from "./ui.js";

const $ = (selector) => document.querySelector(selector);
const view = {
  table: $(".tokens-table"),
  body: $("[data-tokens-body]"),
  empty: $("[data-tokens-empty]"),
  error: $("[data-tokens-error]"),
  refresh: $("[data-tokens-refresh]"),
  form: $("[data-create-form]"),
  name: $("[data-token-name]"),
  createError: $("[data-create-error]"),
  submit: $("[data-create-submit]"),
  reveal: $("[data-new-token]"),
  revealName: $("[data-new-token-name]"),
  value: $("[data-new-token-value]"),
  copy: $("[data-copy-token]"),
  hide: $("[data-hide-token]"),
  notifyForm: $("[data-notify-form]"),
  notifyChoices: $("[data-notify-choices]"),
  notifyError: $("[data-notify-error]"),
  notifySave: $("[data-notify-save]"),
  notifyStatus: $("[data-notify-status]"),
};

function statusBadge(item) {
  return item.revoked_at
    ? el("span", { className: "badge badge--cancelled", text: "Revoked", attrs: { title: fmt.dateTime(item.revoked_at) } })
    : el("span", { className: "badge badge--completed", text: "Active" });
}

function revokeButton(item) {
  if (item.revoked_at) return null;
  const button = el("button", {
    className: "button button--danger button--small",
    text: "Revoke",
    attrs: { type: "button", "aria-label": `Revoke token ${item.name}` },
  });
  button.addEventListener("click", () => revoke(item, button));
  return button;
}

function row(item) {
  return el("tr", { dataset: { tokenId: item.id } }, [
    el("td", { text: item.name, dataset: { label: "Name" } }),
    el("td", { text: fmt.dateTime(item.created_at), dataset: { label: "Created" } }),
    el("td", { text: item.last_used_at ? fmt.dateTime(item.last_used_at) : "Never", dataset: { label: "Last used" } }),
    el("td", { dataset: { label: "Status" } }, [statusBadge(item)]),
    el("td", { className: "num" }, [revokeButton(item)]),
  ]);
}

async function load() {
  view.table.setAttribute("aria-busy", "true");
  try {
    const { items } = await getJSON("/api/tokens");
    view.body.replaceChildren(...items.map(row));
    view.empty.hidden = items.length > 0;
    view.error.hidden = true;
  } catch (error) {
    setText(view.error, `The tokens could not be loaded: ${errorMessage(error)}`);
    view.error.hidden = false;
  } finally {
    view.table.setAttribute("aria-busy", "false");
  }
}

async function revoke(item, button) {
  if (!window.confirm(`Revoke the token “${item.name}”? Anything using it stops working at once.`)) return;
  button.disabled = true;
  try {
    await postJSON(`/api/tokens/${encodeURIComponent(item.id)}/revoke`, {});
    toast(`Token “${item.name}” revoked.`, "success");
    await load();
    // The button is gone with the re-drawn list: go on from the list's heading.
    document.getElementById("tokens-title").focus();
  } catch (error) {
    button.disabled = false;
    toast(errorMessage(error), "error");
  }
}

function showToken(token, item) {
  view.value.value = token;
  setText(view.revealName, `“${item.name}”`);
  view.reveal.hidden = false;
  view.value.focus();
  view.value.select();
  announce("Token created. Copy it now: it will not be shown again.");
}

function hideToken() {
  view.value.value = "";
  view.reveal.hidden = true;
  view.name.focus();
}

async function create(event) {
  event.preventDefault();
  const name = view.name.value.trim();
  view.createError.hidden = true;
  view.name.removeAttribute("aria-invalid");
  if (!name) {
    setText(view.createError, "Give the token a name, so you can tell it apart later.");
    view.createError.hidden = false;
    view.name.setAttribute("aria-invalid", "true");
    view.name.focus();
    return;
  }
  view.submit.disabled = true;
  try {
    const { token, item } = await postJSON("/api/tokens", { name });
    view.form.reset();
    showToken(token, item);
    await load();
  } catch (error) {
    setText(view.createError, errorMessage(error));
    view.createError.hidden = false;
  } finally {
    view.submit.disabled = false;
  }
}

async function copy() {
  try {
    await navigator.clipboard.writeText(view.value.value);
    toast("Token copied to the clipboard.", "success");
  } catch {
    // No clipboard permission (or not a secure context): leave it selected to copy by hand.
    view.value.focus();
    view.value.select();
    toast("Copy it by hand: it is selected.", "info");
  }
}

// ---- email notifications ----------------------------------------------------------------

const NOTIFICATIONS = "/api/me/notifications";

function showNotifyError(text) {
  setText(view.notifyError, text);
  view.notifyError.hidden = false;
}

function chooseEmail(value) {
  const radio = view.notifyChoices.querySelector(`input[value="${CSS.escape(value)}"]`);
  if (radio) radio.checked = true;
}

async function loadNotifications() {
  view.notifyChoices.setAttribute("aria-busy", "true");
  try {
    const { email } = await getJSON(NOTIFICATIONS);
    chooseEmail(email);
    view.notifyChoices.disabled = false;
    view.notifySave.disabled = false;
    view.notifyError.hidden = true;
  } catch (error) {
    showNotifyError(`Your email choice could not be loaded: ${errorMessage(error)}`);
  } finally {
    view.notifyChoices.setAttribute("aria-busy", "false");
  }
}

async function saveNotifications(event) {
  event.preventDefault();
  const chosen = view.notifyChoices.querySelector("input[name='email']:checked");
  if (!chosen) return;
  view.notifyError.hidden = true;
  setText(view.notifyStatus, "");
  view.notifySave.disabled = true;
  try {
    const response = await request(NOTIFICATIONS, { method: "PUT", body: { email: chosen.value } });
    chooseEmail((await response.json()).email);
    // The status region is polite and visible: "Saved" is read out once and stays in sight.
    setText(view.notifyStatus, "Saved");
  } catch (error) {
    showNotifyError(`Not saved: ${errorMessage(error)}`);
  } finally {
    view.notifySave.disabled = false;
  }
}

view.form.addEventListener("submit", create);
view.refresh.addEventListener("click", load);
view.copy.addEventListener("click", copy);
view.hide.addEventListener("click", hideToken);
view.notifyForm.addEventListener("submit", saveNotifications);
// A choice changed after saving is not saved yet: "Saved" would say otherwise.
view.notifyChoices.addEventListener("change", () => setText(view.notifyStatus, ""));
load();
loadNotifications();
