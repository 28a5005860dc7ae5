"""Regenerate the UI screenshots in docs/img/ (not a test; needs chromium):

    .venv/bin/python tests/surfaces/make_screenshots.py docs/img

Runs the crash demo for a real order, a worker for the test workflows (an
onboarding whose e-mail step keeps failing while it waits for approval, plus a few
finished runs), and ``perdure server``; then photographs the list page, two
workflow pages, with three schedules made, the schedules page, with two
queues limited, the queues page, and with three builds' workers on a queue
(one ramping) and a build whose workers are gone, the builds page, in
headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import surface_workflows as wf
from browser_support import ARGS, CHROMIUM
from surface_helpers import Proc, spawn, wait_for

import perdure
from perdure.demo.run import run_demo


def populate(client: perdure.SyncClient) -> None:
    client.start("double", 21, id="nightly-report-0412")
    client.start("approval", "ada", 2, id="expense-claim-7731")
    client.start("doomed", "invoice INV-2291 has no customer", id="invoice-sync-2291")
    client.start("approval", "grace", id="expense-claim-7732")
    client.start("onboarding", "Grace Hopper", 99, id="onboarding-grace-hopper")
    claim = client.get_handle("expense-claim-7731")
    wait_for(lambda: claim.describe().waiting_signals, 20, "the claim's approval wait")
    claim.signal("approve", "finance-bot")
    client.get_handle("expense-claim-7732").terminate("duplicate of expense-claim-7731")
    onboarding = client.get_handle("onboarding-grace-hopper")
    wait_for(
        lambda: any(a.attempt >= 3 for a in onboarding.describe().pending_activities),
        30,
        "three failed welcome e-mails",
    )


def schedule_some(client: perdure.SyncClient) -> None:
    often = client.create_schedule("ledger-reconcile", "double", 7, every=timedelta(seconds=2))
    client.create_schedule(
        "nightly-report", "double", 21, cron="0 2 * * *", timezone="Europe/Paris"
    )
    client.create_schedule(
        "weekly-digest", "double", 1, cron="30 9 * * mon", timezone="America/New_York",
        paused=True, note="holiday freeze",
    )  # fmt: skip
    wait_for(lambda: often.describe().runs_started >= 3, 20, "three reconciliations")


def limit_some(client: perdure.SyncClient) -> None:
    client.set_queue_limits("default", max_running=2, max_starts=4, per=timedelta(minutes=1))
    client.set_queue_limits("payments", max_running=10)
    for i in range(5):
        client.start("approval", f"user-{i}", id=f"signup-{i}")
    wait_for(lambda: client.describe_queue("default").held_until, 20, "the rate limit to hold")


def build_some(client: perdure.SyncClient, db: str, folder: Path, workers: list[Proc]) -> None:
    """orders: a deploy under way (the old build's runs finishing, the new
    one current, the next ramping at 10%), each build with its worker (put
    in ``workers``, to stop); billing: a run pinned to a build whose workers
    are gone."""
    numbers = iter(range(1040, 2000))

    def start_worker(build: str) -> None:
        args = ["worker", wf.__file__, "--db", db, "--task-queue", "orders", "--build-id", build]
        # (A short lease: the old build's worker sees the new one is current sooner.)
        workers.append(spawn([*args, "--lease-timeout", "2"], folder / f"worker-{build}.log"))
        wait_for(
            lambda: any(b.build_id == build and b.workers for b in client.builds("orders")),
            20,
            f"the worker of build {build}",
        )

    def order() -> str | None:
        """Start an order; the build its first turn pinned it to."""
        ident = f"order-{next(numbers)}"
        client.start("awaits_an_event", ident, id=ident, task_queue="orders")
        handle = client.get_handle(ident)
        return wait_for(lambda: handle.describe().build_id, 20, f"{ident} pinned")

    start_worker("2026-12-06.1")
    for _ in range(3):
        order()
    start_worker("2026-12-07.1")  # (current from its start)
    client.set_ramping_build("orders", "2026-12-08.1", 10)
    start_worker("2026-12-08.1")
    while order() == "2026-12-06.1":  # (until the old build's worker takes no new run)
        pass
    for _ in range(16):  # (order-1055 and order-1056 fall in the ramp's 10%)
        order()
    client.set_current_build("billing", "2026-11-30.2")
    client.start("awaits_an_event", "b", id="invoice-run-77", task_queue="billing")
    client.get_handle("invoice-run-77").set_build_id("2026-11-30.2")
    client.set_current_build("billing", "2026-12-01.1")


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="perdure-shots-"))
    assert run_demo(folder) == 0
    db = f"sqlite:///{folder / 'demo.db'}"
    worker = spawn(["worker", wf.__file__, "--db", db], folder / "worker.log")
    server = spawn(["server", "--port", "0", "--db", db], folder / "server.log")
    builders: list[Proc] = []
    try:
        with perdure.SyncClient.connect(db) as client:
            populate(client)
        url = server.url()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.wait_for_selector("tr[data-id='onboarding-grace-hopper']")
            page.screenshot(path=str(out / "ui-list.png"))
            for name, ident in (
                ("ui-workflow.png", "onboarding-grace-hopper"),
                ("ui-workflow-completed.png", "order-1001"),
            ):
                page.set_viewport_size({"width": 1280, "height": 1000})
                page.goto(f"{url}#/workflows/{ident}")
                page.wait_for_selector("#timeline svg")
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / name), full_page=True)
            # (Made after the list's picture, which they would join.)
            with perdure.SyncClient.connect(db) as client:
                schedule_some(client)
            page.set_viewport_size({"width": 1280, "height": 520})
            page.goto(f"{url}#/schedules")
            page.wait_for_selector("tr[data-id='ledger-reconcile'] a[href*='%40']")
            page.screenshot(path=str(out / "ui-schedules.png"))
            with perdure.SyncClient.connect(db) as client:
                limit_some(client)
            page.set_viewport_size({"width": 1280, "height": 440})
            page.goto(f"{url}#/queues")
            page.wait_for_selector("tr[data-queue='payments']")
            page.screenshot(path=str(out / "ui-queues.png"))
            with perdure.SyncClient.connect(db) as client:
                build_some(client, db, folder, builders)
            page.set_viewport_size({"width": 1280, "height": 730})
            page.goto(f"{url}#/builds")
            page.wait_for_selector("section[data-queue='orders'] tr[data-build='2026-12-08.1']")
            page.screenshot(path=str(out / "ui-builds.png"))
            browser.close()
    finally:
        for proc in builders:
            proc.stop()
        server.stop()
        worker.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
