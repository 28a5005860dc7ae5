// The UI shell: hash routing (#/, #/workflows/<id>, #/schedules, #/queues and #/builds), the
// access token and the toasts. Views are functions (container, params, ctx) -> dispose().

import { api, ApiError, getToken, setToken } from "./api.js";
import { renderBuilds } from "./builds.js";
import { clear, h } from "./dom.js";
import { renderList } from "./list.js";
import { renderQueues } from "./queues.js";
import { renderSchedules } from "./schedules.js";
import { renderWorkflow } from "./workflow.js";

const view = document.getElementById("view");
const banner = document.getElementById("banner");
const tokenButton = document.getElementById("token-button");
const tokenDialog = document.getElementById("token-dialog");
const tokenInput = document.getElementById("token-input");
const tokenError = document.getElementById("token-error");

const ctx = {
  role: null, // "read", "admin" or null (no or no valid token)
  authRequired: false,
  get isAdmin() {
    return this.role === "admin";
  },
  toast,
  askToken: () => openTokenDialog(),
};

let dispose = () => {};

function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: "status", text });
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

async function refreshIdentity() {
  try {
    const me = await api("/whoami");
    ctx.role = me.role;
    ctx.authRequired = me.auth_required;
  } catch (error) {
    ctx.role = null;
    if (error instanceof ApiError && error.status === 401) setToken("");
  }
  if (!ctx.authRequired) {
    tokenButton.hidden = true;
  } else {
    tokenButton.hidden = false;
    tokenButton.textContent = ctx.role ? `Token: ${ctx.role}` : "Enter token";
    tokenButton.classList.toggle("attention", !ctx.role);
  }
  showBanner();
}

function showBanner() {
  clear(banner);
  if (ctx.authRequired && !ctx.role) {
    banner.hidden = false;
    banner.append(
      "This server needs an access token. ",
      h("button", { type: "button", class: "link", text: "Enter token", onclick: openTokenDialog }),
    );
  } else {
    banner.hidden = true;
  }
}

function openTokenDialog() {
  tokenInput.value = getToken();
  tokenError.hidden = true;
  if (!tokenDialog.open) tokenDialog.showModal();
  tokenInput.focus();
}

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  await refreshIdentity();
  if (ctx.authRequired && !ctx.role) {
    tokenError.textContent = "This token is not valid here.";
    tokenError.hidden = false;
    return;
  }
  tokenDialog.close();
  toast(`Signed in with a ${ctx.role} token.`);
  route();
});
document.getElementById("token-clear").addEventListener("click", async () => {
  setToken("");
  tokenDialog.close();
  await refreshIdentity();
  route();
});
document.getElementById("token-cancel").addEventListener("click", () => tokenDialog.close());
tokenButton.addEventListener("click", openTokenDialog);

let askedForToken = false;
window.addEventListener("perdure:auth-needed", () => {
  if (askedForToken || tokenDialog.open) return;
  askedForToken = true; // once per page load: no dialog storms from polling views
  refreshIdentity().then(openTokenDialog);
});

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  return { path, params: new URLSearchParams(query) };
}

function route() {
  dispose();
  clear(view);
  const { path, params } = parseHash();
  const match = path.match(/^\/workflows\/(.+)$/);
  if (match) {
    document.title = `${decodeURIComponent(match[1])} · perdure`;
    dispose = renderWorkflow(view, decodeURIComponent(match[1]), params, ctx);
  } else if (path === "/schedules") {
    document.title = "Schedules · perdure";
    dispose = renderSchedules(view, params, ctx);
  } else if (path === "/queues") {
    document.title = "Task queues · perdure";
    dispose = renderQueues(view, params, ctx);
  } else if (path === "/builds") {
    document.title = "Worker builds · perdure";
    dispose = renderBuilds(view, params, ctx);
  } else {
    document.title = "Workflows · perdure";
    dispose = renderList(view, params, ctx);
  }
}

window.addEventListener("hashchange", route);
refreshIdentity().then(route);
