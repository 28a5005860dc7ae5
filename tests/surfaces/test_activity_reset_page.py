"""Resetting one activity on the workflow page: an admin's *reset…* beside
*pause* opens a small confirmation (*Keep it paused* for a paused activity
only, *Clear its heartbeat details*) that POSTs to
``/api/workflows/{id}/activities/{n}/reset`` for the run shown; a toast says
what was done and the page refreshes: the activity ran again, as attempt 1.
What the server refuses stays in the dialog. An activity whose reset waits
on its running attempt reads *Reset requested*, for anyone; a read-only
viewer has no button. The list's "Act on all matching…" dialog resets the
activities of a type (*Reset activities*, with the same two checkboxes).

The runs are real (a ``perdure server`` and a ``perdure worker`` process
over tests/surfaces/async_workflows.py): ``keeps_retrying``'s activity
fails every 50 ms for ever, its retries made an hour apart here so that it
waits; ``awaits_an_answer_for_ever``'s attempt awaits completion for ever.
The route itself is tested in test_activity_reset_http.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from surface_helpers import UI, activity_pages, pages_client
from surface_helpers import first_activity as the_activity

import perdure
from perdure.client import PendingActivityInfo

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    yield from activity_pages(tmp_path_factory.mktemp("activity-reset-ui"))


@pytest.fixture
def client(ui: UI) -> Iterator[perdure.SyncClient]:
    yield from pages_client(ui)


def an_hour_off(a: PendingActivityInfo) -> bool:
    later = datetime.now(UTC) + HOUR / 2
    return not a.running and a.next_attempt_at is not None and a.next_attempt_at > later


def waiting(client: perdure.SyncClient, ident: str) -> tuple[Any, PendingActivityInfo]:
    """keeps_retrying started as ``ident``, its retries made an hour apart:
    its handle and its activity, waiting."""
    handle = client.start("keeps_retrying", ident, id=ident)
    the_activity(client, ident, lambda a: a.attempt >= 2, "retried")
    named = client.get_async_activity_handle(workflow_id=ident, activity_id=1)
    named.update_options(retry_initial_interval=HOUR, retry_max_interval=HOUR)
    return handle, the_activity(client, ident, an_hour_off, "waiting an hour")


def test_an_admin_resets_a_waiting_activity_and_it_runs_again(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import Request, Route, expect

    browser, url, _ = ui
    handle, before = waiting(client, "ui-reset/wait")
    posts: list[tuple[str, Any]] = []  # (what the page POSTs, after /api/)

    def posted(request: Request) -> None:
        if request.method == "POST":
            posts.append((request.url.split("/api/", 1)[1], request.post_data_json))

    try:
        for page in bs.new_page(browser):
            page.on("request", posted)
            item = page.locator("#pending .pending-activity")
            dialog = page.locator("#activity-reset-dialog")
            page.goto(f"{url}#/workflows/ui-reset%2Fwait")
            expect(item).to_contain_text(f"down_for_ever ref 1 · attempt {before.attempt} failed")
            expect(item.locator("button.pause-activity")).to_be_visible()

            # What the server refuses stays in the dialog, and nothing is changed.
            def gone(route: Route) -> None:
                route.fulfill(status=404, json={"detail": "its run has ended"})

            page.route(re.compile(r".*/activities/1/reset\?.*$"), gone)
            item.locator("button.reset-activity").click()
            expect(dialog).to_be_visible()
            expect(page.locator("#activity-reset-title")).to_have_text(
                "Reset activity down_for_ever (ref 1)?"
            )
            expect(page.locator("#activity-reset-text")).to_contain_text(
                "Its next attempt, attempt 1, is due now."
            )
            expect(page.locator("#activity-reset-keep-paused-label")).to_be_hidden()
            expect(page.locator("#activity-reset-clear-details-label")).to_be_visible()
            page.click("#activity-reset-ok")
            expect(page.locator("#activity-reset-error")).to_have_text(
                "Cannot reset activity down_for_ever (ref 1): its run has ended"
            )
            expect(dialog).to_be_visible()
            page.unroute(re.compile(r".*/activities/1/reset\?.*$"))

            page.click("#activity-reset-ok")
            expect(dialog).not_to_be_visible()
            expect(page.locator("#toasts")).to_contain_text(
                "Activity down_for_ever (ref 1) reset: its next attempt, attempt 1, is due now."
            )
            sent = (
                f"workflows/ui-reset%2Fwait/activities/1/reset?run_id={handle.run_id}",
                {"keep_paused": False, "clear_heartbeat_details": False},
            )
            assert posts == [sent, sent]
            # It ran again at once, as attempt 1 (and waits an hour again).
            after = the_activity(
                client,
                "ui-reset/wait",
                lambda a: len(a.attempts) == len(before.attempts) + 1 and an_hour_off(a),
                "its attempt after the reset",
            )
            assert after.attempt == 1
            expect(item).to_contain_text("down_for_ever ref 1 · attempt 1 failed")  # (refreshed)
    finally:
        handle.terminate("done")


def test_a_paused_activity_can_be_kept_paused(ui: UI, client: perdure.SyncClient) -> None:
    import browser_support as bs
    from playwright.sync_api import Request, expect

    browser, url, _ = ui
    handle, before = waiting(client, "ui-reset/paused")
    client.get_async_activity_handle(workflow_id="ui-reset/paused", activity_id=1).pause()
    the_activity(client, "ui-reset/paused", lambda a: a.paused, "paused")
    bodies: list[Any] = []

    def posted(request: Request) -> None:
        if request.method == "POST":
            bodies.append(request.post_data_json)

    try:
        for page in bs.new_page(browser):
            page.on("request", posted)
            item = page.locator("#pending .pending-activity")
            page.goto(f"{url}#/workflows/ui-reset%2Fpaused")
            expect(item.locator(".paused-badge")).to_have_text("paused")
            item.locator("button.reset-activity").click()
            expect(page.locator("#activity-reset-text")).to_contain_text(
                "It is paused: it is unpaused too, unless you keep it paused."
            )
            expect(page.locator("#activity-reset-keep-paused-label")).to_be_visible()
            page.check("#activity-reset-keep-paused")
            page.check("#activity-reset-clear-details")
            page.click("#activity-reset-ok")
            expect(page.locator("#toasts")).to_contain_text(
                "Activity down_for_ever (ref 1) reset, still paused: its attempts count from 1 "
                "once it is unpaused."
            )
            assert bodies == [{"keep_paused": True, "clear_heartbeat_details": True}]
            # Counted from 1 again: none made yet, and still held back.
            expect(item).to_contain_text("down_for_ever ref 1 · not started")
            expect(item.locator(".paused-badge")).to_have_text("paused")
            [kept] = handle.describe().pending_activities
            assert (kept.paused, kept.attempt, len(kept.attempts)) == (
                True,
                0,
                len(before.attempts),
            )
    finally:
        handle.terminate("done")


def test_a_viewer_sees_a_requested_reset_and_no_button(ui: UI, client: perdure.SyncClient) -> None:
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, _ = ui
    handle = client.start("awaits_an_answer_for_ever", "v", id="ui-reset/busy")
    the_activity(client, "ui-reset/busy", lambda a: a.awaiting_completion, "awaiting")
    client.get_async_activity_handle(workflow_id="ui-reset/busy", activity_id=1).reset()
    the_activity(client, "ui-reset/busy", lambda a: a.reset_requested, "reset requested")
    line = (
        "Reset requested: this attempt stops at its next heartbeat (one that sends none runs "
        "on); once it stops, fails or is lost, the next starts at once, as attempt 1."
    )

    def read_only(route: Route) -> None:
        route.fulfill(json={"role": "read", "auth_required": True})

    try:
        for page in bs.new_page(browser):  # an admin sees the line too, and the button
            item = page.locator("#pending .pending-activity")
            page.goto(f"{url}#/workflows/ui-reset%2Fbusy")
            expect(item.locator(".reset-requested")).to_have_text(line)
            expect(item.locator("button.reset-activity")).to_be_visible()
        for page in bs.new_page(browser):
            item = page.locator("#pending .pending-activity")
            page.route(re.compile(r".*/api/whoami$"), read_only)
            page.goto(f"{url}#/workflows/ui-reset%2Fbusy")
            expect(page.locator("#token-button")).to_have_text("Token: read")
            expect(item).to_contain_text("ask_without_a_deadline ref 1 · attempt 1 awaiting")
            expect(item.locator(".reset-requested")).to_have_text(line)
            expect(item.locator("button")).to_have_count(0)
    finally:
        handle.terminate("done")


def test_an_admin_resets_the_activities_of_a_type_from_the_list(
    ui: UI, client: perdure.SyncClient
) -> None:
    # The list's "Act on all matching…" dialog: Reset activities, with its two
    # checkboxes (and not unpause's); a dry run counts them, acting resets
    # each, the paused one too, and what the server refuses is said there.
    import browser_support as bs
    from playwright.sync_api import Request, Route, expect

    browser, url, _ = ui
    runs = dict(waiting(client, ident) for ident in ("ui-rb-1", "ui-rb-2"))
    befores = {handle.id: before for handle, before in runs.items()}
    client.get_async_activity_handle(workflow_id="ui-rb-2", activity_id=1).pause()
    the_activity(client, "ui-rb-2", lambda a: a.paused, "paused")
    bodies: list[Any] = []

    def posted(request: Request) -> None:
        if request.method == "POST" and "/batch/activities/reset" in request.url:
            bodies.append(request.post_data_json)

    def refused(route: Route) -> None:
        route.fulfill(status=422, json={"detail": "keep_paused goes with reset, not pause"})

    try:
        for page in bs.new_page(browser):
            page.on("request", posted)
            page.goto(f"{url}#/?status=running&search=ui-rb-")
            expect(page.locator("tbody tr")).to_have_count(2)
            page.click("#batch-button")
            page.select_option("#batch-action", "unpause-activities")
            expect(page.locator("#batch-reset-label")).to_be_visible()
            expect(page.locator("#batch-keep-paused-label")).to_be_hidden()
            page.select_option("#batch-action", "reset-activities")
            expect(page.locator("#batch-reset-label")).to_be_hidden()
            expect(page.locator("#batch-keep-paused-label")).to_be_visible()
            expect(page.locator("#batch-clear-details-label")).to_be_visible()
            expect(page.locator("#batch-explain")).to_contain_text("paused or not")
            page.fill("#batch-activity-type", "down_for_ever")

            page.route(re.compile(r".*/api/batch/activities/reset$"), refused)
            page.click("#batch-check")
            expect(page.locator("#batch-error")).to_have_text(
                "keep_paused goes with reset, not pause"
            )
            page.unroute(re.compile(r".*/api/batch/activities/reset$"))

            page.check("#batch-clear-details")
            page.click("#batch-check")
            expect(page.locator("#batch-preview p")).to_have_text("2 activities match:")
            expect(page.locator("#batch-confirm")).to_have_text("Reset 2 activities")
            page.click("#batch-confirm")
            expect(page.locator("#batch-summary")).to_have_text(
                "Reset 2 of 2 activities matched: 0 skipped, 0 failed."
            )
            body = {  # (no status: the activities' batch takes open runs only)
                "search": "ui-rb-",
                "activity_type": "down_for_ever",
                "keep_paused": False,
                "clear_heartbeat_details": True,
            }
            assert bodies == [
                {**body, "clear_heartbeat_details": False, "dry_run": True},
                {**body, "dry_run": True},
                {**body, "dry_run": False},
            ]
            for ident, before in befores.items():  # each ran again as attempt 1, unpaused
                after = the_activity(
                    client,
                    ident,
                    lambda a, b=before: len(a.attempts) == len(b.attempts) + 1 and an_hour_off(a),
                    "its attempt after the reset",
                )
                assert (after.attempt, after.paused) == (1, False)
    finally:
        for handle in runs:
            handle.terminate("done")
