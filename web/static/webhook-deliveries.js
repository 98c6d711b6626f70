// The Webhooks page's deliveries: one endpoint's calls, newest first, page by page, each
// one redelivered with a button. Also the small helpers the page's two modules share.

import { getJSON, postJSON, withQuery } from "./api.js";
import * as fmt from "./format.js";
import { el, errorMessage, setText, toast } from "./ui.js";

const DELIVERIES_PAGE = 20;
const DELIVERY_STATUS = {
  pending: ["Pending", "badge--pending"],
  delivered: ["Delivered", "badge--completed"],
  failed: ["Failed", "badge--failed"],
};
/** Events said in words as well as by their code (a test call is no batch's). */
const EVENT_NAMES = { "webhook.ping": "Test" };

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

export const apiPath = (id, action = "") => `/api/webhooks/${encodeURIComponent(id)}${action}`;

export function button(text, onClick, { className = "button button--small", label } = {}) {
  const node = el("button", { className, text, attrs: { type: "button", "aria-label": label } });
  node.addEventListener("click", onClick);
  return node;
}

/** One endpoint's deliveries, newest first, in a disclosure loaded when first opened. */
export class Deliveries {
  constructor(item) {
    this.id = item.id;
    this.cursor = null;
    this.loaded = false;
    this.body = el("tbody");
    const heads = ["Event", "Status", "Attempts", "Last answer", "When"].map((name) =>
      el("th", { text: name, className: name === "Attempts" ? "num" : "", attrs: { scope: "col" } }),
    );
    heads.push(el("th", { attrs: { scope: "col" } }, [el("span", { className: "visually-hidden", text: "Actions" })]));
    this.caption = el("caption", { className: "visually-hidden" });
    this.table = el("table", { className: "table table--stack deliveries-table", attrs: { hidden: true } }, [
      this.caption,
      el("thead", {}, [el("tr", {}, heads)]),
      this.body,
    ]);
    this.empty = el("p", {
      className: "empty",
      text: "No calls yet: one is made when a batch ends with one of this endpoint's events, or when a test event is sent.",
      attrs: { hidden: true },
    });
    this.error = el("p", { className: "form-error deliveries__error", attrs: { role: "alert", hidden: true } });
    this.more = button("Load more", () => this.loadMore(), { className: "button" });
    this.more.hidden = true;
    this.refresh = button("Refresh", () => this.load(), { className: "button button--quiet button--small" });
    this.to = el("span", { className: "visually-hidden" });
    this.root = el("details", { className: "deliveries" }, [
      el("summary", { className: "deliveries__summary" }, [
        document.createTextNode("Deliveries"),
        this.to,
      ]),
      el("div", { className: "deliveries__body" }, [
        el("div", { className: "deliveries__tools" }, [el("span", { text: "Newest first" }), this.refresh]),
        this.error,
        el("div", { className: "table-wrap" }, [this.table]),
        this.empty,
        el("div", { className: "deliveries__more" }, [this.more]),
      ]),
    ]);
    this.root.addEventListener("toggle", () => {
      if (this.root.open && !this.loaded) this.load();
    });
    this.name(item.url);
  }

  /** Names the endpoint's URL in the labels (again after an edit changed it). */
  name(url) {
    setText(this.caption, `Deliveries to ${url}`);
    setText(this.to, ` to ${url}`);
    this.more.setAttribute("aria-label", `Load more deliveries to ${url}`);
    this.refresh.setAttribute("aria-label", `Refresh deliveries to ${url}`);
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

  /** A delivery's latest state in the list once loaded: its row rewritten (its button keeps
   *  the focus), or a new row on top. */
  show(delivery) {
    if (!this.loaded) return;
    const tr = [...this.body.rows].find((row) => row.dataset.deliveryId === delivery.id);
    if (tr) {
      const actions = tr.lastElementChild;
      this.fill(tr, delivery, actions, actions.querySelector("button"));
      return;
    }
    this.body.prepend(this.row(delivery));
    this.table.hidden = false;
    this.empty.hidden = true;
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
    const name = EVENT_NAMES[delivery.event_type];
    const event = name
      ? el("td", { className: "deliveries__event", dataset: { label: "Event" } }, [
          el("div", {}, [`${name} (`, el("code", { text: delivery.event_type }), ")"]),
        ])
      : el("td", { className: "mono", text: delivery.event_type, dataset: { label: "Event" } });
    const cells = [
      event,
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
