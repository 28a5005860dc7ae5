"""Pausing one activity on the workflow page: a paused pending activity
reads *paused* (and that no attempt starts until it is unpaused; an
attempt still running runs on), for anyone; an admin has a *pause* button
on an activity that is not paused and *unpause* / *unpause, reset
attempts* on one that is, which POST to
``/api/workflows/{id}/activities/{n}/pause|unpause`` for the run shown, say
so in a toast and refresh the page; an error says the server's word in an
error toast and leaves the activity as it was. A read-only viewer has no
buttons.

The runs are real (a ``perdure server`` and a ``perdure worker`` process
over tests/surfaces/async_workflows.py): ``keeps_retrying``'s activity
fails every 50 ms for ever, ``awaits_an_answer_for_ever``'s attempt awaits
completion for ever. The HTTP routes themselves are tested in
test_pause_surfaces.py, how the engine holds a paused activity back in
tests/e2e/test_activity_pause.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from surface_helpers import UI, activity_pages, pages_client
from surface_helpers import first_activity as the_activity

import perdure
from perdure.client import PendingActivityInfo


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    yield from activity_pages(tmp_path_factory.mktemp("pause-page-ui"))


@pytest.fixture
def client(ui: UI) -> Iterator[perdure.SyncClient]:
    yield from pages_client(ui)


def held_back(client: perdure.SyncClient, ident: str) -> PendingActivityInfo:
    """The run's activity, paused with no attempt running, once it is; then
    no attempt starts for half a second (it was retried every 50 ms)."""
    held = the_activity(client, ident, lambda a: a.paused and not a.running, "paused")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        [now] = client.get_handle(ident).describe().pending_activities
        assert (now.paused, now.attempt, now.next_attempt_at) == (True, held.attempt, None)
        time.sleep(0.05)
    return held


def test_a_read_only_viewer_sees_paused_and_no_buttons(ui: UI, client: perdure.SyncClient) -> None:
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, _ = ui
    retrying = client.start("keeps_retrying", "r", id="ui-pause/read")
    awaiting = client.start("awaits_an_answer_for_ever", "w", id="ui-pause/awaits")
    the_activity(client, "ui-pause/read", lambda a: a.attempt >= 2, "retried")
    the_activity(client, "ui-pause/awaits", lambda a: a.awaiting_completion, "awaiting")
    for ident in ("ui-pause/read", "ui-pause/awaits"):
        client.get_async_activity_handle(workflow_id=ident, activity_id=1).pause()
    held = held_back(client, "ui-pause/read")
    try:
        for page in bs.new_page(browser):

            def read_only(route: Route) -> None:
                route.fulfill(json={"role": "read", "auth_required": True})

            page.route(re.compile(r".*/api/whoami$"), read_only)
            page.goto(f"{url}#/workflows/ui-pause%2Fread")
            expect(page.locator("#token-button")).to_have_text("Token: read")
            item = page.locator("#pending .pending-activity")
            expect(item).to_have_class(re.compile(r"\bpaused\b"))
            expect(item.locator(".paused-badge")).to_have_text("paused")
            expect(item).to_contain_text(f"down_for_ever ref 1 · attempt {held.attempt} failed")
            expect(item).not_to_contain_text("next attempt")
            expect(item.locator(".activity-paused")).to_have_text(
                "Paused: no attempt starts until it is unpaused."
            )
            expect(item.locator("button")).to_have_count(0)

            # An attempt awaiting completion when it was paused runs on.
            page.goto(f"{url}#/workflows/ui-pause%2Fawaits")
            expect(item.locator(".activity-paused")).to_have_text(
                "Paused: attempt 1 runs on; no attempt starts after it until it is unpaused."
            )
            expect(item).to_contain_text("ask_without_a_deadline ref 1 · attempt 1 awaiting")
            expect(item.locator(".paused-badge")).to_have_text("paused")
            expect(item.locator("button")).to_have_count(0)
    finally:
        retrying.terminate("done")
        awaiting.terminate("done")


def test_an_admin_pauses_and_unpauses_an_activity(ui: UI, client: perdure.SyncClient) -> None:
    # keeps_retrying's activity fails every 50 ms for ever: an admin pauses
    # it from the page, by the run's id and the activity's (the run shown),
    # then lets it go: on one run as it was, on the other counted from 1.
    import browser_support as bs
    from playwright.sync_api import Request, Route, expect

    browser, url, _ = ui
    plain = client.start("keeps_retrying", "p", id="ui-pause/plain")
    reset = client.start("keeps_retrying", "z", id="ui-pause/reset")
    for ident in ("ui-pause/plain", "ui-pause/reset"):
        the_activity(client, ident, lambda a: a.attempt >= 2, "retried")
    posts: list[tuple[str, Any]] = []  # (what the page POSTs, after /api/)

    def posted(request: Request) -> None:
        if request.method == "POST":
            posts.append((request.url.split("/api/", 1)[1], request.post_data_json))

    disabled_in_flight: list[bool] = []

    def in_flight(route: Route) -> None:  # (is the button disabled meanwhile?)
        button = route.request.frame.page.locator("#pending button.pause-activity")
        disabled_in_flight.append(button.is_disabled())
        route.continue_()

    try:
        for page in bs.new_page(browser):
            page.on("request", posted)
            toasts = page.locator("#toasts")
            item = page.locator("#pending .pending-activity")
            page.route(re.compile(r".*/activities/1/pause\?.*$"), in_flight)
            for ident, run in (("ui-pause/plain", plain), ("ui-pause/reset", reset)):
                page.goto(f"{url}#/workflows/{ident.replace('/', '%2F')}")
                expect(item).to_contain_text("down_for_ever ref 1 · attempt")
                expect(item.locator(".paused-badge")).to_have_count(0)
                expect(item.locator("button.unpause-activity")).to_have_count(0)
                item.locator("button.pause-activity").click()
                expect(toasts).to_contain_text(
                    "Activity down_for_ever (ref 1) paused: no attempt starts until it is unpaused."
                )
                expect(item.locator(".paused-badge")).to_have_text("paused")  # (refreshed)
                expect(item.locator("button.pause-activity")).to_have_count(0)
                expect(item.locator("button.unpause-activity")).to_be_enabled()
                expect(item.locator("button.unpause-reset")).to_be_enabled()
                expect(item.locator("button.settle-complete")).to_have_count(1)  # (still)
                expect(item.locator(".activity-paused")).to_have_text(
                    "Paused: no attempt starts until it is unpaused."
                )
                assert posts[-1] == (
                    f"workflows/{ident.replace('/', '%2F')}/activities/1/pause?run_id={run.run_id}",
                    None,
                )
                held_back(client, ident)
            assert disabled_in_flight == [True, True]
            assert len(posts) == 2

            # The queues page counts the paused apart from the waiting.
            queue = the_activity(client, "ui-pause/plain", lambda a: a.paused, "paused").task_queue
            counted = client.describe_queue(queue).paused
            assert counted >= 2
            page.goto(f"{url}#/queues")
            count = page.locator(f"tr[data-queue='{queue}'] .paused-count")
            expect(count).to_have_text(f"{counted} paused")
            expect(count).to_have_attribute(
                "title", re.compile(r"ui-pause/plain ref 1 \(down_for_ever\)")
            )

            # Unpaused as it was: its attempts go on counting.
            page.goto(f"{url}#/workflows/ui-pause%2Fplain")
            held = held_back(client, "ui-pause/plain")
            expect(item.locator("button.unpause-activity")).to_be_enabled()
            item.locator("button.unpause-activity").click()
            expect(toasts).to_contain_text(
                "Activity down_for_ever (ref 1) unpaused: its next attempt is due now."
            )
            assert posts[2:] == [
                (
                    f"workflows/ui-pause%2Fplain/activities/1/unpause?run_id={plain.run_id}",
                    {"reset_attempts": False},
                )
            ]
            again = the_activity(
                client, "ui-pause/plain", lambda a, n=held.attempt: a.attempt > n + 1, "retried on"
            )
            assert not again.paused
            expect(item.locator("button.pause-activity")).to_be_enabled()  # (refreshed)
            expect(item.locator(".paused-badge")).to_have_count(0)
            expect(item.locator(".activity-paused")).to_have_count(0)

            # Unpaused with its attempts counted from 1 again: the record of
            # the ended ones shows attempt 1 twice.
            page.goto(f"{url}#/workflows/ui-pause%2Freset")
            expect(item.locator("button.unpause-reset")).to_be_enabled()
            item.locator("button.unpause-reset").click()
            expect(toasts).to_contain_text(
                "Activity down_for_ever (ref 1) unpaused, its attempts counted from 1 again: its "
                "next attempt is due now."
            )
            assert posts[3:] == [
                (
                    f"workflows/ui-pause%2Freset/activities/1/unpause?run_id={reset.run_id}",
                    {"reset_attempts": True},
                )
            ]
            counted = the_activity(
                client,
                "ui-pause/reset",
                lambda a: [r["attempt"] for r in a.attempts].count(1) == 2,
                "retried from attempt 1",
            )
            assert not counted.paused
            expect(item.locator("button.pause-activity")).to_be_enabled()
    finally:
        plain.terminate("done")
        reset.terminate("done")


def test_an_unpause_the_server_refuses_says_why_and_stays_paused(
    ui: UI, client: perdure.SyncClient
) -> None:
    # The server's 409 (as for reset_attempts under a running attempt),
    # routed: its detail in an error toast, and the activity still paused.
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, _ = ui
    run = client.start("keeps_retrying", "e", id="ui-pause/refused")
    the_activity(client, "ui-pause/refused", lambda a: a.attempt >= 2, "retried")
    client.get_async_activity_handle(workflow_id="ui-pause/refused", activity_id=1).pause()
    held = held_back(client, "ui-pause/refused")
    detail = "activity 1 of workflow 'ui-pause/refused': an attempt of it is running"
    refused: list[Any] = []

    def conflict(route: Route) -> None:
        refused.append(route.request.post_data_json)
        route.fulfill(status=409, json={"detail": detail})

    try:
        for page in bs.new_page(browser):
            page.route(re.compile(r".*/activities/1/unpause\?.*$"), conflict)
            page.goto(f"{url}#/workflows/ui-pause%2Frefused")
            item = page.locator("#pending .pending-activity")
            expect(item.locator(".paused-badge")).to_have_text("paused")
            item.locator("button.unpause-reset").click()
            expect(page.locator("#toasts .toast-error")).to_have_text(
                f"Cannot unpause activity down_for_ever (ref 1): {detail}"
            )
            assert refused == [{"reset_attempts": True}]
            expect(item.locator(".paused-badge")).to_have_text("paused")
            expect(item.locator(".activity-paused")).to_have_text(
                "Paused: no attempt starts until it is unpaused."
            )
            expect(item.locator("button.unpause-reset")).to_be_enabled()  # (again)
            expect(item.locator("button.unpause-activity")).to_be_enabled()
            [still] = run.describe().pending_activities
            assert (still.paused, still.attempt) == (True, held.attempt)
    finally:
        run.terminate("done")


def test_an_admin_cannot_reset_attempts_under_an_attempt_awaiting_completion(
    ui: UI, client: perdure.SyncClient
) -> None:
    # Counting from 1 again is refused while an attempt runs: the button
    # says why, disabled; a plain unpause lets the activity go.
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    run = client.start("awaits_an_answer_for_ever", "a", id="ui-pause/busy")
    the_activity(client, "ui-pause/busy", lambda a: a.awaiting_completion, "awaiting")
    client.get_async_activity_handle(workflow_id="ui-pause/busy", activity_id=1).pause()
    the_activity(client, "ui-pause/busy", lambda a: a.paused, "paused")
    try:
        for page in bs.new_page(browser):
            page.goto(f"{url}#/workflows/ui-pause%2Fbusy")
            item = page.locator("#pending .pending-activity")
            expect(item.locator(".activity-paused")).to_have_text(
                "Paused: attempt 1 runs on; no attempt starts after it until it is unpaused."
            )
            expect(item.locator("button.unpause-reset")).to_be_disabled()
            expect(item.locator("button.unpause-reset")).to_have_attribute(
                "title", re.compile("^Not while an attempt of it runs")
            )
            item.locator("button.unpause-activity").click()
            expect(page.locator("#toasts")).to_contain_text(
                "Activity ask_without_a_deadline (ref 1) unpaused"
            )
            the_activity(client, "ui-pause/busy", lambda a: not a.paused, "unpaused")
            expect(item.locator("button.pause-activity")).to_be_enabled()
            expect(item).to_contain_text("attempt 1 awaiting completion")
    finally:
        run.terminate("done")
