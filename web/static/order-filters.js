// The Orders page's month-end filters: order date range, customer, currency. Kept in the URL's
// query string (reload and Back keep them); the same names are the list's query parameters and
// a batch's `filter` fields.

import { getJSON, withQuery } from "./api.js";
import { el } from "./ui.js";

const HISTORY_PAUSE_MS = 2000;

export const FILTER_FIELDS = ["order_date_from", "order_date_to", "customer_id", "currency"];
const CUSTOMER_PAGE = 500;
const MOST_CUSTOMERS = 2000;

/** The filters the URL names (valid-looking values only; the API checks them again). */
export function filterFromUrl(search = window.location.search) {
  const params = new URLSearchParams(search);
  const filter = {};
  for (const name of FILTER_FIELDS) {
    const value = (params.get(name) || "").trim();
    if (value) filter[name] = name === "currency" ? value.toUpperCase() : value;
  }
  return filter;
}

function sameFilter(a, b) {
  return FILTER_FIELDS.every((name) => (a[name] || "") === (b[name] || ""));
}

export class FilterBar {
  /** `onChange(filter)` runs when the user changes a filter or goes Back/Forward to another. */
  constructor(form, clearButton, onChange) {
    this.form = form;
    this.clearButton = clearButton;
    this.onChange = onChange;
    this.filter = filterFromUrl();
    this.fill();
    form.addEventListener("change", () => this.changed());
    form.addEventListener("submit", (event) => event.preventDefault());
    clearButton.addEventListener("click", () => this.clear());
    window.addEventListener("popstate", () => {
      const filter = filterFromUrl();
      if (sameFilter(filter, this.filter)) return;
      this.filter = filter;
      this.fill();
      this.onChange(this.filter);
    });
  }

  input(name) {
    return this.form.elements.namedItem(name);
  }

  fill() {
    for (const name of FILTER_FIELDS) {
      const input = this.input(name);
      const value = this.filter[name] || "";
      if (input.tagName === "SELECT") this.ensureOption(input, value, value);
      input.value = value;
    }
    this.bound();
  }

  /** A value the list does not offer (yet) stays choosable, so the URL's filter shows. */
  ensureOption(select, value, label) {
    if (!value || [...select.options].some((option) => option.value === value)) return;
    select.append(el("option", { text: label, attrs: { value } }));
  }

  /** Each date input cannot pass the other: the browser's picker says so before the API does. */
  bound() {
    this.input("order_date_to").min = this.filter.order_date_from || "";
    this.input("order_date_from").max = this.filter.order_date_to || "";
    this.clearButton.hidden = Object.keys(this.filter).length === 0;
  }

  read() {
    const filter = {};
    for (const name of FILTER_FIELDS) {
      const value = this.input(name).value.trim();
      if (value) filter[name] = value;
    }
    return filter;
  }

  changed() {
    const filter = this.read();
    if (sameFilter(filter, this.filter)) return;
    this.filter = filter;
    this.bound();
    // One history entry per pause: arrowing through a select's choices (a change each) within
    // a couple of seconds replaces the entry instead of adding one per step, so Back returns
    // to the filter before, not to every choice passed over.
    const now = Date.now();
    const url = withQuery(window.location.pathname, filter);
    if (now - (this.lastPush || 0) < HISTORY_PAUSE_MS) window.history.replaceState(null, "", url);
    else window.history.pushState(null, "", url);
    this.lastPush = now;
    this.onChange(this.filter);
  }

  clear() {
    for (const name of FILTER_FIELDS) this.input(name).value = "";
    this.changed();
    // The button hides itself: the keyboard focus goes to the first filter instead.
    this.input(FILTER_FIELDS[0]).focus();
  }

  /** Fills the customer and currency choices from the organization's customers. */
  async loadChoices() {
    const customers = [];
    let cursor = null;
    do {
      const page = await getJSON(withQuery("/api/customers", { limit: CUSTOMER_PAGE, cursor }));
      customers.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && customers.length < MOST_CUSTOMERS);
    const customer = this.input("customer_id");
    const currency = this.input("currency");
    const chosen = { customer: customer.value, currency: currency.value };
    customer.replaceChildren(
      el("option", { text: "All customers", attrs: { value: "" } }),
      ...customers.map((c) => el("option", { text: c.name, attrs: { value: c.id } })),
    );
    const currencies = [...new Set(customers.map((c) => c.currency))].sort();
    currency.replaceChildren(
      el("option", { text: "All currencies", attrs: { value: "" } }),
      ...currencies.map((code) => el("option", { text: code, attrs: { value: code } })),
    );
    this.ensureOption(customer, chosen.customer, "The chosen customer");
    this.ensureOption(currency, chosen.currency, chosen.currency);
    customer.value = chosen.customer;
    currency.value = chosen.currency;
  }
}
