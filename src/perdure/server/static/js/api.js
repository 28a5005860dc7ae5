// The HTTP API, as the UI uses it. The token (if any) lives in sessionStorage:
// it is gone when the tab closes, and other sites cannot read it.

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

export const wfPath = (id) => `/workflows/${encodeURIComponent(id)}`;

/** The UI's own link to a workflow (optionally one run of it). */
export const wfHref = (id, runId) =>
  `#/workflows/${encodeURIComponent(id)}${runId ? `?run=${encodeURIComponent(runId)}` : ""}`;
