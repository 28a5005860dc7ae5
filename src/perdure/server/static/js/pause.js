// Pausing one pending activity (docs/operations.md#pausing-one-activity): the
// pause and unpause buttons of the workflow page's "Waiting on" list, for
// admins. A paused activity starts no attempt until it is unpaused (one running
// runs on): POST /api/workflows/{id}/activities/{activity_id}/pause, and
// /unpause with {"reset_attempts": bool} (true: its attempts counted from 1
// again, refused with a 409 while one of them runs). No dialog: each undoes
// the other; the buttons are disabled while a request is on its way.

import { activityPath, api } from "./api.js";
import { h } from "./dom.js";

/**
 * The buttons for the pending activity `activity` (an entry of the
 * description's pending_activities) of workflow `id`'s run `runId` — the run
 * the page shows, by its id: once that run has ended, the server says so
 * (404) rather than pausing a newer run's activity. *pause* for one that is
 * not paused; *unpause* and *unpause, reset attempts* for one that is. On
 * success `onDone` is called with what to tell the user, on an error
 * `onError` with the server's word.
 */
export function pauseButtons({ id, runId, activity, onDone, onError }) {
  const what = `${activity.activity_type} (ref ${activity.activity_id})`;
  let buttons = [];
  async function post(action, body, done, failed) {
    const was = buttons.map((b) => b.disabled);
    for (const b of buttons) b.disabled = true;
    try {
      await api(activityPath(id, runId, activity.activity_id, action), { method: "POST", body });
      onDone(done);
    } catch (e) {
      onError(`${failed}: ${e.message}`);
    } finally {
      buttons.forEach((b, i) => { b.disabled = was[i]; });
    }
  }
  if (!activity.paused) {
    buttons = [h("button", { type: "button", class: "link pause-activity", text: "pause",
      title: "Start no attempt of this activity until it is unpaused (one running runs on)",
      onclick: () => post("pause", undefined,
        `Activity ${what} paused: no attempt starts until it is unpaused.`,
        `Cannot pause activity ${what}`) })];
    return buttons;
  }
  // Counting from 1 again is refused while an attempt runs (or awaits completion).
  const busy = activity.running || activity.awaiting_completion;
  buttons = [
    h("button", { type: "button", class: "link unpause-activity", text: "unpause",
      title: "Let its attempts start again: the next one is due now",
      onclick: () => post("unpause", { reset_attempts: false },
        `Activity ${what} unpaused: its next attempt is due now.`,
        `Cannot unpause activity ${what}`) }),
    h("button", { type: "button", class: "link unpause-reset", text: "unpause, reset attempts",
      disabled: busy, title: busy
        ? "Not while an attempt of it runs: its attempts cannot be counted from 1 again"
        : "Let its attempts start again, counted from 1 (a fresh max_attempts): the next one is due now",
      onclick: () => post("unpause", { reset_attempts: true },
        `Activity ${what} unpaused, its attempts counted from 1 again: its next attempt is due now.`,
        `Cannot unpause activity ${what}`) }),
  ];
  return buttons;
}
