// The schedules page (#/schedules): each schedule, when it runs, its next run,
// the runs it started lately; pause, unpause, trigger and delete for admins.
// A schedule is also a workflow (schedule:<id>), linked from its row.

import { api, wfHref } from "./api.js";
import { clear, fmtDuration, fmtRelative, fmtTime, h } from "./dom.js";
import { refreshing } from "./refresh.js";

const LATEST = 3; // recent runs shown per schedule

const schedulePath = (id) => `/schedules/${encodeURIComponent(id)}`;

function when(s) {
  const late = s.jitter_seconds ? ` · up to ${fmtDuration(s.jitter_seconds)} late` : "";
  const spread = late + (s.priority !== 3 ? ` · priority ${s.priority}` : "");
  if (s.cron !== null) {
    return `cron ${s.cron}${s.timezone === "UTC" ? "" : ` (${s.timezone})`}${spread}`;
  }
  return `every ${fmtDuration(s.every_seconds)}${spread}`;
}

export function renderSchedules(container, params, ctx) {
  const heading = h("div", { class: "page-head" },
    h("h1", { text: "Schedules" }),
    h("span", { class: "muted", id: "schedule-count" }));
  const body = h("tbody");
  const table = h("table", { class: "runs", id: "schedules" },
    h("thead", {}, h("tr", {},
      ["Schedule", "Starts", "When", "Next run", "Latest runs", "Runs"].map((t) =>
        h("th", { text: t })))),
    body);
  const message = h("div", { class: "empty", hidden: true });
  const hint = h("p", { class: "muted" },
    "Create schedules with Client.create_schedule, ",
    h("code", { text: "perdure schedule create" }), " or POST /api/schedules.");
  container.append(heading, h("div", { class: "card flush" }, table, message), hint);

  async function act(s, action) {
    let body;
    if (action === "delete") {
      if (!window.confirm(`Delete schedule ${s.schedule_id}? The runs it started go on.`)) return;
    } else if (action === "pause") {
      const note = window.prompt(`Pause ${s.schedule_id}: why? (optional)`, "");
      if (note === null) return;
      body = { note: note || null };
    }
    try {
      await api(`${schedulePath(s.schedule_id)}${action === "delete" ? "" : `/${action}`}`,
        { method: action === "delete" ? "DELETE" : "POST", body });
      const done = { pause: "Pause sent", unpause: "Unpause sent", trigger: "Run requested",
        delete: "Deleted" }[action];
      ctx.toast(`${done}: ${s.schedule_id}.`, "ok");
      load();
    } catch (error) {
      ctx.toast(`Cannot ${action} ${s.schedule_id}: ${error.message}`, "error");
    }
  }

  function buttons(s) {
    if (!ctx.isAdmin) return [];
    const button = (action, label, cls = "ghost") => h("button", {
      type: "button", class: cls, "data-action": action, text: label,
      onclick: () => act(s, action),
    });
    return [
      s.paused ? button("unpause", "Unpause") : button("pause", "Pause"),
      button("trigger", "Trigger"),
      button("delete", "Delete", "ghost danger-text"),
    ];
  }

  function show(items) {
    clear(body);
    const now = Date.now() / 1000;
    for (const s of items) {
      // Each by its time (its id is the schedule's, @ that time), newest first.
      const latest = s.recent.slice(-LATEST).reverse().map((r) => h("div", {},
        r.run_id
          ? h("a", { href: wfHref(r.workflow_id), title: r.workflow_id,
            text: `${fmtTime(r.scheduled_time)}${r.trigger ? " (trigger)" : ""}` })
          : h("span", { class: "muted", title: r.skipped,
            text: `${fmtTime(r.scheduled_time)} skipped` })));
      const others = [s.runs_skipped ? `${s.runs_skipped} skipped` : "",
        s.times_missed ? `${s.times_missed} missed` : ""].filter(Boolean).join(" · ");
      body.append(h("tr", { "data-id": s.schedule_id },
        h("td", {},
          h("a", { class: "mono", href: wfHref(`schedule:${s.schedule_id}`),
            title: "The schedule's own workflow", text: s.schedule_id }),
          s.paused ? h("span", { class: "badge status-cancelled paused", text: "paused",
            title: s.note || "" }) : null,
          s.paused && s.note ? h("div", { class: "muted", text: s.note }) : null,
          h("div", { class: "actions" }, buttons(s))),
        h("td", {}, s.workflow, h("div", { class: "muted", text: `queue ${s.task_queue}` })),
        h("td", { text: when(s) }),
        h("td", { title: s.next_run_at ? fmtRelative(s.next_run_at, now) : "",
          text: s.next_run_at ? fmtTime(s.next_run_at) : "–" }),
        h("td", {}, latest.length ? latest : "–"),
        h("td", { title: "skipped: the last run was still running (overlap skip); " +
          "missed: no worker ran the schedule then" },
        `${s.runs_started} started`, others ? h("div", { class: "muted", text: others }) : null)));
    }
    message.hidden = items.length > 0;
    message.classList.remove("error");
    if (!items.length) message.textContent = "No schedules yet.";
    document.getElementById("schedule-count").textContent = `${items.length} shown`;
  }

  const page = refreshing({ path: "/schedules", show, body, message, what: "schedules" });
  const load = page.load;
  load();
  return page.dispose;
}
