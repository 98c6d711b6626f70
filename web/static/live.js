// Live transport building blocks: a WebSocket that reconnects with backoff, and a poller.

const BACKOFF_SECONDS = [1, 2, 4, 8, 15];
// The server's close code for too many sockets (of the user or the organization) or too many
// messages: reconnecting soon would only be refused again, so the page polls meanwhile and
// tries the socket again after 60 to 90 s (spread, so a user's refused tabs do not return at once).
const CLOSE_TOO_MANY_REQUESTS = 4429;
const REFUSED_RETRY_SECONDS = 60;
// An open socket that sends no snapshot in time is treated as down.
const FIRST_MESSAGE_TIMEOUT_MS = 5000;

export const POLL_INTERVAL_MS = 2000;

export function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

/**
 * A WebSocket kept open: `onLive` once the first message other than an error arrives (the
 * snapshot), `onDown` when it cannot connect or drops, then reconnect attempts after 1, 2, 4, 8
 * then every 15 s; after a 4429 close (too many sockets or messages), only after a minute or
 * more. `isDone()` true stops it after a close (the job finished).
 */
export class ReconnectingSocket {
  constructor(path, { onMessage, onLive, onDown, isDone = () => false }) {
    this.url = socketUrl(path);
    this.handlers = { onMessage, onLive, onDown, isDone };
    this.socket = null;
    this.attempt = 0;
    this.live = false;
    this.stopped = false;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
  }

  send(message) {
    if (!this.live || !this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  connect() {
    if (this.stopped) return;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.dropped(null);
      return;
    }
    this.socket = socket;
    let gotSnapshot = false;
    const watchdog = setTimeout(() => {
      if (!gotSnapshot && this.socket === socket) socket.close(4000, "no snapshot");
    }, FIRST_MESSAGE_TIMEOUT_MS);
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      // An error first (a refused socket, about to close) is not live and keeps the backoff.
      if (!gotSnapshot && message.type !== "error") {
        gotSnapshot = true;
        clearTimeout(watchdog);
        this.attempt = 0;
        this.live = true;
        this.handlers.onLive();
      }
      this.handlers.onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      clearTimeout(watchdog);
      if (this.socket !== socket) return;
      this.socket = null;
      this.dropped(event);
    });
  }

  dropped(event) {
    this.live = false;
    if (this.stopped || this.handlers.isDone()) return;
    this.handlers.onDown(event);
    const refused = event && event.code === CLOSE_TOO_MANY_REQUESTS;
    const delay = refused
      ? REFUSED_RETRY_SECONDS * (1 + Math.random() / 2)
      : BACKOFF_SECONDS[Math.min(this.attempt, BACKOFF_SECONDS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }
}

/** Runs `task` now and then every `intervalMs` after it settles, until stopped. */
export class Poller {
  constructor(task, intervalMs = POLL_INTERVAL_MS) {
    this.task = task;
    this.intervalMs = intervalMs;
    this.running = false;
    this.timer = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }

  async tick() {
    if (!this.running) return;
    try {
      await this.task();
    } catch (error) {
      console.warn("Polling failed; trying again shortly.", error);
    }
    if (this.running) this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }
}

/** Polls one job with If-None-Match; `onJob(job)` only when it changed, `onMissing()` on 404. */
export function jobPoller(jobId, request, onJob, onMissing = () => {}) {
  let etag = null;
  return new Poller(async () => {
    const headers = etag ? { "If-None-Match": etag } : {};
    let response;
    try {
      response = await request(`/api/batch-jobs/${encodeURIComponent(jobId)}`, { headers });
    } catch (error) {
      if (error.status === 404) {
        onMissing();
        return;
      }
      throw error;
    }
    if (response.status === 304) return;
    etag = response.headers.get("ETag");
    onJob(await response.json());
  });
}
