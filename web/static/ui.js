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

/**
 * A message in the toast row (role=status, polite); kind: "info" | "success" | "error".
 *
 * One at a time: a new message replaces the one shown, so messages never pile up. The row
 * sits below the scrolling page, in space of its own (see app.css), so it covers nothing.
 */
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
  let timer = null;
  const remove = () => {
    clearTimeout(timer);
    // Focus on the toast would be lost with it: hand it to the page.
    const hadFocus = item.contains(document.activeElement);
    item.remove();
    if (hadFocus) document.getElementById("main")?.focus();
  };
  const later = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(remove, ms);
  };
  close.addEventListener("click", remove);
  // Keep it while the pointer or focus is on it, so it can be read.
  item.addEventListener("mouseenter", () => clearTimeout(timer));
  item.addEventListener("focusin", () => clearTimeout(timer));
  item.addEventListener("mouseleave", () => later(TOAST_MS));
  item.addEventListener("focusout", () => later(TOAST_MS));
  region.replaceChildren(item);
  later(kind === "error" ? ERROR_TOAST_MS : TOAST_MS);
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

// The page scrolls inside .app__scroll (see app.css), which the browser's scroll keys reach
// only once something in it has focus. Until then (a fresh page, focus back on the body),
// they scroll it here, as they would scroll the window.
const SCROLL_KEYS = new Set(["PageDown", "PageUp", "ArrowDown", "ArrowUp", " ", "Home", "End"]);

document.addEventListener("keydown", (event) => {
  const scroller = document.querySelector("body.app > .app__scroll");
  if (!scroller || event.defaultPrevented || !SCROLL_KEYS.has(event.key)) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (document.activeElement !== document.body && document.activeElement !== null) return;
  const page = Math.max(scroller.clientHeight - 40, 40);
  const steps = { PageDown: page, PageUp: -page, ArrowDown: 40, ArrowUp: -40, " ": event.shiftKey ? -page : page };
  if (event.key === "Home") scroller.scrollTo({ top: 0 });
  else if (event.key === "End") scroller.scrollTo({ top: scroller.scrollHeight });
  else scroller.scrollBy({ top: steps[event.key] });
  event.preventDefault();
});
