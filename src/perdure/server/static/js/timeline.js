// The timeline of one run, drawn from its history and describe(): for each
// activity, a thin line from its scheduling to its outcome and a bar per attempt
// (ActivityCompleted/Failed carry the attempts; a pending activity's come from
// describe()), failed attempts in their own colour with the error in the bar's
// title; a bar per child workflow, a bar per timer (started -> fired/cancelled,
// with its due time), and marks for timers firing, signals, updates (each
// request, by its name, and its answer), cancel requests and the run's end.
// Histories recorded before attempts were kept draw one bar per activity,
// spanning all of its attempts.

import { fmtClock, fmtDuration, fmtTime, json, s, toSeconds, truncate } from "./dom.js";
import { updateAnswer, updateRequest } from "./update.js";

const ROW = 30;
const BAR = 14;
const AXIS = 28;
const LABEL = 210;
const PAD = 18;
// A long run (an agent's loop, thousands of steps) draws its latest rows only:
// every open one (running, retrying, waiting), then the latest that ended.
const MAX_ROWS = 100;
const STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
  1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** Rows (and the time range) for a run, from its history events and description. */
export function buildTimeline(events, desc, now) {
  // From the start request (a run may wait in its queue before a worker takes it).
  const first = Math.min(toSeconds(desc.created_at), events.length ? events[0].time : Infinity);
  const closed = desc.closed_at ? toSeconds(desc.closed_at) : null;
  const end = Math.max(closed ?? now, first + 0.001);
  const workflow = {
    kind: "workflow", label: desc.workflow_type, sub: "workflow", start: first, end,
    cls: `wf-${desc.status}`, marks: [], title: `${desc.status} · ${fmtDuration(end - first)}`,
  };
  const rows = [workflow];
  const signals = { kind: "signals", label: "signals", sub: "", marks: [] };
  const byRef = new Map();
  const pending = new Map(desc.pending_activities.map((a) => [a.activity_id, a]));

  for (const e of events) {
    const ref = e.ref;
    if (e.type === "ActivityScheduled") {
      const row = { kind: "activity", ref, label: e.name, sub: `ref ${ref}`, start: e.time,
        end: null, cls: "act-pending", attempts: 1, marks: [], segments: [] };
      byRef.set(`a${ref}`, row);
      rows.push(row);
    } else if (e.type === "ActivityCompleted" || e.type === "ActivityFailed") {
      const row = byRef.get(`a${ref}`);
      if (!row) continue;
      const ok = e.type === "ActivityCompleted";
      // Its last attempt's end, where recorded: the event's own time is when the
      // workflow took the result in (a run made by a reset takes it in again then).
      const last = (e.attempts || []).at(-1);
      row.end = last && last.ended_at < e.time ? last.ended_at : e.time;
      row.attempts = e.attempt || 1;
      row.cls = ok ? "act-completed" : "act-failed";
      row.outcome = ok
        ? `completed → ${truncate(json(e.result), 80)}`
        : `failed: ${e.failure?.type}: ${truncate(String(e.failure?.message ?? ""), 80)}`;
      row.segments = (e.attempts || []).map((a, i, all) =>
        attemptBar(a, i === all.length - 1 ? row.cls : "act-attempt-failed"));
    } else if (e.type === "ActivityCancelled") {
      const row = byRef.get(`a${ref}`);
      if (row) Object.assign(row, { end: e.time, cls: "act-cancelled", outcome: "cancelled" });
    } else if (e.type === "TimerStarted") {
      const row = { kind: "timer", label: "timer", start: e.time, end: null, due: e.fire_at,
        sub: `ref ${ref} · ${fmtDuration(e.fire_at - e.time)}`, cls: "timer", marks: [] };
      byRef.set(`t${ref}`, row);
      rows.push(row);
    } else if (e.type === "TimerFired" || e.type === "TimerCancelled") {
      const row = byRef.get(`t${ref}`);
      if (!row) continue;
      const fired = e.type === "TimerFired";
      row.end = e.time;
      row.outcome = fired ? "fired" : "cancelled";
      row.marks.push({ t: e.time, shape: fired ? "diamond" : "cross",
        cls: fired ? "mark-fired" : "mark-cancelled",
        title: `timer ${fired ? "fired" : "cancelled"} at ${fmtClock(e.time)}` });
    } else if (e.type === "ChildWorkflowRequested") {
      const row = { kind: "child", ref, label: e.workflow_type, sub: `child ${e.workflow_id}`,
        start: e.time, end: null, cls: "child-running", attempts: 1, marks: [] };
      byRef.set(`c${ref}`, row);
      rows.push(row);
    } else if (e.type.startsWith("ChildWorkflow") && e.type !== "ChildWorkflowStarted") {
      const row = byRef.get(`c${ref}`);
      if (!row) continue;
      if (e.type === "ChildWorkflowCancelRequested") {
        row.marks.push({ t: e.time, shape: "cross", cls: "mark-cancelled", title: "cancel requested" });
        continue;
      }
      const ok = e.type === "ChildWorkflowCompleted";
      Object.assign(row, { end: e.time, cls: ok ? "act-completed" : "act-failed",
        outcome: ok ? `completed → ${truncate(json(e.result), 80)}`
          : `${e.status || "failed"}: ${e.failure?.type}: ${truncate(String(e.failure?.message ?? ""), 80)}` });
    } else if (e.type === "WorkflowTimedOut" || e.type === "WorkflowContinuedAsNew") {
      workflow.marks.push({ t: e.time, shape: "cross", cls: "mark-terminated",
        title: e.type === "WorkflowTimedOut" ? "timed out" : "continued as new" });
    } else if (e.type === "SignalReceived" && updateRequest(e)) {
      const { name, id, payload } = updateRequest(e);
      signals.label = "signals, updates";
      signals.marks.push({ t: e.time, shape: "diamond", cls: "mark-signal", text: name,
        title: `update ${name} (${id}) at ${fmtClock(e.time)}: ${truncate(json(payload), 120)}` });
    } else if (e.type === "SignalReceived") {
      signals.marks.push({ t: e.time, shape: "diamond", cls: "mark-signal", text: e.name,
        title: `signal ${e.name} at ${fmtClock(e.time)}: ${truncate(json(e.payload), 120)}` });
    } else if (e.type === "UpdateReplied") {
      signals.label = "signals, updates";
      signals.marks.push({ t: e.time, shape: "diamond", cls: "mark-signal",
        title: `update ${e.name} (${e.update_id}) answered at ${fmtClock(e.time)}: ` +
          truncate(updateAnswer(e), 120) });
    } else if (e.type === "CancelRequested") {
      workflow.marks.push({ t: e.time, shape: "cross", cls: "mark-cancelled",
        title: `cancel requested${e.reason ? `: ${e.reason}` : ""}` });
    } else if (e.type === "WorkflowTerminated") {
      workflow.marks.push({ t: e.time, shape: "cross", cls: "mark-terminated",
        title: `terminated${e.reason ? `: ${e.reason}` : ""}` });
    } else if (e.type === "WorkflowReset") {
      workflow.marks.push({ t: e.time, shape: "diamond", cls: "mark-signal", text: "reset",
        title: `reset from run ${e.from_run_id} at event ${e.at_seq}${e.reason ? `: ${e.reason}` : ""}` });
    }
  }
  for (const row of rows) {
    if (row.kind !== "activity" || row.end !== null) continue;
    const p = pending.get(row.ref);
    row.end = end;
    if (!p) continue;
    row.attempts = Math.max(1, p.attempt);
    row.cls = p.running ? "act-running" : p.attempt > 0 ? "act-retrying" : "act-pending";
    row.segments = (p.attempts || []).map((a) => attemptBar(a, "act-attempt-failed"));
    if (p.running && p.started_at) {
      row.segments.push(attemptBar({ attempt: p.attempt, started_at: p.started_at, ended_at: end,
        error: null }, "act-running", "running"));
    }
    row.outcome = p.running
      ? `attempt ${p.attempt} running`
      : p.attempt > 0 ? `attempt ${p.attempt} failed; next at ${fmtClock(p.next_attempt_at)}`
        : "waiting for a worker";
    if (p.last_failure) row.outcome += ` · ${p.last_failure.type}: ${p.last_failure.message}`;
  }
  const open = new Set(rows.filter((row) => row.end === null || pendingRow(row, pending)));
  for (const row of rows) if (row.end === null) row.end = end; // timers, children still open
  const { kept, hidden } = latestRows(rows, open);
  if (signals.marks.length) kept.push(signals);
  return { start: first, end, rows: kept, hidden, open: closed === null };
}

function pendingRow(row, pending) {
  return row.kind === "activity" && pending.has(row.ref);
}

/** The workflow's row, every open row, and the latest others, in their order,
 * MAX_ROWS in all (more if more are open); how many were left out. */
function latestRows(rows, open) {
  const [workflow, ...rest] = rows;
  let room = Math.max(0, MAX_ROWS - 1 - rest.filter((row) => open.has(row)).length);
  const keep = new Set();
  for (let i = rest.length - 1; i >= 0; i--) {
    if (open.has(rest[i])) keep.add(rest[i]);
    else if (room > 0) { keep.add(rest[i]); room--; }
  }
  const kept = [workflow, ...rest.filter((row) => keep.has(row))];
  return { kept, hidden: rest.length - (kept.length - 1) };
}

/** One attempt's bar, from a record of ActivityCompleted/Failed.attempts (epoch
 * seconds) or of describe()'s pending activity (ISO times). */
function attemptBar(a, cls, state) {
  const end = toSeconds(a.ended_at);
  const start = toSeconds(a.started_at) ?? end; // null: a task from before attempts were kept
  const what = state || (a.error ? `${a.error.type}: ${truncate(String(a.error.message ?? ""), 160)}`
    : "succeeded");
  return { attempt: a.attempt, start, end, cls,
    title: `attempt ${a.attempt} · ${fmtClock(start)} → ${fmtClock(end)} · ` +
      `${fmtDuration(end - start)}\n${what}` };
}

function niceStep(span, width) {
  const wanted = span / Math.max(2, Math.floor(width / 110));
  return STEPS.find((step) => step >= wanted) ?? STEPS[STEPS.length - 1];
}

function tickLabel(offset, step) {
  if (offset === 0) return "0";
  if (step < 1) return `+${offset < 1 ? `${Math.round(offset * 1000)} ms` : `${offset.toFixed(1)} s`}`;
  return `+${fmtDuration(offset)}`;
}

function mark(m, x, y) {
  const title = s("title", { text: m.title });
  if (m.shape === "cross") {
    return s("g", { class: `mark ${m.cls}` }, title,
      s("path", { d: `M${x - 5} ${y - 5}L${x + 5} ${y + 5}M${x + 5} ${y - 5}L${x - 5} ${y + 5}` }));
  }
  return s("g", { class: `mark ${m.cls}` }, title,
    s("path", { d: `M${x} ${y - 7}L${x + 7} ${y}L${x} ${y + 7}L${x - 7} ${y}Z` }));
}

/** An <svg> drawing of a timeline model, ``width`` pixels wide. */
export function renderTimeline(model, width) {
  const plot = Math.max(120, width - LABEL - PAD);
  const span = model.end - model.start;
  const x = (t) => LABEL + ((Math.min(Math.max(t, model.start), model.end) - model.start) / span) * plot;
  const height = AXIS + model.rows.length * ROW + 8;
  const svg = s("svg", { class: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "Timeline of the run" });

  const step = niceStep(span, plot);
  const nowX = model.open ? x(model.end) : Infinity;
  for (let offset = 0; offset <= span + 1e-9; offset += step) {
    const tx = x(model.start + offset);
    svg.append(s("line", { class: "grid", x1: tx, x2: tx, y1: AXIS - 6, y2: height - 4 }));
    if (offset > 0 && Math.abs(nowX - tx) < 44) continue; // leave room for "now"
    svg.append(s("text", { class: "tick", x: tx, y: AXIS - 12,
      "text-anchor": offset === 0 ? "start" : "middle",
      text: offset === 0 ? fmtClock(model.start) : tickLabel(offset, step) }));
  }
  if (model.open) {
    const nx = x(model.end);
    svg.append(s("line", { class: "now", x1: nx, x2: nx, y1: AXIS - 6, y2: height - 4 }),
      s("text", { class: "tick now-label", x: nx, y: AXIS - 12, "text-anchor": "end", text: "now" }));
  }

  model.rows.forEach((row, i) => {
    const y = AXIS + i * ROW;
    const mid = y + ROW / 2;
    const g = s("g", { class: `row row-${row.kind}`, "data-kind": row.kind });
    if (i % 2 === 1) g.append(s("rect", { class: "stripe", x: 0, y, width, height: ROW }));
    g.append(s("text", { class: "row-label", x: 8, y: mid + 4, text: truncate(row.label, 22) }));
    if (row.sub) {
      g.append(s("text", { class: "row-sub", x: LABEL - 10, y: mid + 4, "text-anchor": "end",
        text: row.sub }));
    }
    if (row.start !== undefined) {
      const x0 = x(row.start);
      const x1 = Math.max(x(row.end), x0 + 3);
      const tip = [`${row.label} (${row.sub})`, `${fmtTime(row.start)} → ${fmtTime(row.end)}`,
        fmtDuration(row.end - row.start), row.attempts > 1 ? `${row.attempts} attempts` : "",
        row.outcome || ""].filter(Boolean).join("\n");
      if (row.segments?.length) {
        // The activity's life as a thin line, each attempt as a bar on it.
        g.append(s("rect", { class: `span ${row.cls}`, x: x0, y: mid - 1, width: x1 - x0,
          height: 2 }, s("title", { text: tip })));
        for (const a of row.segments) {
          const a0 = x(a.start);
          g.append(s("rect", { class: `bar attempt ${a.cls}`, "data-attempt": a.attempt,
            x: a0, y: mid - BAR / 2, width: Math.max(x(a.end), a0 + 3) - a0, height: BAR, rx: 2 },
          s("title", { text: `${row.label} (${row.sub}) ${a.title}` })));
        }
      } else {
        g.append(s("rect", { class: `bar ${row.cls}`, x: x0, y: mid - BAR / 2, width: x1 - x0,
          height: BAR, rx: 3 }, s("title", { text: tip })));
      }
      let note = fmtDuration(row.end - row.start);
      if (row.attempts > 1) note += ` · ${row.attempts} attempts`;
      if (row.kind === "timer" && row.outcome === "cancelled") note += " · cancelled";
      else if (row.kind === "timer" && !row.outcome && row.due > model.end + 1e-6) {
        note += ` · due ${fmtTime(row.due)} →`;
      }
      if (row.kind !== "workflow") {
        // After the bar if it fits, else inside its end, else before it.
        const wide = note.length * 6.4 + 12;
        const [nx, anchor, cls] = x1 + wide < width ? [x1 + 6, "start", "bar-note"]
          : x1 - x0 > wide ? [x1 - 6, "end", row.segments?.length ? "bar-note over" : "bar-note inside"]
            : [x0 - 6, "end", "bar-note"];
        g.append(s("text", { class: cls, x: nx, y: mid + 4, "text-anchor": anchor, text: note }));
      }
    }
    for (const m of row.marks) {
      g.append(mark(m, x(m.t), mid));
      if (!m.text) continue;
      // After the mark if the text fits, else before it (a mark at the run's end).
      const fits = x(m.t) + 10 + m.text.length * 6.4 < width;
      g.append(s("text", { class: "mark-text", x: fits ? x(m.t) + 10 : x(m.t) - 10, y: mid + 4,
        "text-anchor": fits ? "start" : "end", text: m.text }));
    }
    svg.append(g);
  });
  return svg;
}
