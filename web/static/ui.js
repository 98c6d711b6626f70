// Page-wide helpers: toasts, polite announcements, element building.

const TOAST_MS = 6000;
const ERROR_TOAST_MS = 10000;

/** Builds an element; text is always set with textContent, never parsed as markup. */
export function el(tag, { className, text, attrs, dataset } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  Object.assign(node.dataset, dataset || {});
  for (const child of children) if (child) node.append(child);
  return node;
}

export function setText(node, text) {
  const value = String(text);
  if (node && node.textContent !== value) node.textContent = value;
}

/** A message in the toast region (role=status, polite); kind: "info" | "success" | "error". */
export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  if (!region) return;
  const close = el("button", {
    className: "toast__close",
    text: "×",
    attrs: { type: "button", "aria-label": "Dismiss notification" },
  });
  const item = el("div", { className: `toast toast--${kind}`, dataset: { toast: kind } }, [
    el("span", { className: "toast__text", text: message }),
    close,
  ]);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  region.append(item);
  let timer = setTimeout(remove, kind === "error" ? ERROR_TOAST_MS : TOAST_MS);
  // Keep it while the pointer or focus is on it, so it can be read.
  const hold = () => clearTimeout(timer);
  const release = () => {
    clearTimeout(timer);
    timer = setTimeout(remove, TOAST_MS);
  };
  item.addEventListener("mouseenter", hold);
  item.addEventListener("focusin", hold);
  item.addEventListener("mouseleave", release);
  item.addEventListener("focusout", release);
}

/** A polite screen-reader announcement (not shown). */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Clearing first makes repeated identical messages announced again.
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export function errorMessage(error) {
  return (error && error.message) || "Something went wrong.";
}
