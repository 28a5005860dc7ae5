// The task queues page (#/queues): each queue's activities (running, waiting,
// backing off) and its limits; admins set and lift limits with the form above
// the table (a row's "Edit" fills it in).

import { api } from "./api.js";
import { clear, fmtDuration, fmtRelative, fmtTime, h } from "./dom.js";
import { refreshing } from "./refresh.js";


const limitsPath = (queue) => `/queues/${encodeURIComponent(queue)}/limits`;

function limitsText(limits) {
  if (!limits) return "none";
  const parts = [];
  if (limits.max_running === 0) parts.push("paused: no attempt starts");
  else if (limits.max_running !== null) parts.push(`at most ${limits.max_running} running`);
  if (limits.max_starts !== null) {
    parts.push(`at most ${limits.max_starts} started per ${fmtDuration(limits.per_seconds)}`);
  }
  if (limits.max_running_per_key != null && limits.max_running !== 0) {
    parts.push(`at most ${limits.max_running_per_key} running per key`);
  }
  if (limits.max_starts_per_key != null && limits.max_running !== 0) {
    parts.push(`at most ${limits.max_starts_per_key} of a key started per `
      + fmtDuration(limits.per_seconds));
  }
  return parts.join(", ");
}

export function renderQueues(container, params, ctx) {
  const heading = h("div", { class: "page-head" },
    h("h1", { text: "Task queues" }),
    h("span", { class: "muted", id: "queue-count" }));
  const field = (name, label, attrs) => h("label", {}, label,
    h("input", { name, ...attrs }));
  const form = h("form", { id: "limits-form", class: "card limits-form", hidden: !ctx.isAdmin },
    field("queue", "Task queue", { type: "text", required: true, placeholder: "llm" }),
    field("max_running", "at most", { type: "number", min: 0, placeholder: "–",
      title: "0 pauses the queue: no attempt starts" }),
    h("span", { text: "running; at most" }),
    field("max_starts", "", { type: "number", min: 1, placeholder: "–" }),
    field("per_seconds", "started per", { type: "number", min: 0.001, step: "any",
      placeholder: "60" }),
    h("span", { text: "seconds; at most" }),
    field("max_running_per_key", "", { type: "number", min: 1, placeholder: "–",
      title: "of one fairness key running at once (the unkeyed: one key)" }),
    h("span", { text: "running per key; at most" }),
    field("max_starts_per_key", "", { type: "number", min: 1, placeholder: "–",
      title: "of one fairness key started per the seconds above (the unkeyed: one key)" }),
    h("span", { text: "of a key started per those seconds" }),
    h("button", { type: "submit", "data-action": "set-limits", text: "Set limits" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setLimits();
  });
  const body = h("tbody");
  const table = h("table", { class: "runs", id: "queues" },
    h("thead", {}, h("tr", {},
      ["Queue", "Running", "Waiting", "Backing off", "Limits", "Held until"].map((t) =>
        h("th", { text: t })))),
    body);
  const message = h("div", { class: "empty", hidden: true });
  const hint = h("p", { class: "muted" },
    "Limits hold across every worker of a queue: set them here, with ",
    h("code", { text: "perdure queue limit" }), " or Client.set_queue_limits.");
  container.append(heading, form, h("div", { class: "card flush" }, table, message), hint);

  const number = (name) => {
    const text = form.elements[name].value.trim();
    return text === "" ? null : Number(text);
  };

  async function setLimits() {
    const queue = form.elements.queue.value.trim();
    const body = { max_running: number("max_running"), max_starts: number("max_starts"),
      per_seconds: number("per_seconds"), max_running_per_key: number("max_running_per_key"),
      max_starts_per_key: number("max_starts_per_key") };
    try {
      const set = await api(limitsPath(queue), { method: "PUT", body });
      ctx.toast(`Task queue ${queue}: ${limitsText(set)}.`, "ok");
      load();
    } catch (error) {
      ctx.toast(`Cannot set the limits of ${queue}: ${error.message}`, "error");
    }
  }

  async function lift(q) {
    if (!window.confirm(`Lift the limits of task queue ${q.task_queue}?`)) return;
    try {
      await api(limitsPath(q.task_queue), { method: "DELETE" });
      ctx.toast(`Task queue ${q.task_queue}: limits lifted.`, "ok");
      load();
    } catch (error) {
      ctx.toast(`Cannot lift the limits of ${q.task_queue}: ${error.message}`, "error");
    }
  }

  function edit(q) {
    const limits = q.limits || {};
    form.elements.queue.value = q.task_queue;
    const names = ["max_running", "max_starts", "per_seconds", "max_running_per_key",
      "max_starts_per_key"];
    for (const name of names) {
      form.elements[name].value = limits[name] ?? "";
    }
    form.elements.max_running.focus();
  }

  function buttons(q) {
    if (!ctx.isAdmin) return [];
    const button = (action, label, onclick, cls = "ghost") => h("button", {
      type: "button", class: cls, "data-action": action, text: label, onclick,
    });
    return [
      button("edit", q.limits ? "Edit" : "Limit…", () => edit(q)),
      q.limits ? button("lift", "Lift", () => lift(q), "ghost danger-text") : null,
    ];
  }

  function pausedTitle(q) {
    // (The first paused, by their ids: each is unpaused on its workflow's page.)
    const named = (q.paused_activities || []).map(
      (a) => `${a.workflow_id} ref ${a.activity_id} (${a.activity_type})`);
    const more = q.paused > named.length ? [`… and ${q.paused - named.length} more`] : [];
    return ["Paused by an operator; unpause each on its workflow's page:", ...named, ...more]
      .join("\n");
  }

  function byPriority(found) {
    // (The waiting by priority, as the cell's tooltip.)
    const parts = Object.entries(found || {}).map(([p, n]) => `priority ${p}: ${n}`);
    return parts.length ? parts.join(", ") : "";
  }

  function byKey(q) {
    const parts = Object.entries(q.waiting_by_key || {}).map(([k, n]) => `${k}: ${n}`);
    const more = q.waiting_keys - parts.length;
    return ["Served in turn; the keys with the most waiting:", parts.join(", ")
      + (more > 0 ? `, and ${more} more` : "")].join("\n");
  }

  function weighted(q) {
    // (Under the waiting: the keys given a weight; their weights as its tooltip.)
    const parts = Object.entries(q.fairness_weights || {}).map(([k, w]) => `${k}: ${w}`);
    if (!parts.length) return null;
    return h("div", { class: "muted weighted-keys",
      text: `${parts.length} key${parts.length === 1 ? "" : "s"} weighted`,
      title: `Tasks per turn (the other keys: 1): ${parts.join(", ")}` });
  }

  function atLimit(q) {
    // (Under the limits: the keys at their limit per key; the most running as its tooltip.)
    const limits = q.limits;
    if (!limits || (limits.max_running_per_key == null && limits.max_starts_per_key == null)) {
      return null;
    }
    const listed = (found) => Object.entries(found || {})
      .map(([k, n]) => `${k || "(unkeyed)"}: ${n}`);
    const running = listed(q.running_by_key);
    const started = listed(q.started_by_key);
    const title = [
      running.length ? `Running, by key: ${running.join(", ")}` : "",
      started.length ? `Started in the window, by key: ${started.join(", ")}` : "",
    ].filter(Boolean).join("\n");
    return h("div", { class: "muted keys-at-limit",
      text: `${q.keys_at_limit} key${q.keys_at_limit === 1 ? "" : "s"} at the limit`, title });
  }

  function show(items) {
    clear(body);
    const now = Date.now() / 1000;
    for (const q of items) {
      const full = q.limits && q.limits.max_running !== null && q.running >= q.limits.max_running;
      body.append(h("tr", { "data-queue": q.task_queue },
        h("td", {}, h("span", { class: "mono", text: q.task_queue }),
          h("div", { class: "actions" }, buttons(q))),
        h("td", { text: String(q.running), class: full ? "full" : "" }),
        h("td", { title: byPriority(q.waiting_by_priority) }, String(q.waiting),
          // (Paused by an operator: neither waiting nor backing off.)
          q.paused ? h("div", { class: "muted paused-count", text: `${q.paused} paused`,
            title: pausedTitle(q) }) : null,
          // (Fairness keys with work waiting, served in turn; the top ones as its tooltip.)
          q.waiting_keys ? h("div", { class: "muted waiting-keys",
            text: `${q.waiting_keys} key${q.waiting_keys === 1 ? "" : "s"}`,
            title: byKey(q) }) : null,
          weighted(q)),
        h("td", { text: String(q.backing_off), title: "waiting for a retry's time" }),
        h("td", {}, limitsText(q.limits),
          q.limits && q.limits.max_starts !== null
            ? h("div", { class: "muted", text: `${q.started} started in the window` }) : null,
          atLimit(q)),
        h("td", { title: q.held_until ? fmtRelative(q.held_until, now) : "",
          text: q.held_until ? fmtTime(q.held_until) : "–" })));
    }
    message.hidden = items.length > 0;
    message.classList.remove("error");
    if (!items.length) message.textContent = "No activity tasks, and no queue has limits.";
    document.getElementById("queue-count").textContent = `${items.length} shown`;
  }

  const page = refreshing({ path: "/queues", show, body, message, what: "the task queues" });
  const load = page.load;
  load();
  return page.dispose;
}
