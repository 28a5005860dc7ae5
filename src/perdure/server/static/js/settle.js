// Settling a pending activity by hand (docs/operations.md#settling-an-activity-by-hand):
// the complete… and fail… dialog of the workflow page's "Waiting on" list, for
// admins. It ends the activity now, by the workflow id and the activity's id,
// whatever the activity waits for: POST /api/workflows/{id}/activities/{activity_id}/
// complete (with a result) or /fail (with a message and a type; not retried).

import { activityPath, api } from "./api.js";

const WORDS = {
  complete: {
    ok: "Complete activity", done: "completed",
    text: "now with this result: the workflow's await returns it. An attempt running on a " +
      "worker runs on, and its own result is refused.",
  },
  fail: {
    ok: "Fail activity", done: "failed",
    text: "now with this error, not retried: the workflow's await raises ActivityError.",
  },
};

/**
 * The dialog that completes or fails (`action`: "complete" or "fail") the
 * pending activity `activity` (an entry of the description's
 * pending_activities) of workflow `id`'s run `runId` — the run the page
 * shows, by its id: once that run has ended, the server says so (404) rather
 * than settling a newer run's activity. On success the dialog closes and
 * `onDone` is called with what to tell the user; an error stays in the dialog.
 */
export function openSettle({ id, runId, activity, action, onDone }) {
  const dialog = document.getElementById("settle-dialog");
  const resultInput = document.getElementById("settle-result");
  const messageInput = document.getElementById("settle-message");
  const typeInput = document.getElementById("settle-type");
  const error = document.getElementById("settle-error");
  const ok = document.getElementById("settle-ok");
  const words = WORDS[action];
  const what = `${activity.activity_type} (ref ${activity.activity_id})`;
  const completing = action === "complete";
  document.getElementById("settle-title").textContent =
    `${completing ? "Complete" : "Fail"} activity ${what}?`;
  document.getElementById("settle-text").textContent = `End activity ${what} ${words.text}`;
  document.getElementById("settle-result-label").hidden = !completing;
  document.getElementById("settle-message-label").hidden = completing;
  document.getElementById("settle-type-label").hidden = completing;
  messageInput.required = !completing; // (a hidden required field would block the form)
  resultInput.value = "null";
  messageInput.value = "";
  typeInput.value = "";
  error.hidden = true;
  ok.textContent = words.ok;
  ok.disabled = false;
  document.getElementById("settle-cancel").onclick = () => dialog.close();
  document.getElementById("settle-form").onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    let body;
    if (completing) {
      try {
        body = { result: JSON.parse(resultInput.value.trim() || "null") };
      } catch (e) {
        error.textContent = `The result is not valid JSON: ${e.message}. Strings need quotes: "yes".`;
        error.hidden = false;
        return;
      }
    } else {
      if (!messageInput.value.trim()) {
        error.textContent = "Say what went wrong: the message is required.";
        error.hidden = false;
        return;
      }
      body = { message: messageInput.value };
      if (typeInput.value.trim()) body.type = typeInput.value.trim();
    }
    ok.disabled = true;
    try {
      await api(activityPath(id, runId, activity.activity_id, action), { method: "POST", body });
      dialog.close();
      onDone(`Activity ${what} ${words.done}.`);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      ok.disabled = false;
    }
  };
  dialog.showModal();
  (completing ? resultInput : messageInput).focus();
}
