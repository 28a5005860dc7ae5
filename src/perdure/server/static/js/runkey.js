// A run's fairness key in the workflow page's header (docs/queues.md#fairness):
// shown to anyone; an admin may change an open run's key, or take it away,
// with the Key… dialog (POST .../fairness-key, as `perdure set-fairness-key`).

import { api, wfPath } from "./api.js";
import { h } from "./dom.js";

const TITLE = "Whose work it is: within a priority, its queues serve the keys in turn";

/**
 * The header's key: "key acme" (null for a run without one), with a button
 * for an admin while the run is open. ``q``: the page's run query;
 * ``onChanged``: reload the page once the key changed.
 */
export function keyChip({ id, q, desc, isAdmin, toast, onChanged }) {
  const key = desc.fairness_key;
  const editable = isAdmin && !desc.closed_at;
  if (!key && !editable) return null;
  const shown = key ? ["key ", h("b", { class: "mono", text: key })] : ["no key"];
  const button = editable
    ? h("button", { type: "button", class: "link", id: "key-button", text: key ? "change…" : "set…",
      onclick: () => openKey({ id, q, key, toast, onChanged }) })
    : null;
  return h("span", { id: "wf-fairness", title: TITLE }, ...shown, button ? " " : null, button);
}

function openKey({ id, q, key, toast, onChanged }) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  const remove = document.getElementById("key-remove");
  input.value = key || "";
  error.hidden = true;
  remove.hidden = !key;
  const send = async (value) => {
    try {
      await api(`${wfPath(id)}/fairness-key${q}`, { method: "POST", body: { fairness_key: value } });
      dialog.close();
      toast(value === null ? "No key: its queued tasks moved."
        : `Key ${value}: its queued tasks moved.`, "ok");
      onChanged();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  document.getElementById("key-cancel").onclick = () => dialog.close();
  remove.onclick = () => send(null);
  document.getElementById("key-form").onsubmit = (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = "A key is a non-empty string (Remove key takes it away).";
      error.hidden = false;
      return;
    }
    send(value);
  };
  dialog.showModal();
  input.focus();
}
