// A page's table kept fresh: load `path`, hand its items to `show`, again
// every REFRESH_MS until disposed; a failure is shown in `message` (and the
// table `body` emptied). The schedules and task queues pages use it.

import { api, ApiError } from "./api.js";
import { clear } from "./dom.js";

const REFRESH_MS = 3000;

export function refreshing({ path, show, body, message, what }) {
  let timer = null;
  let controller = null;
  let disposed = false;

  async function load() {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    try {
      show((await api(path, { signal: controller.signal })).items);
    } catch (error) {
      if (error.name === "AbortError") return;
      clear(body);
      message.hidden = false;
      message.classList.add("error");
      message.textContent = error instanceof ApiError && error.status === 401
        ? `Enter an access token to see ${what}.`
        : `Cannot load ${what}: ${error.message}`;
    }
    if (!disposed) timer = setTimeout(load, REFRESH_MS);
  }

  return {
    load,
    dispose() {
      disposed = true;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
