"""Regenerate the UI screenshots in docs/img/ (not a test; needs chromium):

    .venv/bin/python tests/surfaces/make_screenshots.py docs/img

Runs the crash demo for a real order, a worker for the test workflows (an
onboarding whose e-mail step keeps failing while it waits for approval, plus a few
finished runs), and ``perdure server``; then photographs the list page, two
workflow pages, with three schedules made, the schedules page, and with two
queues limited, the queues page, in headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import surface_workflows as wf
from surface_helpers import spawn, wait_for
from test_browser import ARGS, CHROMIUM

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


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="perdure-shots-"))
    assert run_demo(folder) == 0
    db = f"sqlite:///{folder / 'demo.db'}"
    worker = spawn(["worker", wf.__file__, "--db", db], folder / "worker.log")
    server = spawn(["server", "--port", "0", "--db", db], folder / "server.log")
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
            browser.close()
    finally:
        server.stop()
        worker.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
