// "Act on all matching…" on the workflow list (admins, filtered lists only):
// cancel, terminate or reset every run the list's filters match, through
// POST /api/batch/{action}. A dry run first says how many runs match and
// names the first ones; a confirmation acts; the summary says what was done
// (skipped: ended or gone since they were chosen; failed: with the error).

import { api } from "./api.js";
import { clear, h } from "./dom.js";

const NAMED = 5; // ids the preview names
const ACTIONS = {
  cancel: {
    verb: "Cancel", done: "Cancellation requested for",
    text: "Each open run sees a cancellation at its current step and may run " +
      "compensations before it ends.",
  },
  terminate: {
    verb: "Terminate", done: "Terminated",
    text: "Each open run ends at once: no more workflow code runs, and no compensation either.",
  },
  reset: {
    verb: "Reset", done: "Reset",
    text: "Each run is run again in a new run from its default point (the latest turn " +
      "that took no failure), with the code deployed now; an open one is terminated.",
  },
};

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The filters as the batch's body takes them (the list's, but for paging). */
function filterBody(filters) {
  const body = {};
  if (filters.status) body.status = filters.status;
  if (filters.type) body.type = filters.type;
  if (filters.search) body.search = filters.search;
  if (filters.since) body.since = filters.since;
  if (filters.retrying) body.retrying = true;
  if (filters.attr.length) body.attr = filters.attr;
  return body;
}

/** Does the list name runs a batch may act on? ("Latest runs only" alone does not.) */
export function batchFiltered(filters) {
  return Object.keys(filterBody(filters)).length > 0;
}

function describe(filters) {
  const parts = [];
  if (filters.status) parts.push(`status ${filters.status.replaceAll("_", " ")}`);
  if (filters.type) parts.push(`type ${filters.type}`);
  if (filters.search) parts.push(`id contains “${filters.search}”`);
  if (filters.since) parts.push(`started in the last ${filters.since}`);
  if (filters.retrying) parts.push("retrying");
  for (const term of filters.attr) parts.push(term);
  return `Runs matching: ${parts.join(" · ")}. Each workflow id's latest run; ` +
    "cancel and terminate act on open runs only.";
}

/** Open the dialog over the list's current ``filters``; ``refresh`` reloads the list. */
export function openBatch(filters, refresh) {
  const $ = (id) => document.getElementById(id);
  const dialog = $("batch-dialog");
  const action = $("batch-action");
  const reason = $("batch-reason");
  const preview = $("batch-preview");
  const summary = $("batch-summary");
  const error = $("batch-error");
  const check = $("batch-check");
  const confirm = $("batch-confirm");
  const chosen = filterBody(filters); // (held: the list may refresh behind the dialog)
  let busy = false;

  function start() {
    // Back to choosing: a preview holds for the action it was made for only.
    $("batch-explain").textContent = ACTIONS[action.value].text;
    preview.hidden = true;
    summary.hidden = true;
    error.hidden = true;
    confirm.hidden = true;
    check.hidden = false;
    action.disabled = false;
    reason.disabled = false;
  }

  async function send(dryRun) {
    busy = true;
    error.hidden = true;
    check.disabled = confirm.disabled = true;
    try {
      const body = { ...chosen, reason: reason.value || null, dry_run: dryRun };
      return await api(`/batch/${action.value}`, { method: "POST", body });
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      return null;
    } finally {
      busy = false;
      check.disabled = confirm.disabled = false;
    }
  }

  async function findMatching() {
    const answer = await send(true);
    if (!answer) return;
    const n = answer.matched.length;
    const ids = answer.matched.slice(0, NAMED).map((run) => run.id);
    preview.textContent = n === 0 ? "No runs match: nothing to do."
      : `${plural(n, "run")} match${n === 1 ? "es" : ""} (first ones: ` +
        `${ids.join(", ")}${n > NAMED ? ", …" : ""}).`;
    preview.hidden = false;
    confirm.textContent = `${ACTIONS[action.value].verb} ${plural(n, "run")}`;
    confirm.hidden = n === 0;
  }

  async function act() {
    const answer = await send(false);
    if (!answer) return;
    const done = Object.keys(answer.done).length;
    const skipped = Object.entries(answer.skipped);
    const failed = Object.entries(answer.failed);
    const listed = (entries) => h("ul", {}, entries.map(([id, why]) =>
      h("li", {}, h("code", { text: id }), `: ${why}`)));
    clear(summary).append(h("p", {}, h("b", { text: `${ACTIONS[answer.action].done} ${done} ` +
      `of ${plural(answer.matched.length, "run")} matched` }),
    `: ${skipped.length} skipped, ${failed.length} failed.`));
    if (skipped.length) {
      summary.append(h("p", { class: "muted", text: "Skipped (ended or gone since they " +
        "were chosen):" }), h("div", { id: "batch-skipped" }, listed(skipped)));
    }
    if (failed.length) {
      summary.append(h("p", { class: "error", text: "Failed (running it again acts on " +
        "what still matches):" }), h("div", { id: "batch-failed" }, listed(failed)));
    }
    summary.hidden = false;
    preview.hidden = true;
    confirm.hidden = check.hidden = true;
    action.disabled = reason.disabled = true;
    refresh();
  }

  $("batch-filters").textContent = describe(filters);
  action.value = "cancel";
  reason.value = "";
  start();
  action.onchange = start;
  $("batch-close").onclick = () => dialog.close();
  confirm.onclick = () => { if (!busy) act(); };
  $("batch-form").onsubmit = (event) => {
    event.preventDefault(); // (Enter asks again which runs match; acting takes the button)
    if (!busy && summary.hidden) findMatching();
  };
  dialog.showModal();
}
