// A run's streams (workflow.write_stream, activity.write_stream) on its page:
// each stream's key, length and whether it is closed (the page's refresh
// brings the list), and the values of the one chosen, followed live through
// the API's event stream (GET .../streams/{key}/events): a value shows as it
// is written, not at the next refresh, which matters for a model's tokens.
// The follower reconnects from the next position if the connection drops,
// and stops at the stream's end (closed, or the run ended).

import { ApiError, readEvents, wfPath } from "./api.js";
import { clear, h, json } from "./dom.js";

// The latest values kept and listed; a longer stream is read from its last ones.
const SHOWN = 500;
const RETRY_MS = 2000;

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** The Streams section: a node kept across the page's redraws, and update(streams, desc). */
export function streamsPanel(id) {
  const node = h("section", { class: "card", id: "streams" });
  let runId = null;
  let runClosed = false;
  let streams = [];
  let follow = null; // the chosen stream: {key, values, skipped, next, ended, error, controller}
  let pending = false; // a redraw is scheduled
  let listOpen = false; // the values listed one by one (a stream of strings: on request)

  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  async function read(f) {
    const base = `${wfPath(id)}/streams/${encodeURIComponent(f.key)}/events` +
      `?run_id=${encodeURIComponent(runId)}`;
    while (!f.ended && !f.controller.signal.aborted) {
      try {
        await readEvents(`${base}&start=${f.next}`, {
          signal: f.controller.signal,
          onEvent: (event) => {
            if (event.event === "end") {
              f.ended = true;
            } else if (event.event === "error") {
              f.error = JSON.parse(event.data).detail;
              f.ended = true;
            } else if (event.event === "message") {
              f.values.push({ position: Number(event.id), value: JSON.parse(event.data) });
              if (f.values.length > SHOWN) { f.values.shift(); f.skipped += 1; }
              f.next = Number(event.id) + 1;
              f.error = null;
            }
            redraw();
          },
        });
      } catch (error) {
        if (error.name === "AbortError") return;
        f.error = error.message;
        redraw();
        // An answer that will not change (no such run, a bad key, no token): give up.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) return;
      }
      if (!f.ended) await sleep(RETRY_MS, f.controller.signal); // (dropped: read on)
    }
  }

  function choose(key) {
    follow?.controller.abort();
    const listed = streams.find((s) => s.key === key);
    const start = Math.max(0, (listed ? listed.length : 0) - SHOWN);
    follow = { key, values: [], skipped: start, next: start, ended: false, error: null,
      controller: new AbortController() };
    read(follow);
    draw();
  }

  function valuesView() {
    if (!follow) return null;
    const f = follow;
    const state = f.error ? h("span", { class: "error", text: f.error })
      : f.ended ? h("span", { class: "muted", id: "stream-state", text: "ended" })
        : h("span", { class: "live", id: "stream-state", text: "following…" });
    const strings = f.values.length > 0 && f.values.every((v) => typeof v.value === "string");
    const list = h("ol", { class: "stream-values", id: "stream-values" }, f.values.map((v) =>
      h("li", { "data-position": v.position },
        h("span", { class: "num muted", text: v.position }),
        h("code", { text: json(v.value) }))));
    return h("div", { class: "stream-view" },
      h("div", { class: "section-head" },
        h("h3", {}, "Values of ", h("code", { text: f.key })), state),
      f.skipped ? h("p", { class: "muted", id: "stream-skipped",
        text: `${f.skipped.toLocaleString("en")} earlier values are not shown ` +
          `(perdure stream ${id} ${JSON.stringify(f.key)} --start 0 prints them all).` }) : null,
      f.values.length === 0 ? h("p", { class: "muted", text: "No values yet." }) : null,
      // A stream of strings (a model's tokens) reads as its text; each value is a click away.
      strings ? h("pre", { class: "json stream-text", id: "stream-text",
        text: f.values.map((v) => v.value).join("") }) : null,
      strings ? h("details", { open: listOpen, ontoggle: (e) => { listOpen = e.target.open; } },
        h("summary", { text: `Values (${f.values.length})` }), list)
        : f.values.length ? list : null);
  }

  function draw() {
    // Each redraw keeps where the text and the list were scrolled to, and one
    // scrolled to its end stays there as values come (a model's answer grows).
    const scrolled = ["#stream-text", "#stream-values"].map((sel) => {
      const el = node.querySelector(sel);
      return el && { sel, top: el.scrollTop, end: el.scrollTop + el.clientHeight >= el.scrollHeight - 4 };
    }).filter(Boolean);
    build();
    for (const { sel, top, end } of scrolled) {
      const el = node.querySelector(sel);
      if (el) el.scrollTop = end ? el.scrollHeight : top;
    }
  }

  function build() {
    clear(node);
    node.append(h("h2", { text: `Streams (${streams.length})` }));
    if (!streams.length) {
      node.append(h("p", { class: "muted", id: "streams-none",
        text: "None (workflow.write_stream, activity.write_stream)." }));
      return;
    }
    const rows = streams.map((s) => {
      const chosen = follow && follow.key === s.key;
      const length = chosen ? Math.max(s.length, follow.next) : s.length;
      const state = s.closed ? "closed" : runClosed ? "ended with the run" : "open";
      return h("tr", { class: chosen ? "chosen" : "", "data-key": s.key,
        title: "Show its values", onclick: () => { if (!chosen) choose(s.key); } },
      h("td", { class: "mono", text: s.key }),
      h("td", { class: "num", text: length.toLocaleString("en") }),
      h("td", { class: s.closed || runClosed ? "muted" : "live", text: state }));
    });
    node.append(
      h("table", { class: "streams", id: "streams-table" },
        h("thead", {}, h("tr", {}, ["Key", "Values", ""].map((t) => h("th", { text: t })))),
        h("tbody", {}, rows)),
      valuesView());
  }

  return {
    node,
    /** The run's streams, as GET .../streams lists them, and its description. */
    update(list, desc) {
      if (desc.run_id !== runId) { // another run (continued as new): start over
        follow?.controller.abort();
        follow = null;
        runId = desc.run_id;
      }
      streams = list;
      runClosed = Boolean(desc.closed_at);
      if (!follow && streams.length) choose(streams[0].key);
      else draw();
    },
    dispose() {
      follow?.controller.abort();
    },
  };
}
