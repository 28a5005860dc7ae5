"""What the browser tests share (test_browser.py, test_streams_ui.py):
Debian's chromium driven by Playwright, and a stack of a worker and two
servers (one open, one with a read and an admin token) in subprocesses.

Importing this module skips the importing test module when chromium is
absent, except in CI (``CI=true``), where the tests must run: ``make
chromium`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from surface_helpers import Proc, cli, spawn, stop_serving_worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
]
TIMEOUT_MS = 15_000

if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip(
        "chromium is not installed (apt-get install -y chromium, or `make chromium`); "
        "these tests run in CI",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# expect()'s own wait (5 s by default) as long as the pages' actions': on a
# loaded CI machine (two test processes, chromium, a worker and two servers
# on two cores) a reset's new run once took longer than 5 s to show the
# worker's first turn.
expect.set_options(timeout=TIMEOUT_MS)


def launch() -> Iterator[Browser]:
    """A headless chromium for a module's tests (a fixture's body)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("CI=true but chromium is missing: run `make chromium` first")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser: Browser) -> Iterator[Page]:
    """A page of its own context; fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@dataclass
class Stack:
    db: str
    open_url: str  # a server without tokens (loopback)
    auth_url: str  # a server with a read and an admin token


def serve(folder: Path, modules: Sequence[str], admin: str, read: str) -> Iterator[Stack]:
    """A database in ``folder`` with a worker of ``modules`` and the two
    servers (a fixture's body); each process must stop cleanly."""
    db = f"sqlite:///{folder / 'ui.db'}"
    # Made before any process starts: a server refuses a SQLite file that
    # does not exist, and the worker would create it only as it starts.
    made = cli("migrate", "--db", db)
    assert made.returncode == 0, made.stderr
    procs: list[Proc] = []
    try:
        worker_args = ["worker", *modules, "--db", db, "--poll-interval", "0.02"]
        procs.append(spawn(worker_args, folder / "worker.log"))
        procs.append(spawn(["server", "--port", "0", "--db", db], folder / "open.log"))
        tokens = {"PERDURE_ADMIN_TOKEN": admin, "PERDURE_TOKEN": read}
        procs.append(spawn(["server", "--port", "0", "--db", db], folder / "auth.log", tokens))
        yield Stack(db, procs[1].url(), procs[2].url())
        stop_serving_worker(procs[0], db)
        for proc in procs[1:]:
            assert proc.stop() == 0, proc.output()
    finally:
        for proc in procs:
            proc.stop(9)
