// Updates (docs/workflows.md#updates) in the UI: how the history events that
// carry one read — its request is a SignalReceived under a reserved name, its
// answer an UpdateReplied — and the Update… dialog, which sends one and shows
// the workflow's answer, or its rejection, in place.

import { api, ApiError, wfPath } from "./api.js";
import { clear, h, json } from "./dom.js";

// As perdure._history.updates.UPDATE_SIGNAL_PREFIX.
const PREFIX = "perdure.update:";
// Seconds the dialog waits for an answer (the API holds a request 60 s at most).
const WAIT_SECONDS = 30;

/** An update's request, {name, id, payload}, if the event is one (else null). */
export function updateRequest(e) {
  if (e.type !== "SignalReceived" || typeof e.name !== "string" || !e.name.startsWith(PREFIX)) {
    return null;
  }
  const body = e.payload; // (an envelope the server could not open is not read as one)
  if (!body || typeof body !== "object" || Array.isArray(body)) return null;
  const keys = Object.keys(body).sort();
  if (keys.join() !== "payload,update_id" || typeof body.update_id !== "string" || !body.update_id) {
    return null;
  }
  return { name: e.name.slice(PREFIX.length), id: body.update_id, payload: body.payload };
}

/** What an UpdateReplied says: "→ value" or "rejected: message". */
export function updateAnswer(e) {
  return e.failure !== null && e.failure !== undefined
    ? `rejected: ${e.failure}` : `→ ${json(e.result)}`;
}

/** The history table's detail of an update's request or answer; null for other events. */
export function updateDetail(e) {
  if (e.type === "UpdateReplied") return `${e.name} (${e.update_id}) ${updateAnswer(e)}`;
  const request = updateRequest(e);
  return request ? `update ${request.name} (${request.id}) ${json(request.payload)}` : null;
}

/**
 * The Update… dialog for the run `desc` of workflow `id` (`q`: the page's
 * "?run_id=…", or ""), its name field set to `name`. It stays open to show the
 * answer or the rejection; `onAnswered` is called then (the page refreshes).
 * No answer in time leaves the request queued: the dialog keeps its update id,
 * so that sending again waits for that request's answer instead of sending another.
 */
export function openUpdate({ id, q, desc, name, onAnswered }) {
  const dialog = document.getElementById("update-dialog");
  const nameInput = document.getElementById("update-name");
  const payloadInput = document.getElementById("update-payload");
  const idInput = document.getElementById("update-id");
  const error = document.getElementById("update-error");
  const answer = document.getElementById("update-answer");
  const send = document.getElementById("update-send");
  const names = clear(document.getElementById("update-names"));
  for (const n of desc.waiting_updates || []) names.append(h("option", { value: n }));
  nameInput.value = name;
  payloadInput.value = "null";
  idInput.value = "";
  error.hidden = true;
  clear(answer).hidden = true;
  document.getElementById("update-cancel").onclick = () => dialog.close();
  document.getElementById("update-form").onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    clear(answer).hidden = true;
    let value;
    try {
      value = JSON.parse(payloadInput.value.trim() || "null");
    } catch (e) {
      error.textContent = `The payload is not valid JSON: ${e.message}. Strings need quotes: "yes".`;
      error.hidden = false;
      return;
    }
    const updateName = nameInput.value.trim();
    const params = new URLSearchParams(q.replace(/^\?/, ""));
    params.set("timeout", String(WAIT_SECONDS));
    if (idInput.value.trim()) params.set("update_id", idInput.value.trim());
    send.disabled = true;
    send.textContent = "Waiting for the answer…";
    try {
      const done = await api(`${wfPath(id)}/updates/${encodeURIComponent(updateName)}?${params}`,
        { method: "POST", body: value });
      idInput.value = ""; // (answered: sending again is a new request)
      answer.append(h("p", { class: "muted" }, "Answered ", h("b", { text: updateName }),
        ` (update ${done.update_id}):`), h("pre", { class: "json", text: json(done.result, true) }));
      answer.hidden = false;
      onAnswered();
    } catch (e) {
      const body = e instanceof ApiError ? e.body : null;
      if (body && body.rejected) {
        idInput.value = "";
        error.textContent = `Rejected (update ${body.update_id}): ${body.message}`;
        onAnswered();
      } else if (body && body.timed_out) {
        idInput.value = body.update_id;
        error.textContent = `No answer within ${WAIT_SECONDS} s; the request stays queued. ` +
          "Send again (with this update id) to wait for its answer.";
      } else {
        error.textContent = e.message;
      }
      error.hidden = false;
    } finally {
      send.disabled = false;
      send.textContent = "Send update";
    }
  };
  dialog.showModal();
  (name ? payloadInput : nameInput).focus();
}
