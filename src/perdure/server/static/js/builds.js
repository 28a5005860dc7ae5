// The worker builds page (#/builds): per task queue that has had a build, a
// table of its builds (the current first) with the cues of `perdure build
// list`; admins make a build current, ramp one beside it, or stop the ramp.

import { api } from "./api.js";
import { clear, fmtRelative, fmtTime, h } from "./dom.js";
import { refreshing } from "./refresh.js";

const buildsPath = (queue, what) => `/queues/${encodeURIComponent(queue)}/builds/${what}`;
const share = (percent) => `${percent}%`; // 30%, 12.5% (as the CLI's RAMP column)

// A build whose runs wait: open runs pinned to it, and no live worker of it.
const waits = (b) => b.open_runs > 0 && b.workers === 0;
// A build that can be shut down: it takes no new run and holds none (the
// CLI's hint, for a build with workers to stop).
const idle = (b) => !b.current && b.ramp === null && b.open_runs === 0 && b.workers > 0;

export function renderBuilds(container, params, ctx) {
  const heading = h("div", { class: "page-head" },
    h("h1", { text: "Worker builds" }),
    h("span", { class: "muted", id: "build-count" }));
  const queues = h("div", { id: "builds" });
  const message = h("div", { class: "card empty", hidden: true });
  const hint = h("p", { class: "muted" },
    "A worker started with a build id (", h("code", { text: "--build-id" }),
    ", Worker(build_id=)) pins the runs it starts to its build; the current build takes a " +
    "queue's new runs. The same with ", h("code", { text: "perdure build" }),
    " or Client.set_current_build and set_ramping_build.");
  container.append(heading, message, queues, hint);

  // What an admin typed in a ramp field, by queue and build: a refresh
  // redraws the rows, and must not wipe it (or move the caret away).
  const drafts = new Map();
  const keyOf = (queue, b) => `${queue}\u001f${b.build_id}`;

  async function change(queue, what, body, done, failed) {
    try {
      await api(buildsPath(queue, what), { method: "PUT", body });
      ctx.toast(done, "ok");
      load();
      return true;
    } catch (error) {
      ctx.toast(`${failed}: ${error.message}`, "error");
      return false;
    }
  }

  async function makeCurrent(queue, b) {
    const nobody = b.workers === 0
      ? " No live worker of it serves the queue yet: its new runs wait for one." : "";
    if (!window.confirm(`Make build ${b.build_id} the current build of task queue ${queue}? ` +
      "Its workers take the queue's new runs from their next heartbeat; the other builds' " +
      `workers only finish the runs pinned to them.${nobody}`)) return;
    if (await change(queue, "current", { build_id: b.build_id },
      `Build ${b.build_id} is the current build of ${queue}.`,
      `Cannot make ${b.build_id} current`)) drafts.delete(keyOf(queue, b));
  }

  async function ramp(queue, b, field) {
    const text = field.value.trim();
    const percent = Number(text);
    if (text === "" || Number.isNaN(percent)) {
      ctx.toast(`Cannot ramp ${b.build_id}: give its share of new runs, from 0 to 100.`, "error");
      return;
    }
    if (await change(queue, "ramping", { build_id: b.build_id, percent },
      `Build ${b.build_id} ramps on ${queue}: it takes ${share(percent)} of the new runs.`,
      `Cannot ramp ${b.build_id}`)) drafts.delete(keyOf(queue, b));
  }

  function stopRamp(queue, b) {
    change(queue, "ramping", { build_id: null },
      `No build ramps on ${queue}: its current build takes every new run.`,
      `Cannot stop the ramp of ${queue}`);
  }

  function controls(queue, b) {
    if (!ctx.isAdmin || b.current) return [];
    const key = keyOf(queue, b);
    const button = (action, label, onclick, cls = "ghost") => h("button", {
      type: "button", class: cls, "data-action": action, text: label, onclick,
    });
    // Text, not type=number: the page puts the caret back after a refresh,
    // which a number field does not allow; the server checks the share.
    const field = h("input", {
      type: "text", inputmode: "decimal", name: "percent", "data-key": key, size: 4,
      "aria-label": `${b.build_id}'s share of new runs, in percent`, placeholder: "%",
      oninput: () => drafts.set(key, field.value),
      onkeydown: (event) => {
        if (event.key === "Enter") ramp(queue, b, field);
      },
    });
    field.value = drafts.get(key) ?? (b.ramp === null ? "" : String(b.ramp));
    return [
      button("make-current", "Make current", () => makeCurrent(queue, b)),
      field,
      button("ramp", "Ramp", () => ramp(queue, b, field)),
      b.ramp !== null ? button("stop-ramp", "Stop ramp", () => stopRamp(queue, b),
        "ghost danger-text") : null,
    ];
  }

  function row(queue, b, now) {
    return h("tr", { "data-build": b.build_id, class: waits(b) ? "waits" : "" },
      h("td", {}, h("span", { class: "mono", text: b.build_id }),
        h("div", { class: "actions" }, controls(queue, b))),
      h("td", {}, b.current ? h("span", { class: "badge status-running", text: "current" }) : ""),
      h("td", { class: "ramp", text: b.ramp === null ? "–" : share(b.ramp),
        title: b.ramp === null ? "" : "its share of the queue's new runs" }),
      h("td", { title: b.promoted_at ? fmtRelative(b.promoted_at, now) : "",
        text: b.promoted_at ? fmtTime(b.promoted_at) : "never" }),
      h("td", { class: "open-runs" }, String(b.open_runs),
        waits(b) ? h("div", { text: "they wait" }) : null,
        idle(b) ? h("div", { class: "muted", text: "can be shut down" }) : null),
      h("td", { class: "workers", text: String(b.workers) }));
  }

  function section(q, now) {
    const body = h("tbody", {}, q.builds.map((b) => row(q.task_queue, b, now)));
    const notes = q.builds.filter(waits).map((b) => h("p", { class: "waits" },
      `Build ${b.build_id} has ${b.open_runs} open run(s) and no live worker: they wait. ` +
      `Start a worker of it (perdure worker ... --build-id ${b.build_id}), or move them ` +
      "(perdure build move ID BUILD, after perdure replay ... --build-id " +
      `${b.build_id}).`));
    return h("section", { class: "card flush builds-queue", "data-queue": q.task_queue },
      h("h2", {}, "Task queue ", h("span", { class: "mono", text: q.task_queue })),
      h("table", { class: "runs" },
        h("thead", {}, h("tr", {},
          ["Build", "Current", "Ramp", "Promoted at", "Open runs", "Live workers"].map((t) =>
            h("th", { text: t })))),
        body),
      notes.length ? h("div", { class: "notes" }, notes) : null);
  }

  function show(items) {
    // (A ramp field that has the focus gets it back, with its caret.)
    const active = document.activeElement;
    const focused = active && queues.contains(active) && active.dataset.key
      ? { key: active.dataset.key, start: active.selectionStart, end: active.selectionEnd }
      : null;
    clear(queues);
    const now = Date.now() / 1000;
    queues.append(...items.map((q) => section(q, now)));
    if (focused) {
      const again = [...queues.querySelectorAll("input[data-key]")]
        .find((field) => field.dataset.key === focused.key);
      again?.focus();
      again?.setSelectionRange(focused.start, focused.end);
    }
    message.hidden = items.length > 0;
    message.classList.remove("error");
    if (!items.length) message.textContent = "No task queue has had a worker with a build.";
    const builds = items.reduce((n, q) => n + q.builds.length, 0);
    document.getElementById("build-count").textContent =
      `${builds} build${builds === 1 ? "" : "s"} on ${items.length} ` +
      `queue${items.length === 1 ? "" : "s"}`;
  }

  const page = refreshing({ path: "/builds", show, body: queues, message, what: "the builds" });
  const load = page.load;
  load();
  return page.dispose;
}
