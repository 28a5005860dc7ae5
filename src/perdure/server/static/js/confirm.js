// The dialog that asks an operator before they cancel, terminate or reset a
// run (the workflow page's buttons), and a reset's choice of the event to go
// back to: the latest of those it may go back to are listed.

import { api, wfHref, wfPath } from "./api.js";

// The reset dialog lists the latest of the events a reset may go back to.
const SHOWN_POINTS = 12;

const CONFIRM = {
  cancel: {
    title: "Cancel", ok: "Cancel workflow", keep: "Keep it running", done: "Cancellation requested.",
    text: "The workflow sees a cancellation at its current step and may run compensations before it ends.",
  },
  terminate: {
    title: "Terminate", ok: "Terminate", keep: "Keep it running", done: "Workflow terminated.",
    text: "The run ends at once: no more workflow code runs, and no compensation either.",
  },
  reset: {
    title: "Reset", ok: "Reset", keep: "Leave it as it is",
    text: "A new run takes over this run's history up to a turn and runs on from there with the " +
      "code deployed now: steps before it are not run again, and activities keep their " +
      "idempotency keys. An open run is terminated.",
  },
};

async function showResetPoints(id, desc, where) {
  // The events a reset may go back to: the latest few, and the default.
  try {
    const found = await api(`${wfPath(id)}/reset-points?run_id=${encodeURIComponent(desc.run_id)}`);
    const shown = found.points.slice(-SHOWN_POINTS);
    const earlier = found.points.length - shown.length;
    where.textContent = found.points.length
      ? `It may go back to event ${earlier ? "… " : ""}${shown.join(", ")}` +
        (earlier ? ` (and ${earlier} earlier)` : "") +
        (found.default ? `; by default, ${found.default}.` : "; name one (no default).")
      : "No event of this run can be gone back to.";
    where.hidden = false;
  } catch {
    where.hidden = true; // (the reset itself says what is wrong)
  }
}

/**
 * Ask before cancelling, terminating or resetting run ``desc`` of workflow
 * ``id`` (``q``: the page's run query), then do it: ``onDone`` refreshes the
 * page; a reset goes to the new run's page.
 */
export function confirmAction({ action, id, q, desc, toast, onDone }) {
  const dialog = document.getElementById("confirm-dialog");
  const reason = document.getElementById("confirm-reason");
  const error = document.getElementById("confirm-error");
  const eventLabel = document.getElementById("confirm-event-label");
  const eventInput = document.getElementById("confirm-event");
  const words = CONFIRM[action];
  document.getElementById("confirm-title").textContent = `${words.title} ${desc.id}?`;
  document.getElementById("confirm-text").textContent = words.text;
  document.getElementById("confirm-ok").textContent = words.ok;
  document.getElementById("confirm-cancel").textContent = words.keep;
  eventLabel.hidden = action !== "reset";
  eventInput.value = "";
  const points = document.getElementById("confirm-points");
  points.hidden = true;
  if (action === "reset") showResetPoints(id, desc, points);
  reason.value = "";
  error.hidden = true;
  document.getElementById("confirm-cancel").onclick = () => dialog.close();
  document.getElementById("confirm-form").onsubmit = async (event) => {
    event.preventDefault();
    const body = { reason: reason.value || null };
    if (action === "reset") body.to_event = eventInput.value ? Number(eventInput.value) : null;
    try {
      // The run shown, by its id: a second click finds it is no longer the latest.
      const target = action === "reset" ? `?run_id=${encodeURIComponent(desc.run_id)}` : q;
      const answer = await api(`${wfPath(id)}/${action}${target}`, { method: "POST", body });
      dialog.close();
      if (action === "reset") {
        toast(`Reset: run ${answer.run_id.slice(0, 8)}… goes on from event ${answer.at_seq}.`, "ok");
        location.hash = wfHref(id, answer.run_id);
        return;
      }
      toast(words.done, "ok");
      burst = 8;
      load();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  dialog.showModal();
}
