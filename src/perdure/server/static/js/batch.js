// "Act on all matching…" on the workflow list (admins, filtered lists only):
// cancel, terminate or reset every run the list's filters match, through
// POST /api/batch/{action}, or change the priority or fairness key of the
// open ones, through POST /api/batch/update-options; or pause, unpause or reset the pending
// activities (of a type, or any) of the open runs they match, through
// POST /api/batch/activities/{action}. A dry run first says how many match
// and names the first ones; a confirmation acts; the summary says what was
// done (skipped: ended or gone since they were chosen; failed: with the error).
// An unpause or a reset may spread the next attempts over a span typed as
// options.js reads one (30s, 5m, 1h), sent as jitter_seconds: a service just
// back is then not met by every retry at once. A span that is not one is
// refused in the dialog, and nothing is sent.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { parseDuration } from "./options.js";

const NAMED = 5; // runs or activities the preview names
const RUNS = { one: "run", many: "runs" };
const ACTIVITIES = { one: "activity", many: "activities" };
const ACTIONS = {
  cancel: {
    verb: "Cancel", done: "Cancellation requested for", path: "cancel", noun: RUNS,
    text: "Each open run sees a cancellation at its current step and may run " +
      "compensations before it ends.",
  },
  terminate: {
    verb: "Terminate", done: "Terminated", path: "terminate", noun: RUNS,
    text: "Each open run ends at once: no more workflow code runs, and no compensation either.",
  },
  reset: {
    verb: "Reset", done: "Reset", path: "reset", noun: RUNS,
    text: "Each run is run again in a new run from its default point (the latest turn " +
      "that took no failure), with the code deployed now; an open one is terminated.",
  },
  "update-options": {
    verb: "Update", done: "Updated the options of", path: "update-options", noun: RUNS,
    text: "Each open run takes the priority or the fairness key given (or both), as its " +
      "page's change… does: its waiting tasks move in their queues now, and what it starts " +
      "next inherits them.",
    runOptions: true,
  },
  "pause-activities": {
    verb: "Pause", done: "Paused", path: "activities/pause", noun: ACTIVITIES,
    text: "Each pending activity of the type given (empty: any type) in the open runs that " +
      "match is paused: no attempt of it starts until it is unpaused (an attempt running " +
      "runs on).",
  },
  "unpause-activities": {
    verb: "Unpause", done: "Unpaused", path: "activities/unpause", noun: ACTIVITIES,
    text: "Each paused activity of the type given (empty: any type) in the open runs that " +
      "match is let go: its next attempt is due now, or at a random moment within the span " +
      "they are spread over.",
    options: { reset_attempts: "batch-reset-attempts" },
    spreads: true,
  },
  "reset-activities": {
    verb: "Reset", done: "Reset", path: "activities/reset", noun: ACTIVITIES,
    text: "Each pending activity of the type given (empty: any type) in the open runs that " +
      "match, paused or not, gets its attempts counted from 1 again: its next attempt is due " +
      "now, or at a random moment within the span they are spread over (a paused one is " +
      "unpaused, unless kept paused). An attempt running stops at its next heartbeat (one " +
      "that sends none runs on until it fails; one awaiting completion, once its completer " +
      "reports the cancellation its heartbeat asks for); then the next starts at " +
      "once, as attempt 1.",
    options: { keep_paused: "batch-keep-paused", clear_heartbeat_details: "batch-clear-details" },
    spreads: true,
  },
};
// The activity actions' checkboxes (an action's options: the body's field -> the box's id).
const CHECKS = ["batch-reset-attempts", "batch-keep-paused", "batch-clear-details"];
// The server's ceiling for jitter_seconds (a century), said here before anything is sent.
const MAX_SPREAD = 36525 * 86400;
const SPAN_HELP = "seconds (90) or a number with ms, s, m, h or d (30s, 5m, 1h, 1m 30s)";

const count = (n, noun) => `${n} ${n === 1 ? noun.one : noun.many}`;
const matches = (n, noun) => `${count(n, noun)} match${n === 1 ? "es" : ""}`;

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

/** The seconds a spread's text gives, or {error} saying why it gives none. */
function spreadOf(text) {
  const seconds = parseDuration(text);
  if (seconds === null) return { error: `The spread, “${text}”, is not a span: ${SPAN_HELP}.` };
  if (seconds > MAX_SPREAD) return { error: "The spread must be at most 36525d (100 years)." };
  return { seconds };
}

/** An activity of an answer, as the dialog names it. */
const activityName = (a) => `${a.workflow_id} ref ${a.activity_id}`;

/** What a batch did, whatever it acted on: how many done, and [name, why] pairs. */
function outcome(answer, noun) {
  if (noun === RUNS) {
    return {
      done: Object.keys(answer.done).length,
      skipped: Object.entries(answer.skipped),
      failed: Object.entries(answer.failed),
    };
  }
  return {
    done: answer.done.length,
    skipped: answer.skipped.map((a) => [activityName(a), a.why]),
    failed: answer.failed.map((a) => [activityName(a), a.error]),
  };
}

/** Open the dialog over the list's current ``filters``; ``refresh`` reloads the list. */
export function openBatch(filters, refresh) {
  const $ = (id) => document.getElementById(id);
  const dialog = $("batch-dialog");
  const action = $("batch-action");
  const reason = $("batch-reason");
  const activityType = $("batch-activity-type");
  const checks = CHECKS.map($);
  const spread = $("batch-jitter");
  const priority = $("batch-priority");
  const key = $("batch-key");
  const noKey = $("batch-no-key");
  const preview = $("batch-preview");
  const summary = $("batch-summary");
  const error = $("batch-error");
  const check = $("batch-check");
  const confirm = $("batch-confirm");
  const chosen = filterBody(filters); // (held: the list may refresh behind the dialog)
  const inputs = [action, reason, activityType, spread, priority, key, noKey, ...checks];
  let busy = false;

  function start() {
    // Back to choosing: a preview holds for the action, type and options it was made for only.
    const what = ACTIONS[action.value];
    const activities = what.noun === ACTIVITIES;
    $("batch-explain").textContent = what.text;
    $("batch-reason-label").hidden = activities || Boolean(what.runOptions);
    for (const id of ["batch-priority-label", "batch-key-label", "batch-no-key-label"]) {
      $(id).hidden = !what.runOptions;
    }
    $("batch-type-label").hidden = !activities;
    const options = Object.values(what.options || {});
    for (const box of checks) box.closest("label").hidden = !options.includes(box.id);
    $("batch-jitter-label").hidden = !what.spreads;
    check.textContent = `Find matching ${what.noun.many}`;
    preview.hidden = true;
    summary.hidden = true;
    error.hidden = true;
    confirm.hidden = true;
    check.hidden = false;
    for (const input of inputs) input.disabled = false;
  }

  function refused(message) {
    error.textContent = message;
    error.hidden = false;
    return null;
  }

  /** The request's body; null (the reason said in the dialog) if it cannot be sent. */
  function bodyOf(dryRun) {
    if (ACTIONS[action.value].runOptions) return optionsBody(dryRun);
    if (ACTIONS[action.value].noun === RUNS) {
      return { ...chosen, reason: reason.value || null, dry_run: dryRun };
    }
    const { status, ...runs } = chosen; // (the server takes open runs only: no status)
    if (status && status !== "running") {
      return refused("Only open runs have pending activities: filter the list by status " +
        `running, not ${status.replaceAll("_", " ")}.`);
    }
    const body = { ...runs, dry_run: dryRun };
    if (activityType.value.trim()) body.activity_type = activityType.value.trim();
    for (const [field, box] of Object.entries(ACTIONS[action.value].options || {})) {
      body[field] = $(box).checked;
    }
    // (Empty: not sent, each due now. The dry run sends it too, so the server checks it.)
    if (ACTIONS[action.value].spreads && spread.value.trim()) {
      const { seconds, error: why } = spreadOf(spread.value.trim());
      if (why) return refused(why);
      body.jitter_seconds = seconds;
    }
    return body;
  }

  /** update-options' body: the open runs (the list's status must allow them), the options. */
  function optionsBody(dryRun) {
    if (chosen.status && chosen.status !== "running") {
      return refused("Only open runs can be changed: filter the list by status running, not " +
        `${chosen.status.replaceAll("_", " ")}.`);
    }
    const options = {};
    if (priority.value) options.priority = Number(priority.value);
    if (noKey.checked && key.value.trim()) {
      return refused("Give a fairness key or take the key away, not both.");
    }
    if (noKey.checked) options.fairness_key = null;
    else if (key.value.trim()) options.fairness_key = key.value.trim();
    if (!Object.keys(options).length) {
      return refused("Choose a priority, a fairness key, or take the key away.");
    }
    return { ...chosen, new_options: options, dry_run: dryRun };
  }

  async function send(what, dryRun) {
    error.hidden = true;
    const body = bodyOf(dryRun);
    if (!body) return null;
    busy = true;
    check.disabled = confirm.disabled = true;
    try {
      return await api(`/batch/${what.path}`, { method: "POST", body });
    } catch (e) {
      return refused(e.message);
    } finally {
      busy = false;
      check.disabled = confirm.disabled = false;
    }
  }

  function showActivities(matched) {
    const n = matched.length;
    clear(preview).append(h("p", { text: `${matches(n, ACTIVITIES)}${n > NAMED ? ` (the first ${NAMED})` : ""}:` }),
      h("ul", { id: "batch-activities" }, matched.slice(0, NAMED).map((a) => h("li", {},
        h("code", { text: a.workflow_id }),
        ` · ${a.activity_type} ref ${a.activity_id} · attempt ${a.attempt}`))));
  }

  async function findMatching() {
    const what = ACTIONS[action.value];
    const answer = await send(what, true);
    if (!answer) return;
    const n = answer.matched.length;
    if (n === 0) {
      preview.textContent = `No ${what.noun.many} match: nothing to do.`;
    } else if (what.noun === ACTIVITIES) {
      showActivities(answer.matched);
    } else {
      const ids = answer.matched.slice(0, NAMED).map((run) => run.id);
      preview.textContent = `${matches(n, RUNS)} (first ones: ${ids.join(", ")}${
        n > NAMED ? ", …" : ""}).`;
    }
    preview.hidden = false;
    confirm.textContent = `${what.verb} ${count(n, what.noun)}`;
    confirm.hidden = n === 0;
  }

  async function act() {
    const what = ACTIONS[action.value];
    const answer = await send(what, false);
    if (!answer) return;
    const { done, skipped, failed } = outcome(answer, what.noun);
    const listed = (entries) => h("ul", {}, entries.map(([id, why]) =>
      h("li", {}, h("code", { text: id }), `: ${why}`)));
    clear(summary).append(h("p", {}, h("b", { text: `${what.done} ${done} ` +
      `of ${count(answer.matched.length, what.noun)} matched` }),
    `: ${skipped.length} skipped, ${failed.length} failed.`));
    if (skipped.length) {
      const since = what.noun === RUNS ? "ended or gone" : "ended, or their runs did,";
      summary.append(h("p", { class: "muted", text: `Skipped (${since} since they ` +
        "were chosen):" }), h("div", { id: "batch-skipped" }, listed(skipped)));
    }
    if (failed.length) {
      summary.append(h("p", { class: "error", text: "Failed (running it again acts on " +
        "what still matches):" }), h("div", { id: "batch-failed" }, listed(failed)));
    }
    summary.hidden = false;
    preview.hidden = true;
    confirm.hidden = check.hidden = true;
    for (const input of inputs) input.disabled = true;
    refresh();
  }

  $("batch-filters").textContent = describe(filters);
  action.value = "cancel";
  reason.value = "";
  activityType.value = "";
  spread.value = "";
  priority.value = key.value = "";
  noKey.checked = false;
  for (const box of checks) {
    box.checked = false;
    box.onchange = start;
  }
  start();
  action.onchange = activityType.oninput = spread.oninput = start;
  priority.onchange = key.oninput = noKey.onchange = start;
  $("batch-close").onclick = () => dialog.close();
  confirm.onclick = () => { if (!busy) act(); };
  $("batch-form").onsubmit = (event) => {
    event.preventDefault(); // (Enter asks again which match; acting takes the button)
    if (!busy && summary.hidden) findMatching();
  };
  dialog.showModal();
}
