// DOM and formatting helpers. Text always goes in through textContent, never
// innerHTML: workflow ids, payloads and errors are data, not markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("a", {href: "#", class: "x", onclick: fn}, "text", childNode) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Seconds since the epoch from an ISO string or a number. */
export function toSeconds(value) {
  if (value === null || value === undefined) return null;
  return typeof value === "number" ? value : Date.parse(value) / 1000;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Local date and time, "2024-05-01 14:03:22". */
export function fmtTime(value) {
  const t = toSeconds(value);
  if (t === null || Number.isNaN(t)) return "–";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local clock time with milliseconds, "14:03:22.117". */
export function fmtClock(value) {
  const t = toSeconds(value);
  if (t === null) return "–";
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
    `${pad(d.getMilliseconds(), 3)}`;
}

/** "850 ms", "4.2 s", "3 m 10 s", "2 h 5 m", "3 d 4 h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const sec = Math.max(0, seconds);
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 59.5) return `${sec < 9.95 ? sec.toFixed(1) : Math.round(sec)} s`;
  // Round to the smaller unit first, so that 2 d 23.9 h reads "3 d 0 h", not "2 d 24 h".
  const two = (big, small) => {
    const total = Math.round(sec / small);
    const per = big / small;
    return [Math.floor(total / per), total % per];
  };
  if (sec < 3599.5) { const [m, s] = two(60, 1); return `${m} m ${s} s`; }
  if (sec < 86340) { const [h, m] = two(3600, 60); return `${h} h ${m} m`; }
  const [d, h] = two(86400, 3600);
  return `${d} d ${h} h`;
}

/** "in 3 m 10 s" / "5 s ago". */
export function fmtRelative(value, now = Date.now() / 1000) {
  const t = toSeconds(value);
  if (t === null) return "";
  const delta = t - now;
  return delta >= 0 ? `in ${fmtDuration(delta)}` : `${fmtDuration(-delta)} ago`;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: status.replaceAll("_", " ") });
}

/** Compact JSON for one line; pretty JSON for blocks. */
export function json(value, pretty = false) {
  const text = JSON.stringify(value, null, pretty ? 2 : 0);
  return text === undefined ? "undefined" : text;
}

export function truncate(text, max = 120) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
