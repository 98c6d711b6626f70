// The Webhooks page's test calls: an endpoint card's "Send test event" button and the line
// that says how the call went. The worker makes the call within about a second, once; the
// card asks for the endpoint's newest deliveries every second (for up to 15 s) until that one
// is no longer pending. One loop per card: it stops when the card is gone, and while the page
// is hidden (it goes on, with its 15 s afresh, once the page is shown again).

import { getJSON, postJSON, withQuery } from "./api.js";
import { announce, el, errorMessage } from "./ui.js";
import { apiPath, button } from "./webhook-deliveries.js";

const POLL_MS = 1000;
const WAIT_MS = 15000;
/** The test call is the endpoint's newest delivery, or among the few newest. */
const RECENT = 5;
const WAITING = ["pending", "Test event sent", "waiting for the receiver's answer…"];
const NO_ANSWER = ["pending", "No result yet", "the test call is still pending. Its result will show in Deliveries."];

/** Tests whose loop stopped because the page was hidden. */
const paused = new Set();
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  for (const test of [...paused]) test.watch({ afresh: true });
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the card says of a test call that is no longer pending: [kind, lead, details]. */
function outcome(delivery) {
  const delivered = delivery.status === "delivered";
  const details = [];
  if (delivery.last_status_code !== null && delivery.last_status_code !== undefined) {
    details.push(`HTTP ${delivery.last_status_code}`);
  }
  if (!delivered && delivery.last_error) details.push(delivery.last_error);
  return [delivered ? "delivered" : "failed", delivered ? "Test call delivered" : "Test call failed", details.join(" — ")];
}

/** An endpoint card's test calls; `endpoint` is its card (item, root, deliveries, update). */
export class PingTest {
  constructor(endpoint, id) {
    this.endpoint = endpoint;
    this.button = button("Send test event", () => this.send());
    this.line = el("p", { className: "webhook__ping", attrs: { id: `webhook-${id}-ping`, hidden: true } });
    /** The call waited for: { id, until } (a newer test call takes its place), or null. */
    this.target = null;
    this.looping = false;
    this.sending = false;
  }

  /** Follows the endpoint: the button names its URL, and is gone while it is disabled (the
   *  API refuses a test call then), its focus handed to `fallback`. */
  update(item, fallback) {
    this.button.setAttribute("aria-label", `Send test event to ${item.url}`);
    if (!item.enabled && document.activeElement === this.button) fallback.focus();
    this.button.hidden = !item.enabled;
  }

  /** The line (the button's description too), said politely unless `quiet`. */
  show(kind, lead, details = "", { quiet = false } = {}) {
    this.line.className = `webhook__ping webhook__ping--${kind}`;
    this.line.replaceChildren(el("strong", { text: details ? `${lead}:` : lead }), details ? ` ${details}` : "");
    this.line.hidden = false;
    this.button.setAttribute("aria-describedby", this.line.id);
    if (!quiet) announce(this.line.textContent);
  }

  async send() {
    if (this.sending) return;
    this.sending = true;
    const { item, deliveries } = this.endpoint;
    try {
      const delivery = await postJSON(apiPath(item.id, "/ping"), {});
      this.target = { id: delivery.id, until: Date.now() + WAIT_MS };
      this.show(...WAITING, { quiet: true });
      announce(`Test event sent to ${item.url}.`);
      deliveries.show(delivery);
      this.watch();
    } catch (error) {
      this.show("failed", "Test event not sent", errorMessage(error));
      // Disabled since the page was loaded: the card says so (and loses the button).
      if (error.code === "webhook_disabled") await this.refreshEndpoint();
    } finally {
      this.sending = false;
    }
  }

  /** The card's one loop: asks until the call is settled, the time is up, the card is gone or
   *  the page hidden. A call made meanwhile is waited for by the same loop. */
  async watch({ afresh = false } = {}) {
    paused.delete(this);
    if (afresh && this.target) this.target.until = Date.now() + WAIT_MS;
    if (this.looping) return;
    this.looping = true;
    try {
      while (this.target) {
        await sleep(POLL_MS);
        if (!this.endpoint.root.isConnected) {
          this.target = null;
          return;
        }
        if (document.visibilityState === "hidden") {
          paused.add(this);
          return;
        }
        await this.poll(this.target);
      }
    } finally {
      this.looping = false;
    }
  }

  async poll(target) {
    let found = null;
    try {
      const path = withQuery(apiPath(this.endpoint.item.id, "/deliveries"), { limit: RECENT });
      const { items } = await getJSON(path);
      found = items.find((delivery) => delivery.id === target.id) || null;
    } catch (error) {
      if (error.status === 404) {
        this.target = null;
        this.show("failed", "No result", errorMessage(error));
        return;
      }
      // Anything else (the network, a restart): asked again in a second.
    }
    if (this.target !== target) return; // a newer test call: it is the one waited for now
    if (found && found.status !== "pending") {
      this.target = null;
      const [kind, lead, details] = outcome(found);
      this.show(kind, lead, details);
      this.endpoint.deliveries.show(found);
      // The call counts for the endpoint's health (failing since…): the card follows.
      await this.refreshEndpoint();
    } else if (Date.now() >= target.until) {
      this.target = null;
      this.show(...NO_ANSWER);
    }
  }

  /** The endpoint as the API has it now, in its card (the list is left as it is). */
  async refreshEndpoint() {
    try {
      const { items } = await getJSON("/api/webhooks");
      const item = items.find((candidate) => candidate.id === this.endpoint.item.id);
      if (item && this.endpoint.root.isConnected) this.endpoint.update(item);
    } catch {
      // The card stays as it was; Refresh shows the endpoint anew.
    }
  }
}
