// One workflow run: status, what it waits on, timeline, input, result or
// failure, published state, streams (streams.js: followed live), search
// attributes and the full history; for admins, signal / update (update.js)
// / cancel / terminate (confirm.js asks first), complete or fail a pending
// activity by hand (settle.js), pause or unpause one (pause.js), reset one
// (activityreset.js: its reset-requested line for anyone), change its
// options in flight (options.js: its options line for anyone), change the
// run's fairness key (runkey.js), and reset (a new run from a point of this
// one's history; confirm.js). Refreshes every 2 s while the run is open.
// #/workflows/<id> shows the latest run, #/workflows/<id>?run=<run id> a
// given one. An "approve link" adds ?signal=<name>[&payload=<json>]: it
// opens the signal form.

import { activityResetButton, cancelRequestedLine, resetRequestedLine } from "./activityreset.js";
import { api, ApiError, wfHref, wfPath } from "./api.js";
import { confirmAction } from "./confirm.js";
import {
  clear, fmtClock, fmtDuration, fmtRelative, fmtTime, h, json, statusBadge, toSeconds, truncate,
} from "./dom.js";
import { eventDetail, eventKind } from "./events.js";
import { optionsButton, optionsLine } from "./options.js";
import { pauseButtons } from "./pause.js";
import { keyChip } from "./runkey.js";
import { openSettle } from "./settle.js";
import { streamsPanel } from "./streams.js";
import { buildTimeline, renderTimeline } from "./timeline.js";
import { openUpdate } from "./update.js";

const REFRESH_MS = 2000;
const BURST_MS = 250;
// The history table shows a long run's latest events, the rest on request.
const HISTORY_ROWS = 500;

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", { text: title }), ...children);
}

function pre(value, cls = "") {
  return h("pre", { class: `json ${cls}`, text: typeof value === "string" ? value : json(value, true) });
}

function failureBlock(failure) {
  const trace = failure.traceback
    ? h("details", {}, h("summary", { text: "Traceback" }), pre(String(failure.traceback), "trace"))
    : null;
  return h("div", { class: "failure" },
    h("div", { class: "failure-head" }, h("b", { text: failure.type || "Error" }), `: ${failure.message ?? ""}`),
    trace);
}

/** A run's headers (a trace context): what its starting client's interceptors wrote. */
function headersTable(headers) {
  const entries = Object.entries(headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return h("table", { class: "kv", id: "headers" }, h("tbody", {}, entries.map(([k, v]) =>
    h("tr", { "data-name": k }, h("th", { text: k }), h("td", { class: "mono", text: v })))));
}

/** The text a search attribute's value matches as (perdure._attributes.attribute_text):
 * a string as it is, a boolean true/false, a number as JSON writes it. */
function attributeText(value) {
  return typeof value === "string" ? value : String(value);
}

function searchAttributes(attributes) {
  const entries = Object.entries(attributes || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!entries.length) {
    return h("p", { class: "muted", id: "search-attributes-none",
      text: "None (Client.start(search_attributes=), workflow.set_search_attributes)." });
  }
  // Each value links to the list of the runs that have it.
  const listed = (name, value) =>
    `#/?${new URLSearchParams({ attr: `${name}=${attributeText(value)}` })}`;
  return h("table", { class: "kv", id: "search-attributes" }, h("tbody", {}, entries.map(([k, v]) =>
    h("tr", { "data-name": k }, h("th", { text: k }), h("td", {},
      h("a", { class: "mono", href: listed(k, v), title: "The runs with this value",
        text: json(v) }))))));
}

export function renderWorkflow(container, id, params, ctx) {
  let desc = null;
  let events = [];
  let timer = null;
  let controller = null;
  let disposed = false;
  let approveLinkUsed = false;
  const expanded = new Set();
  let showMarkers = false;
  let showAll = false;
  let burst = 0; // refreshes left at BURST_MS after an action
  let latest = null; // the id's latest run, when this page shows another (looked up once)
  let paused = new Set(); // the task queues of held activities whose limits pause them

  const runId = params.get("run") || "";
  const q = runId ? `?run_id=${encodeURIComponent(runId)}` : ""; // the run this page shows
  const root = h("div", { class: "workflow" });
  const streams = streamsPanel(id); // (its node is kept across redraws: it follows a stream)
  container.append(h("a", { class: "back", href: "#/", text: "← All workflows" }), root);

  async function load() {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    try {
      // Payloads opened for reading (codec envelopes, with the server's
      // --converter); "Download JSON" fetches the history as stored. After the
      // first load, only the events after the last one shown are fetched (a
      // long run's history had been fetched whole every 2 s).
      const signal = controller.signal;
      const shown = desc && events.length ? desc.run_id : null;
      const since = shown ? events[events.length - 1].seq : 0;
      const historyOf = (runQuery, after) =>
        api(`${wfPath(id)}/history${runQuery ? `${runQuery}&` : "?"}opened=true` +
          (after ? `&after_seq=${after}` : ""), { signal });
      const [d, history] = await Promise.all([
        api(`${wfPath(id)}${q}`, { signal }),
        historyOf(shown ? `?run_id=${encodeURIComponent(shown)}` : q, since),
      ]);
      if (shown && d.run_id !== shown) {
        events = await historyOf(`?run_id=${encodeURIComponent(d.run_id)}`, 0); // continued as new
      } else {
        events = shown ? events.concat(history) : history;
      }
      // The two reads race: a turn committed between them leaves the history
      // behind the description (and a run it closed is not looked at again).
      const last = events.length ? events[events.length - 1].seq : 0;
      if (d.history_length > last) {
        events = events.concat(await historyOf(`?run_id=${encodeURIComponent(d.run_id)}`, last));
      }
      const listed = await api(`${wfPath(id)}/streams?run_id=${encodeURIComponent(d.run_id)}`,
        { signal });
      paused = await pausedQueues(d, signal);
      desc = d;
      streams.update(listed, desc);
      if (runId && latest === null) {
        // A page for a given run: is there a newer run of the id (a reset, a
        // continue-as-new, an id reused)? Said once, with a link to it.
        const newest = await api(wfPath(id), { signal });
        latest = newest.run_id === desc.run_id ? false : newest;
      }
      draw();
      if (!approveLinkUsed && params.get("signal") && ctx.isAdmin && !desc.closed_at) {
        approveLinkUsed = true;
        openSignal(params.get("signal"), params.get("payload") || "null");
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      clear(root);
      const text = error instanceof ApiError && error.status === 404
        ? `No workflow with id “${id}”.`
        : error instanceof ApiError && error.status === 401
          ? "Enter an access token to see this workflow."
          : `Cannot load this workflow: ${error.message}`;
      root.append(h("div", { class: "card empty error", text }));
    }
    if (!disposed && (!desc || !desc.closed_at)) {
      // Right after an action, look again soon: the worker reacts within moments.
      timer = setTimeout(load, burst > 0 ? (burst--, BURST_MS) : REFRESH_MS);
    }
  }

  async function pausedQueues(d, signal) {
    // The queues whose limits hold an activity back, read only then: is one
    // paused (max_running 0)? Then the page says so, not "waiting for room".
    const held = new Set(d.pending_activities.filter((a) => a.held_by_limits)
      .map((a) => a.task_queue));
    const found = new Set();
    for (const queue of held) {
      let info;
      try {
        info = await api(`/queues/${encodeURIComponent(queue)}`, { signal });
      } catch (error) {
        if (error.name === "AbortError") throw error;
        continue; // (the page says "waiting for room", as before)
      }
      if (info.limits && info.limits.max_running === 0) found.add(queue);
    }
    return found;
  }

  function actions() {
    if (!ctx.isAdmin) return null;
    // Only an id's latest run can be reset (one that continued as new is not),
    // and not a child: its parent waits on it (reset the parent).
    const reset = desc.continued_to || desc.parent_run_id ? null
      : h("button", { type: "button", id: "reset-button", text: "Reset…",
        onclick: () => askFirst("reset") });
    if (desc.closed_at) return reset ? h("div", { class: "actions" }, reset) : null;
    // (The one the run waits for is the primary button.)
    const updates = desc.waiting_updates.length && !desc.waiting_signals.length;
    return h("div", { class: "actions" },
      h("button", { type: "button", id: "signal-button", class: updates ? "" : "primary",
        text: "Signal…", onclick: () => openSignal(desc.waiting_signals[0] || "", "null") }),
      h("button", { type: "button", id: "update-button", class: updates ? "primary" : "",
        text: "Update…", onclick: () => sendUpdate(desc.waiting_updates[0] || "") }),
      h("button", { type: "button", id: "cancel-button", text: "Cancel…",
        onclick: () => askFirst("cancel") }),
      reset,
      h("button", { type: "button", id: "terminate-button", class: "danger", text: "Terminate…",
        onclick: () => askFirst("terminate") }));
  }

  function priority() {
    // Its place in its queues' backlogs; an admin may move an open run.
    const title = "Its place in its queues' backlogs: 1 first, 5 last";
    if (!ctx.isAdmin || desc.closed_at) {
      return h("span", { id: "wf-priority", title }, "priority ", h("b", { text: String(desc.priority) }));
    }
    const select = h("select", { id: "priority-select", title, "aria-label": "priority",
      onchange: async () => {
        try {
          await api(`${wfPath(id)}/priority${q}`,
            { method: "POST", body: { priority: Number(select.value) } });
          ctx.toast(`Priority ${select.value}: its queued tasks moved.`, "ok");
        } catch (e) {
          ctx.toast(`Cannot change the priority: ${e.message}`, "error");
        }
        load();
      } },
    [1, 2, 3, 4, 5].map((p) =>
      h("option", { value: String(p), text: String(p), selected: p === desc.priority })));
    return h("span", { id: "wf-priority" }, "priority ", select);
  }

  function build() {
    // The worker build the run is pinned to (perdure build move changes it); none: not pinned.
    if (!desc.build_id) return null;
    const title = desc.closed_at ? "The worker build it ran on"
      : "Pinned: only this build's workers run its turns (perdure build move changes it)";
    return h("span", { id: "wf-build", title }, "build ", h("b", { class: "mono", text: desc.build_id }));
  }

  function header() {
    const now = Date.now() / 1000;
    const start = toSeconds(desc.created_at);
    const end = desc.closed_at ? toSeconds(desc.closed_at) : now;
    const stat = (label, value, title) =>
      h("div", { class: "stat", title }, h("div", { class: "stat-label", text: label }),
        h("div", { class: "stat-value", text: value }));
    return h("div", { class: "wf-head" },
      h("div", { class: "wf-title" },
        h("h1", { class: "mono", id: "wf-id", text: desc.id }), statusBadge(desc.status), actions()),
      h("div", { class: "wf-meta muted" },
        h("span", {}, "type ", h("b", { text: desc.workflow_type })),
        h("span", {}, "run ", h("code", { text: desc.run_id })),
        h("span", {}, "task queue ", h("b", { text: desc.task_queue })),
        priority(),
        keyChip({ id, q, desc, isAdmin: ctx.isAdmin, toast: ctx.toast, onChanged: load }),
        build(),
        lineage()),
      h("div", { class: "stats" },
        stat("Started", fmtTime(desc.created_at), fmtRelative(desc.created_at, now)),
        stat(desc.closed_at ? "Closed" : "Last change", fmtTime(desc.closed_at || desc.updated_at)),
        stat(desc.closed_at ? "Duration" : "Running for", fmtDuration(end - start)),
        stat("History", `${desc.history_length} events`),
        desc.state && "stage" in desc.state ? stat("Stage", String(desc.state.stage)) : null));
  }

  function lineage() {
    const started = events.find((e) => e.type === "WorkflowStarted") || {};
    const reset = events.find((e) => e.type === "WorkflowReset");
    const link = (text, wid, rid) => h("a", { href: wfHref(wid, rid), text });
    return [
      started.parent_workflow_id ? h("span", { id: "parent" }, "child of ",
        link(started.parent_workflow_id, started.parent_workflow_id, started.parent_run_id)) : null,
      started.continued_from_run_id ? h("span", {}, "continued from ",
        link(`run ${started.continued_from_run_id.slice(0, 8)}…`, desc.id, started.continued_from_run_id)) : null,
      desc.continued_to ? h("span", { id: "continued-to" }, "continued as new in ",
        link(`run ${desc.continued_to.slice(0, 8)}…`, desc.id, desc.continued_to)) : null,
      latest && latest.run_id !== desc.continued_to ? h("span", { id: "newer-run" },
        "not the latest run: ", link(`run ${latest.run_id.slice(0, 8)}…`, desc.id, latest.run_id),
        ` is (${latest.status})`) : null,
      reset ? h("span", { id: "reset-from" }, `reset at event ${reset.at_seq} from `,
        link(`run ${reset.from_run_id.slice(0, 8)}…`, desc.id, reset.from_run_id)) : null,
    ];
  }

  function pendingWork() {
    const items = [];
    for (const a of desc.pending_activities) {
      const what = a.awaiting_completion
        ? `attempt ${a.attempt} awaiting completion` + (a.completion_deadline
          ? ` · lost at ${fmtClock(a.completion_deadline)} (${fmtRelative(a.completion_deadline)})`
          : "")
        : a.running ? `attempt ${a.attempt} running`
        : a.paused ? (a.attempt === 0 ? "not started" : `attempt ${a.attempt} failed`)
        : a.held_by_limits
          ? (paused.has(a.task_queue) ? "held: its task queue is paused" : "waiting for room in its task queue")
        : a.attempt === 0 ? "waiting for a worker"
          : toSeconds(a.next_attempt_at) <= Date.now() / 1000
            ? `attempt ${a.attempt} failed · next attempt due now`
            : `attempt ${a.attempt} failed · next attempt ${fmtClock(a.next_attempt_at)} (${fmtRelative(a.next_attempt_at)})`;
      items.push(h("li", { class: a.paused ? "pending-activity paused" : "pending-activity" },
        h("span", { class: "tag tag-activity", text: "activity" }),
        h("b", { text: a.activity_type }), h("span", { class: "muted", text: ` ref ${a.activity_id} · ` }),
        what,
        a.paused ? h("span", { class: "paused-badge", text: "paused" }) : null,
        ctx.isAdmin ? [
          h("button", { type: "button", class: "link settle-complete", text: "complete…",
            title: "End this activity now with a result you give",
            onclick: () => settle(a, "complete") }),
          h("button", { type: "button", class: "link settle-fail", text: "fail…",
            title: "End this activity now with an error, not retried",
            onclick: () => settle(a, "fail") }),
          pauseButtons({ id, runId: desc.run_id, activity: a, onError: (text) => ctx.toast(text, "error"),
            onDone: acted }),
          activityResetButton({ id, runId: desc.run_id, activity: a, onDone: acted }),
          optionsButton({ id, runId: desc.run_id, activity: a, runQueue: desc.task_queue,
            onDone: acted }),
        ] : null,
        optionsLine(a, desc.task_queue),
        resetRequestedLine(a),
        cancelRequestedLine(a),
        // (Paused, it waits for nothing else: no worker, queue or backlog is why.)
        a.paused ? h("div", { class: "alert warn activity-paused" },
          h("b", { text: "Paused:" }), a.running || a.awaiting_completion
            ? ` attempt ${a.attempt} runs on; no attempt starts after it until it is unpaused.`
            : " no attempt starts until it is unpaused.")
        : a.waiting_for_worker ? h("div", { class: "alert warn no-activity-worker" },
          h("b", { text: "No live worker serves it." }),
          ` Start a worker for task queue “${a.task_queue}” that registers `,
          h("code", { text: a.activity_type }), ".") : null,
        a.paused ? null
        : a.held_by_limits && paused.has(a.task_queue)
          ? h("div", { class: "alert warn queue-paused" },
            h("b", { text: "Its task queue is paused." }),
            ` Task queue “${a.task_queue}” has max_running 0: no attempt starts until its limit is raised on the `,
            h("a", { href: "#/queues", text: "queues page" }), " (or perdure queue limit).")
        : a.held_by_limits ? h("div", { class: "alert info held-by-limits" },
          h("b", { text: "Waiting for room." }),
          ` Task queue “${a.task_queue}” has limits on its activities (perdure queue show ${a.task_queue}); ${a.ahead} due before it.`) : null,
        a.in_backlog && !a.paused ? h("div", { class: "alert info in-backlog" },
          h("b", { text: "In the backlog." }),
          ` ${a.ahead} due before it on task queue “${a.task_queue}”; its workers are busy.`) : null,
        a.heartbeat_details != null ? h("div", { class: "muted heartbeat-details" },
          "last heartbeat: ", h("code", { text: truncate(json(a.heartbeat_details)) })) : null,
        a.last_failure ? failureBlock(a.last_failure) : null));
    }
    for (const t of desc.pending_timers) {
      items.push(h("li", {}, h("span", { class: "tag tag-timer", text: "timer" }),
        `ref ${t.timer_id} · due ${fmtTime(t.fire_at)} (${fmtRelative(t.fire_at)})`));
    }
    for (const c of desc.pending_children) {
      items.push(h("li", {}, h("span", { class: "tag tag-child", text: "child" }),
        h("a", { href: wfHref(c.workflow_id, c.run_id), text: c.workflow_id }),
        h("span", { class: "muted", text: ` ${c.workflow_type} · running` })));
    }
    for (const name of desc.waiting_signals) {
      items.push(h("li", {}, h("span", { class: "tag tag-signal", text: "signal" }),
        "awaiting ", h("b", { text: name }),
        ctx.isAdmin ? h("button", { type: "button", class: "link", text: "send…",
          onclick: () => openSignal(name, "null") }) : null));
    }
    for (const name of desc.waiting_updates) {
      items.push(h("li", { class: "pending-update" },
        h("span", { class: "tag tag-signal", text: "update" }), "awaiting ", h("b", { text: name }),
        ctx.isAdmin ? h("button", { type: "button", class: "link", text: "send…",
          onclick: () => sendUpdate(name) }) : null));
    }
    if (desc.waiting_conditions) {
      items.push(h("li", { class: "pending-condition" },
        h("span", { class: "tag tag-signal", text: "condition" }),
        "a condition in its code (workflow.wait_condition)",
        desc.waiting_conditions > 1 ? h("span", { class: "muted", text: ` · ${desc.waiting_conditions} waits` }) : null));
    }
    if (!items.length) return null;
    return section("Waiting on", h("ul", { class: "pending", id: "pending" }, items));
  }

  function timeline() {
    const holder = h("div", { class: "timeline", id: "timeline" });
    const model = buildTimeline(events, desc, Date.now() / 1000);
    const hidden = model.hidden ? h("p", { class: "muted", id: "timeline-hidden",
      text: `The latest ${model.rows.length - 1} rows and every open one are drawn; ` +
        `${model.hidden.toLocaleString("en")} earlier ones are left out (the history below ` +
        "has them all)." }) : null;
    const drawIt = () => clear(holder).append(renderTimeline(model, Math.max(480, holder.clientWidth)));
    requestAnimationFrame(drawIt);
    const legend = h("div", { class: "legend muted" },
      [["act-completed", "completed"], ["act-running", "running"], ["act-retrying", "retrying"],
        ["act-attempt-failed", "failed attempt"], ["act-failed", "failed"],
        ["timer", "timer"]].map(([cls, label]) =>
        h("span", {}, h("i", { class: `swatch ${cls}` }), label)),
      h("span", {}, h("i", { class: "swatch diamond" }), "signal / timer fired"));
    return section("Timeline", hidden, holder, legend);
  }

  function historyTable() {
    const rows = [];
    const t0 = events.length ? events[0].time : 0;
    const listed = showMarkers ? events : events.filter((e) => e.type !== "TurnStarted");
    const skipped = showAll ? 0 : Math.max(0, listed.length - HISTORY_ROWS);
    for (const e of skipped ? listed.slice(skipped) : listed) {
      const open = expanded.has(e.seq);
      const tr = h("tr", { class: `ev ev-${eventKind(e.type)}`, "data-seq": e.seq },
        h("td", { class: "num", text: e.seq }),
        h("td", { class: "mono", title: fmtTime(e.time), text: fmtClock(e.time) }),
        h("td", { class: "num muted", text: `+${fmtDuration(e.time - t0)}` }),
        h("td", {}, h("span", { class: `evtype evtype-${eventKind(e.type)}`, text: e.type })),
        h("td", { class: "detail", text: truncate(eventDetail(e), 160) }));
      tr.addEventListener("click", () => {
        if (expanded.has(e.seq)) expanded.delete(e.seq); else expanded.add(e.seq);
        draw();
      });
      rows.push(tr);
      if (open) rows.push(h("tr", { class: "ev-json" }, h("td", { colspan: 5 }, pre(e))));
    }
    const markers = h("input", { type: "checkbox", checked: showMarkers });
    markers.addEventListener("change", () => { showMarkers = markers.checked; draw(); });
    const download = h("button", { type: "button", class: "ghost", text: "Download JSON",
      title: "The history as handle.history() returns it: input for perdure replay --history",
      onclick: async () => {
        const stored = await api(`${wfPath(id)}/history${q}`);
        const blob = new Blob([JSON.stringify(stored, null, 2)], { type: "application/json" });
        const a = h("a", { href: URL.createObjectURL(blob), download: `${desc.id}.history.json` });
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 1000);
      } });
    const more = skipped ? h("p", { class: "muted", id: "history-more" },
      `The latest ${HISTORY_ROWS} events are listed; ${skipped.toLocaleString("en")} earlier ` +
        "ones are not. ",
      h("button", { type: "button", class: "link", id: "history-all", text: "Show all",
        onclick: () => { showAll = true; draw(); } })) : null;
    return h("section", { class: "card" },
      h("div", { class: "section-head" }, h("h2", { text: `History (${events.length} events)` }),
        h("label", { class: "check" }, markers, " Turn markers"), download),
      more,
      h("table", { class: "history", id: "history" },
        h("thead", {}, h("tr", {}, ["#", "Time", "Since start", "Event", "Detail"].map((t) =>
          h("th", { text: t })))),
        h("tbody", {}, rows)));
  }

  function draw() {
    const y = window.scrollY;
    clear(root);
    const outcome = desc.status === "completed"
      ? section("Result", pre(desc.result))
      : desc.failure ? section(desc.status === "terminated" ? "Terminated" : "Failure", failureBlock(desc.failure))
        : section("Result", h("p", { class: "muted", text: desc.closed_at ? "No result." : "Not finished yet." }));
    const state = Object.entries(desc.state || {});
    const parts = [
      header(),
      desc.last_error ? h("div", { class: "alert", id: "last-error" },
        h("b", { text: "The latest workflow task failed" }),
        " — the run is intact and retried with backoff:", pre(desc.last_error, "trace")) : null,
      desc.starts_at ? h("div", { class: "alert info", id: "starts-at" },
        h("b", { text: "Not started yet:" }), ` its first turn is due at ${fmtTime(desc.starts_at)}.`,
        desc.debounce_key != null ? ` Debounced: a start with key "${desc.debounce_key}" before then moves it back.` : null) : null,
      desc.waiting_for_worker ? h("div", { class: "alert warn", id: "no-worker" },
        h("b", { text: "No live worker serves this run." }),
        ` Start a worker${desc.build_id ? ` of build “${desc.build_id}”` : ""} for task queue `,
        `“${desc.task_queue}” that registers `, h("code", { text: desc.workflow_type }), ".") : null,
      desc.in_backlog ? h("div", { class: "alert info", id: "turn-in-backlog" },
        h("b", { text: "Its turn is in the backlog." }),
        ` ${desc.ahead} due before it on task queue “${desc.task_queue}”; its workers are busy.`) : null,
      desc.awaiting_nothing ? h("div", { class: "alert warn", id: "awaiting-nothing" },
        h("b", { text: "This run waits for nothing that can come." }),
        " No activity, timer, child, signal or update wait is pending: its code awaits something only " +
        "workflow code could complete (an asyncio.Event, a Future), or waits to be cancelled. " +
        "Only cancel or terminate will move it.") : null,
      pendingWork(),
      timeline(),
      h("div", { class: "grid2" },
        section("Input", pre(desc.input.kwargs && Object.keys(desc.input.kwargs).length
          ? desc.input : desc.input.args)),
        outcome),
      section("Published state", state.length
        ? h("table", { class: "kv" }, h("tbody", {}, state.map(([k, v]) =>
          h("tr", {}, h("th", { text: k }), h("td", {}, pre(v))))))
        : h("p", { class: "muted", text: "Nothing published (workflow.set_state)." })),
      streams.node,
      section("Search attributes", searchAttributes(desc.search_attributes)),
      Object.keys(desc.headers || {}).length ? section("Headers", headersTable(desc.headers)) : null,
      historyTable(),
    ];
    root.append(...parts.filter(Boolean));
    window.scrollTo(0, y);
  }

  // ---------------------------------------------------------------- actions

  function openSignal(name, payload) {
    const dialog = document.getElementById("signal-dialog");
    const nameInput = document.getElementById("signal-name");
    const payloadInput = document.getElementById("signal-payload");
    const error = document.getElementById("signal-error");
    const names = clear(document.getElementById("signal-names"));
    for (const n of desc.waiting_signals) names.append(h("option", { value: n }));
    nameInput.value = name;
    payloadInput.value = payload;
    error.hidden = true;
    document.getElementById("signal-cancel").onclick = () => dialog.close();
    document.getElementById("signal-form").onsubmit = async (event) => {
      event.preventDefault();
      let value;
      try {
        value = JSON.parse(payloadInput.value.trim() || "null");
      } catch (e) {
        error.textContent = `The payload is not valid JSON: ${e.message}. Strings need quotes: "yes".`;
        error.hidden = false;
        return;
      }
      try {
        await api(`${wfPath(id)}/signals/${encodeURIComponent(nameInput.value.trim())}${q}`,
          { method: "POST", body: value });
        dialog.close();
        ctx.toast(`Signal “${nameInput.value.trim()}” sent.`, "ok");
        burst = 8;
        load();
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
      }
    };
    dialog.showModal();
    (name ? payloadInput : nameInput).focus();
  }

  function sendUpdate(name) {
    openUpdate({ id, q, desc, name, onAnswered: () => { burst = 8; load(); } });
  }

  function settle(activity, action) {
    // The run shown, by its id: an activity of a newer run is not settled by mistake.
    openSettle({ id, runId: desc.run_id, activity, action, onDone: acted });
  }

  /** An action on a pending activity was done: say so, and refresh at once. */
  function acted(text) {
    ctx.toast(text, "ok");
    burst = 8;
    load();
  }

  /** Cancel, terminate or reset the run, once the operator confirms (confirm.js). */
  function askFirst(action) {
    confirmAction({ action, id, q, desc, toast: ctx.toast, onDone: () => { burst = 8; load(); } });
  }


  const onResize = () => { if (desc) draw(); };
  window.addEventListener("resize", onResize);
  load();
  return () => {
    disposed = true;
    clearTimeout(timer);
    controller?.abort();
    streams.dispose();
    window.removeEventListener("resize", onResize);
  };
}
