// The HTTP API, as the UI uses it (readEvents: its event streams). The token (if
// any) lives in sessionStorage: it is gone when the tab closes, and other sites
// cannot read it.

const TOKEN_KEY = "perdure.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function messageOf(status, body) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  return `HTTP ${status}`;
}

/** Call the API; resolve with the JSON body or reject with an ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached", null);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, messageOf(response.status, data), data);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("perdure:auth-needed"));
    throw error;
  }
  return data;
}

/**
 * Read a Server-Sent Events response (text/event-stream) of the API: call
 * onEvent({event, id, data}) for each event, resolve when the response ends.
 * fetch, not EventSource: EventSource cannot send the token, and the token
 * must not go into a URL. Rejects with an ApiError for an error answer.
 */
export async function readEvents(path, { signal, onEvent }) {
  const headers = { Accept: "text/event-stream" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`api${path}`, { headers, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached", null);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("perdure:auth-needed"));
    throw new ApiError(response.status, messageOf(response.status, data), data);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      // One event: "field: value" lines ("data" may repeat); ":" starts a comment.
      const event = { event: "message", id: null, data: [] };
      for (const line of buffer.slice(0, cut).split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(text);
        else if (field === "event") event.event = text;
        else if (field === "id") event.id = text;
      }
      buffer = buffer.slice(cut + 2);
      if (event.data.length) onEvent({ ...event, data: event.data.join("\n") });
    }
  }
}

export const wfPath = (id) => `/workflows/${encodeURIComponent(id)}`;

/**
 * The route of an action (complete, fail, pause, unpause, reset, options) on
 * the pending activity `activityId` of workflow `id`'s run `runId`: by the
 * run's id, so that once that run has ended the server says so (404) rather
 * than acting on a newer run's activity.
 */
export const activityPath = (id, runId, activityId, action) =>
  `${wfPath(id)}/activities/${encodeURIComponent(activityId)}/${action}` +
  `?run_id=${encodeURIComponent(runId)}`;

/** The UI's own link to a workflow (optionally one run of it). */
export const wfHref = (id, runId) =>
  `#/workflows/${encodeURIComponent(id)}${runId ? `?run=${encodeURIComponent(runId)}` : ""}`;
