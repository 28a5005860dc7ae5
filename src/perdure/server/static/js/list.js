// The workflow list: status filter, id search, type filter, search attributes,
// time range, paging by cursor, auto-refresh, and (admins) acting on every
// run the filters match (batch.js). Filters live in the URL
// (#/?status=failed&search=o-1&attr=customer%3Dc-42) so a filtered view can be shared.

import { api, ApiError, wfHref } from "./api.js";
import { batchFiltered, openBatch } from "./batch.js";
import { clear, fmtDuration, fmtRelative, fmtTime, h, statusBadge, toSeconds } from "./dom.js";

const STATUSES = ["running", "completed", "failed", "cancelled", "terminated", "timed_out",
  "continued_as_new"];
const LABELS = { timed_out: "timed out", continued_as_new: "continued" };
const RANGES = [
  ["", "Any time"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];
const PAGE_SIZE = 50;
const REFRESH_MS = 5000;
const SEPARATOR = /[\s,]/; // between the attribute filter's terms

/**
 * The attribute filter's text as NAME=VALUE terms: separated by spaces or
 * commas, and a double-quoted part may hold either (`city="New York"`).
 * A term without "=" goes to the server as it is, which says what is wrong.
 */
export function parseTerms(text) {
  const terms = [];
  let i = 0;
  while (i < text.length) {
    if (SEPARATOR.test(text[i])) { i++; continue; }
    let term = "";
    while (i < text.length && !SEPARATOR.test(text[i])) {
      if (text[i] === '"') {
        const end = text.indexOf('"', i + 1);
        const stop = end === -1 ? text.length : end;
        term += text.slice(i + 1, stop);
        i = stop + 1;
      } else {
        term += text[i++];
      }
    }
    terms.push(term);
  }
  return terms;
}

/** Terms back as the filter's text: a value with a space, a comma or a quote in quotes. */
export function formatTerms(terms) {
  const quoted = (part) => (/[\s,"]/.test(part) ? `"${part}"` : part);
  return terms.map((term) => {
    const at = term.indexOf("=");
    return at < 0 ? quoted(term) : `${quoted(term.slice(0, at))}=${quoted(term.slice(at + 1))}`;
  }).join(" ");
}

export function renderList(container, params, ctx) {
  const filters = {
    status: params.get("status") || "",
    search: params.get("search") || "",
    type: params.get("type") || "",
    since: params.get("since") || "",
    retrying: params.get("retrying") || "", // "true": runs whose turns fail and are retried
    latest: params.get("latest") || "", // "true": each id's latest run only (not one a reset replaced)
    attr: params.getAll("attr"), // NAME=VALUE terms: runs with each of these search attributes
  };
  const cursors = [null]; // cursor of each page seen; the last is the current page
  let timer = null;
  let controller = null;
  let disposed = false;

  // Admins act on every run a filtered list names, or on the runs' pending
  // activities (the dialog asks first).
  const batch = ctx.isAdmin ? h("button", {
    type: "button", id: "batch-button", class: "danger", text: "Act on all matching…",
    title: "Cancel, terminate or reset every run these filters match, or pause or unpause " +
      "their pending activities",
    onclick: () => openBatch(filters, load),
  }) : null;
  const heading = h("div", { class: "page-head" },
    h("h1", { text: "Workflows" }),
    h("span", { class: "muted", id: "list-count" }),
    batch);

  const chips = h("div", { class: "chips", role: "group", "aria-label": "Status" },
    ["", ...STATUSES].map((status) => h("button", {
      type: "button",
      class: `chip${status ? ` chip-${status}` : ""}`,
      "data-status": status,
      "aria-pressed": String(filters.status === status),
      text: LABELS[status] || status || "all",
      onclick: () => { filters.status = status; changed(); },
    })));

  const search = h("input", {
    type: "search", id: "search", placeholder: "Search workflow id…",
    value: filters.search, "aria-label": "Search workflow id", spellcheck: "false",
  });
  const type = h("input", {
    type: "search", id: "type-filter", placeholder: "Workflow type", value: filters.type,
    "aria-label": "Workflow type", spellcheck: "false",
  });
  const attrs = h("input", {
    type: "search", id: "attr-filter", placeholder: "Attributes: name=value…",
    value: formatTerms(filters.attr), "aria-label": "Search attributes", spellcheck: "false",
    title: "Only runs with these search attributes: name=value terms separated by spaces " +
      "or commas, each one required (customer=c-42 region=eu). Values match as text: " +
      "amount=120 finds 120 and \"120\". Quote a value with spaces: city=\"New York\". " +
      "Bounds too: total>=1000 total<5000 (numbers by value), day>=2026-12-01 (text by " +
      "character).",
  });
  const since = h("select", { id: "since", "aria-label": "Started" },
    RANGES.map(([value, label]) =>
      h("option", { value, selected: filters.since === value, text: label })));
  let typing = null;
  for (const input of [search, type, attrs]) {
    input.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        filters.search = search.value.trim();
        filters.type = type.value.trim();
        filters.attr = parseTerms(attrs.value);
        changed();
      }, 250);
    });
  }
  since.addEventListener("change", () => { filters.since = since.value; changed(); });
  const retrying = h("input", { type: "checkbox", id: "retrying-only",
    checked: filters.retrying === "true" });
  retrying.addEventListener("change", () => {
    filters.retrying = retrying.checked ? "true" : "";
    changed();
  });
  const latest = h("input", { type: "checkbox", id: "latest-only",
    checked: filters.latest === "true" });
  latest.addEventListener("change", () => {
    filters.latest = latest.checked ? "true" : "";
    changed();
  });
  const auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
  auto.addEventListener("change", schedule);

  const toolbar = h("div", { class: "toolbar" }, chips,
    h("div", { class: "filters" }, search, type, attrs, since,
      h("label", { class: "check", title: "Only runs whose latest workflow task failed and " +
        "is retried (non-determinism, a payload its workers cannot open, ...)" },
      retrying, " Retrying only"),
      h("label", { class: "check", title: "Only each workflow id's latest run: not the runs " +
        "a reset (or a continue-as-new, or a reuse of the id) replaced" },
      latest, " Latest runs only"),
      h("label", { class: "check" }, auto, " Auto-refresh")));

  const body = h("tbody");
  const table = h("table", { class: "runs" },
    h("thead", {}, h("tr", {},
      ["Workflow id", "Type", "Status", "Started", "Duration", "Closed"].map((t) =>
        h("th", { text: t })))),
    body);
  const newer = h("button", { type: "button", class: "ghost", text: "← Newer" });
  const older = h("button", { type: "button", class: "ghost", text: "Older →" });
  const pageLabel = h("span", { class: "muted" });
  newer.addEventListener("click", () => { cursors.pop(); load(); });
  older.addEventListener("click", () => { cursors.push(older.dataset.cursor); load(); });
  const pager = h("div", { class: "pager" }, newer, pageLabel, older);
  const message = h("div", { class: "empty", hidden: true });

  container.append(heading, toolbar, h("div", { class: "card flush" }, table, message), pager);

  function showBatch() {
    if (batch) batch.hidden = !batchFiltered(filters);
  }

  function changed() {
    cursors.length = 1;
    showBatch();
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      if (Array.isArray(value)) for (const item of value) query.append(key, item);
      else if (value) query.set(key, value);
    }
    const qs = query.toString();
    history.replaceState(null, "", `#/${qs ? `?${qs}` : ""}`);
    for (const chip of chips.children) {
      chip.setAttribute("aria-pressed", String(chip.dataset.status === filters.status));
    }
    load();
  }

  function schedule() {
    clearTimeout(timer);
    // Only the first page refreshes by itself: older pages hold still while read.
    if (!disposed && auto.checked && cursors.length === 1) timer = setTimeout(load, REFRESH_MS);
  }

  async function load() {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filters.status) query.set("status", filters.status);
    if (filters.search) query.set("search", filters.search);
    if (filters.type) query.set("type", filters.type);
    if (filters.since) query.set("since", filters.since);
    if (filters.retrying) query.set("retrying", "true");
    if (filters.latest) query.set("latest", "true");
    for (const term of filters.attr) query.append("attr", term);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/workflows?${query}`, { signal: controller.signal });
      show(page);
    } catch (error) {
      if (error.name === "AbortError") return;
      showMessage(error instanceof ApiError && error.status === 401
        ? "Enter an access token to see workflows."
        : `Cannot load workflows: ${error.message}`, true);
    }
    schedule();
  }

  function showMessage(text, isError = false) {
    clear(body);
    message.hidden = false;
    message.textContent = text;
    message.classList.toggle("error", isError);
  }

  function show(page) {
    clear(body);
    const now = Date.now() / 1000;
    for (const run of page.items) {
      const started = toSeconds(run.created_at);
      const end = run.closed_at ? toSeconds(run.closed_at) : now;
      const href = wfHref(run.id, run.run_id);
      body.append(h("tr", { "data-id": run.id },
        h("td", { class: "mono" }, h("a", { href, text: run.id })),
        h("td", { text: run.workflow_type }),
        h("td", {}, statusBadge(run.status), run.last_error ? h("span", {
          class: "retrying", text: "retrying",
          title: `Its latest workflow task failed; it is retried with backoff:\n${run.last_error}`,
        }) : null),
        h("td", { title: fmtRelative(run.created_at, now), text: fmtTime(run.created_at) }),
        h("td", { class: "num", text: fmtDuration(end - started) }),
        h("td", { text: run.closed_at ? fmtTime(run.closed_at) : "–" })));
    }
    if (page.items.length === 0) {
      const filtered = Object.values(filters).some((v) => (Array.isArray(v) ? v.length : v));
      showMessage(filtered ? "No workflow runs match these filters." : "No workflow runs yet.");
    } else {
      message.hidden = true;
    }
    const n = cursors.length;
    document.getElementById("list-count").textContent =
      `${page.items.length} shown${n > 1 ? ` · page ${n}` : ""}`;
    pageLabel.textContent = `Page ${n}`;
    newer.disabled = n === 1;
    older.disabled = !page.next_cursor;
    older.dataset.cursor = page.next_cursor || "";
    pager.hidden = n === 1 && !page.next_cursor;
  }

  showBatch();
  load();
  return () => {
    disposed = true;
    clearTimeout(timer);
    clearTimeout(typing);
    controller?.abort();
    const dialog = document.getElementById("batch-dialog");
    if (dialog.open) dialog.close(); // (its filters were this list's)
  };
}
