// Resetting one pending activity (docs/operations.md#resetting-an-activity):
// the reset… button of the workflow page's "Waiting on" list, for admins, and
// the line under an activity whose reset waits on its running attempt, for
// anyone. A reset counts the activity's attempts from 1 again and drops its
// backoff: POST /api/workflows/{id}/activities/{activity_id}/reset?run_id=RUN
// with {"keep_paused": bool, "clear_heartbeat_details": bool}. A small
// confirmation first (keep it paused: for a paused one only); what the
// server refuses is said in the dialog.

import { activityPath, api } from "./api.js";
import { h } from "./dom.js";

/** The dialog (made once, on first use: it is this module's). */
function theDialog() {
  let dialog = document.getElementById("activity-reset-dialog");
  if (dialog) return dialog;
  const check = (id, text, title) => h("label", { class: "check", id: `${id}-label`, title },
    h("input", { type: "checkbox", id }), text);
  dialog = h("dialog", { id: "activity-reset-dialog" },
    h("form", { method: "dialog", id: "activity-reset-form" },
      h("h2", { id: "activity-reset-title", text: "Reset the activity?" }),
      h("p", { id: "activity-reset-text", class: "muted" }),
      check("activity-reset-keep-paused", "Keep it paused",
        "Its attempts count from 1 once it is unpaused"),
      check("activity-reset-clear-details", "Clear its heartbeat details",
        "The next attempt starts without them (kept: it resumes from them)"),
      h("p", { class: "error", id: "activity-reset-error", hidden: true }),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "activity-reset-cancel", class: "ghost", text: "Close" }),
        h("button", { type: "submit", id: "activity-reset-ok", class: "primary",
          text: "Reset activity" }))));
  document.body.append(dialog);
  return dialog;
}

/** What the reset will do to `activity`, as the dialog says it, then as a toast once done. */
function words(activity, what, keepPaused) {
  const busy = activity.running || activity.awaiting_completion;
  const ask = [`Count activity ${what}'s attempts from 1 again (a fresh max_attempts) and ` +
    "drop its backoff."];
  if (activity.awaiting_completion) {
    ask.push(`Attempt ${activity.attempt} awaits completion: it stops at its next heartbeat, ` +
      "once its completer reports the cancellation (if it sends none, it runs on until it " +
      "fails or is lost); then the next starts at once, as attempt 1.");
  } else if (busy) {
    ask.push(`Attempt ${activity.attempt} stops at its next heartbeat (if it sends none, it ` +
      "runs on until it fails or is lost); then the next starts at once, as attempt 1.");
  } else if (!activity.paused) {
    ask.push("Its next attempt, attempt 1, is due now.");
  }
  if (activity.paused) ask.push("It is paused: it is unpaused too, unless you keep it paused.");
  ask.push("Not recorded in the history.");
  const done = activity.paused && keepPaused
    ? `Activity ${what} reset, still paused: its attempts count from 1 once it is unpaused.`
    : busy ? `Activity ${what} reset: if attempt ${activity.attempt} fails, the next one ` +
      "starts at once, as attempt 1."
      : `Activity ${what} reset: its next attempt, attempt 1, is due now.`;
  return { ask: ask.join(" "), done };
}

/**
 * Open the dialog for the pending activity `activity` (an entry of the
 * description's pending_activities) of workflow `id`'s run `runId`. On
 * success it closes and `onDone` is called with what to tell the user.
 */
export function openActivityReset({ id, runId, activity, onDone }) {
  const dialog = theDialog();
  const $ = (name) => document.getElementById(`activity-reset-${name}`);
  const [keepPaused, clearDetails, error, ok] =
    ["keep-paused", "clear-details", "error", "ok"].map($);
  const what = `${activity.activity_type} (ref ${activity.activity_id})`;
  $("title").textContent = `Reset activity ${what}?`;
  $("text").textContent = words(activity, what, false).ask;
  $("keep-paused-label").hidden = !activity.paused;
  keepPaused.checked = clearDetails.checked = false;
  error.hidden = true;
  ok.disabled = false;
  $("cancel").onclick = () => dialog.close();
  $("form").onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = {
      keep_paused: activity.paused && keepPaused.checked,
      clear_heartbeat_details: clearDetails.checked,
    };
    ok.disabled = true;
    try {
      await api(activityPath(id, runId, activity.activity_id, "reset"), { method: "POST", body });
      dialog.close();
      onDone(words(activity, what, body.keep_paused).done);
    } catch (e) {
      error.textContent = `Cannot reset activity ${what}: ${e.message}`;
      error.hidden = false;
    } finally {
      ok.disabled = false;
    }
  };
  dialog.showModal();
  ok.focus();
}

/** The reset… button of a pending activity (for admins): opens the dialog. */
export function activityResetButton({ id, runId, activity, onDone }) {
  return h("button", { type: "button", class: "link reset-activity", text: "reset…",
    title: "Count its attempts from 1 again and drop its backoff: its next attempt is due now",
    onclick: () => openActivityReset({ id, runId, activity, onDone }) });
}

/** The line under an activity reset while an attempt of it ran (null: none is waiting). */
export function resetRequestedLine(activity) {
  if (!activity.reset_requested) return null;
  return h("div", { class: "alert info reset-requested",
    title: "An operator reset it while this attempt ran: a result it gives is delivered as usual" },
  h("b", { text: "Reset requested:" }),
  " this attempt stops at its next heartbeat (one that sends none runs on); once it stops," +
    " fails or is lost, the next starts at once, as attempt 1.");
}

/** The line under an activity its workflow cancelled while an attempt ran (null: none). */
export function cancelRequestedLine(activity) {
  if (!activity.cancel_requested) return null;
  return h("div", { class: "alert info cancel-requested",
    title: "A workflow that waits for its cancelled activities to end " +
      "(cancellation_type wait_cancellation_completed) waits for this one" },
  h("b", { text: "Cancel requested" }),
  " by its workflow: this attempt stops at its next heartbeat (one that sends none runs on" +
    " until it ends).");
}
