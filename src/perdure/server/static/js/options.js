// Changing a pending activity's options in flight
// (docs/operations.md#changing-an-activitys-options-in-flight): the options
// line under each activity of the workflow page's "Waiting on" list (for
// anyone), and, for admins, its options… button and dialog. The dialog sends
// only the options the admin changed: POST /api/workflows/{id}/activities/
// {activity_id}/options?run_id=RUN with their seconds, factor, count or
// queue; the server refuses (422, its word in the dialog) a change that
// makes no retry policy or allows no more attempts. Durations are typed as
// seconds (90) or with a unit (500ms, 30s, 5m, 2h, 1d, 1m 30s), read here:
// one that is not is refused in the dialog, and nothing is sent.

import { activityPath, api } from "./api.js";
import { fmtRelative, fmtTime, h } from "./dom.js";

const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
// As the server's ceiling (a century): a deadline past year 9999 cannot be shown.
const MAX_SECONDS = 36525 * 86400;
const MAX_ATTEMPTS = 2 ** 31 - 1;
const DURATION_HELP = "seconds (90) or a number with ms, s, m, h or d (30s, 5m, 2h, 1d, 1m 30s)";

/**
 * Seconds from "90", "30s", "1.5m", "2h", "1d" or "1m 30s" (null: not a
 * duration; the caller checks its range).
 */
export function parseDuration(text) {
  const t = String(text).trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  if (!t) return null;
  const piece = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)(?:\s+|(?=\d)|$)/y;
  let total = 0;
  let at = 0;
  while (at < t.length) {
    piece.lastIndex = at;
    const found = piece.exec(t);
    if (!found) return null;
    total += Number(found[1]) * UNITS[found[2]];
    at = piece.lastIndex;
  }
  return total;
}

/** A span as the dialog takes it back: "50ms", "30s", "1m 40s", "2h", "1d 4h". */
export function spanText(seconds) {
  let ms = Math.round(seconds * 1000);
  if (ms < 1000) return `${ms}ms`;
  const parts = [];
  for (const [unit, size] of [["d", 86400000], ["h", 3600000], ["m", 60000]]) {
    if (ms >= size) {
      parts.push(`${Math.floor(ms / size)}${unit}`);
      ms %= size;
    }
  }
  if (ms) parts.push(`${ms / 1000}s`);
  return parts.join(" ");
}

/** "retry every 1s ×2 up to 1m 40s, at most 5 attempts" ("no retry" for one attempt at most). */
function retryText(policy) {
  if (policy.max_attempts === 1) return "no retry (1 attempt at most)";
  let every = `retry every ${spanText(policy.initial_interval)}`;
  if (policy.backoff !== 1) every += ` ×${policy.backoff} up to ${spanText(policy.max_interval)}`;
  return policy.max_attempts === null || policy.max_attempts === undefined
    ? `${every}, no limit on attempts`
    : `${every}, at most ${policy.max_attempts} attempts`;
}

/** A deadline's local time: its clock today, with its date otherwise. */
function endsText(iso) {
  const full = fmtTime(iso);
  return full.slice(0, 10) === fmtTime(Date.now() / 1000).slice(0, 10) ? full.slice(11) : full;
}

/**
 * The pending activity's options as they stand, on one line (what is null
 * left out): its retry policy, its timeouts (when schedule-to-close ends it)
 * and its task queue if not its run's (`runQueue`). Null if it has none.
 */
export function optionsLine(activity, runQueue) {
  const parts = [];
  if (activity.retry_policy) parts.push(retryText(activity.retry_policy));
  if (activity.start_to_close_timeout != null) {
    parts.push(`start-to-close ${spanText(activity.start_to_close_timeout)}`);
  }
  if (activity.schedule_to_close_timeout != null) {
    parts.push(`schedule-to-close ${spanText(activity.schedule_to_close_timeout)}` +
      (activity.deadline ? ` (ends ${endsText(activity.deadline)})` : ""));
  }
  if (activity.heartbeat_timeout != null) {
    parts.push(`heartbeat ${spanText(activity.heartbeat_timeout)}`);
  }
  if (activity.task_queue && activity.task_queue !== runQueue) {
    parts.push(`task queue “${activity.task_queue}”`);
  }
  if (!parts.length) return null;
  const title = "Its retry policy and timeouts as they stand" + (activity.deadline
    ? `; schedule-to-close ends it at ${fmtTime(activity.deadline)} (${fmtRelative(activity.deadline)})`
    : "");
  return h("div", { class: "muted activity-options", title, text: parts.join(" · ") });
}

// The dialog's fields: the body's key, the input's id, what it takes, its
// name in messages (and its label, unless a shorter one is given), its
// tooltip, and the value it shows (the activity's, or null: none).
const FIELDS = [
  { key: "start_to_close_timeout", id: "options-start-to-close", kind: "span",
    label: "Start-to-close timeout", short: "Start-to-close", hint: "Each attempt's time limit",
    now: (a) => a.start_to_close_timeout },
  { key: "schedule_to_close_timeout", id: "options-schedule-to-close", kind: "span",
    label: "Schedule-to-close timeout", short: "Schedule-to-close",
    hint: "The activity's time limit, retries included, from when it was scheduled",
    now: (a) => a.schedule_to_close_timeout },
  { key: "heartbeat_timeout", id: "options-heartbeat", kind: "span",
    label: "Heartbeat timeout", short: "Heartbeat",
    hint: "An attempt that sends no heartbeat for this long is lost (and retried)",
    now: (a) => a.heartbeat_timeout },
  { key: "retry_initial_interval", id: "options-initial-interval", kind: "span",
    label: "Initial interval", hint: "The delay before the first retry",
    now: (a) => a.retry_policy?.initial_interval },
  { key: "retry_backoff", id: "options-backoff", kind: "factor",
    label: "Backoff", hint: "What each delay is multiplied by for the next (at least 1)",
    now: (a) => a.retry_policy?.backoff },
  { key: "retry_max_interval", id: "options-max-interval", kind: "span",
    label: "Max interval", hint: "The longest delay between attempts",
    now: (a) => a.retry_policy?.max_interval },
  { key: "retry_max_attempts", id: "options-max-attempts", kind: "count",
    label: "Max attempts", short: "Max attempts (0: no limit)",
    hint: "Attempts at most, the first included; 0: no limit",
    now: (a) => (a.retry_policy ? a.retry_policy.max_attempts ?? 0 : null) },
  { key: "task_queue", id: "options-task-queue", kind: "name",
    label: "Task queue", hint: "The queue its next attempts are taken from",
    now: (a) => a.task_queue },
];
const RETRY = new Set(["retry_initial_interval", "retry_backoff", "retry_max_interval",
  "retry_max_attempts"]);

/** The shown text of a field's value ("" for none). */
function shown(field, value) {
  if (value === null || value === undefined) return "";
  return field.kind === "span" ? spanText(value) : String(value);
}

/**
 * The value a field's text gives, or {error} saying why it is none. The
 * text is not empty.
 */
function read(field, text) {
  const name = field.label.toLowerCase();
  if (field.kind === "span") {
    const seconds = parseDuration(text);
    if (seconds === null) return { error: `The ${name}, “${text}”, is not a duration: ${DURATION_HELP}.` };
    if (!(seconds > 0)) return { error: `The ${name} must be more than 0.` };
    if (seconds > MAX_SECONDS) return { error: `The ${name} must be at most 36525d (100 years).` };
    return { value: seconds };
  }
  if (field.kind === "factor") {
    const factor = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!(factor >= 1) || !Number.isFinite(factor)) {
      return { error: `The backoff, “${text}”, is not a number of at least 1 (1: a fixed interval).` };
    }
    return { value: factor };
  }
  if (field.kind === "count") {
    const count = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(count <= MAX_ATTEMPTS)) {
      return { error: `Max attempts, “${text}”, is not a whole number from 0 (no limit) to ${MAX_ATTEMPTS}.` };
    }
    return { value: count };
  }
  return { value: text };
}

/** The dialog (made once, on first use: it is this module's). */
function theDialog() {
  let dialog = document.getElementById("options-dialog");
  if (dialog) return dialog;
  const input = (field) => h("label", { for: field.id, id: `${field.id}-label`, title: field.hint },
    field.short || field.label,
    h("input", { id: field.id, name: field.key, autocomplete: "off", spellcheck: "false",
      inputmode: field.kind === "count" ? "numeric" : field.kind === "factor" ? "decimal" : null }));
  const fields = (keys) => FIELDS.filter((f) => keys.includes(f.key)).map(input);
  dialog = h("dialog", { id: "options-dialog" },
    h("form", { method: "dialog", id: "options-form", novalidate: true },
      h("h2", { id: "options-title", text: "Change the activity's options?" }),
      h("p", { id: "options-now", class: "muted" }),
      h("p", { class: "muted", text: "Only what you change is sent; the rest stays as it is. " +
        `Durations: ${DURATION_HELP}. A retry waiting out its backoff waits the new policy's ` +
        "delay; an attempt running now keeps its timeouts. Not recorded in the history." }),
      h("fieldset", {}, h("legend", { text: "Timeouts" }), h("div", { class: "options-grid three" },
        fields(["start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout"]))),
      h("fieldset", {}, h("legend", { text: "Retry policy" }), h("div", { class: "options-grid" },
        fields([...RETRY]))),
      fields(["task_queue"]),
      h("p", { class: "error", id: "options-error", hidden: true }),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "options-cancel", class: "ghost", text: "Close" }),
        h("button", { type: "submit", id: "options-ok", class: "primary", text: "Change options" }))));
  document.body.append(dialog);
  return dialog;
}

/**
 * Open the dialog for the pending activity `activity` (an entry of the
 * description's pending_activities) of workflow `id`'s run `runId` — the
 * run the page shows, by its id: once that run has ended, the server says so
 * (404) rather than changing a newer run's activity. Input it cannot take
 * is refused in the dialog, and so is what the server refuses (its word);
 * on success it closes and `onDone` is called with what to tell the user.
 */
export function openOptions({ id, runId, activity, runQueue, onDone }) {
  const dialog = theDialog();
  const error = document.getElementById("options-error");
  const ok = document.getElementById("options-ok");
  const what = `${activity.activity_type} (ref ${activity.activity_id})`;
  document.getElementById("options-title").textContent = `Change activity ${what}'s options?`;
  const line = optionsLine(activity, runQueue);
  document.getElementById("options-now").textContent =
    `Now: ${line ? line.textContent : "no timeout, no retry policy known"}` +
    (activity.paused ? ". It is paused: the new options wait with it." : ".");
  const inputs = new Map(FIELDS.map((f) => [f, document.getElementById(f.id)]));
  for (const [field, input] of inputs) {
    input.value = shown(field, field.now(activity));
    input.placeholder = field.kind === "span" ? "none (e.g. 30s, 5m)" : "";
  }
  error.hidden = true;
  ok.disabled = false;

  function refuse(text, input) {
    error.textContent = text;
    error.hidden = false;
    input?.focus();
  }

  document.getElementById("options-cancel").onclick = () => dialog.close();
  document.getElementById("options-form").onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = {};
    const told = [];
    for (const [field, input] of inputs) {
      const before = field.now(activity);
      const text = input.value.trim();
      if (text === shown(field, before)) continue; // (as shown: unchanged)
      if (!text) {
        refuse(`The ${field.label.toLowerCase()} cannot be removed, only changed: ` +
          `give a new one, or leave “${shown(field, before)}”.`, input);
        return;
      }
      const got = read(field, text);
      if (got.error) {
        refuse(got.error, input);
        return;
      }
      const same = field.kind === "span" && before != null
        ? Math.abs(got.value - before) < 1e-6 : got.value === before;
      if (same) continue; // (written another way: 60s for 1m)
      body[field.key] = got.value;
      told.push(`${field.label.toLowerCase()} ${field.kind === "span" ? spanText(got.value)
        : field.kind === "count" && got.value === 0 ? "0 (no limit)" : got.value}`);
    }
    if (!told.length) {
      refuse("Nothing is changed: change at least one option, or close.", inputs.get(FIELDS[0]));
      return;
    }
    // A policy whose max interval is below its initial interval is none (the server would say so).
    const policy = activity.retry_policy;
    const initial = body.retry_initial_interval ?? policy?.initial_interval;
    const most = body.retry_max_interval ?? policy?.max_interval;
    if (initial != null && most != null && most < initial &&
      ("retry_initial_interval" in body || "retry_max_interval" in body)) {
      refuse(`The max interval (${spanText(most)}) would be below the initial interval ` +
        `(${spanText(initial)}): change both.`,
      document.getElementById("retry_max_interval" in body ? "options-max-interval"
        : "options-initial-interval"));
      return;
    }
    ok.disabled = true;
    try {
      await api(activityPath(id, runId, activity.activity_id, "options"), { method: "POST", body });
      dialog.close();
      onDone(`Activity ${what}'s options changed: ${told.join(", ")}.`);
    } catch (e) {
      // (In the dialog, as the settle dialog's: what was typed stays, to mend.)
      refuse(`Cannot change activity ${what}'s options: ${e.message}`);
    } finally {
      ok.disabled = false;
    }
  };
  dialog.showModal();
  inputs.get(FIELDS[0]).focus();
}

/** The options… button of a pending activity (for admins): opens the dialog. */
export function optionsButton({ id, runId, activity, runQueue, onDone }) {
  return h("button", { type: "button", class: "link change-options", text: "options…",
    title: "Change its timeouts, retry policy or task queue in flight",
    onclick: () => openOptions({ id, runId, activity, runQueue, onDone }) });
}
