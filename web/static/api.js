// JSON API calls: same-origin cookie auth, one error shape, 401 ends the session.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    // The error's other fields, such as `count` and `jobs` of orders_in_active_job.
    this.details = details;
  }
}

let leaving = false;

function sessionEnded() {
  if (!leaving) {
    leaving = true;
    window.location.assign("/login");
  }
  // Never settles: the page is going away, callers need not handle anything.
  return new Promise(() => {});
}

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = `The server answered ${response.status}.`;
  let details = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      const { code: given, message: said, ...rest } = body.error;
      code = given || code;
      message = said || message;
      details = rest;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the generic message.
  }
  return new ApiError(response.status, code, message, details);
}

/** Sends a request and returns the Response (304 included); throws ApiError on 4xx/5xx. */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...headers },
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The server cannot be reached. Check your connection.");
  }
  if (response.status === 401) return sessionEnded();
  if (!response.ok && response.status !== 304) throw await errorOf(response);
  return response;
}

export async function getJSON(path, options) {
  const response = await request(path, options);
  return response.json();
}

export async function postJSON(path, body) {
  const response = await request(path, { method: "POST", body });
  return response.json();
}

/** A path with query parameters; null, undefined and "" values are left out. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
