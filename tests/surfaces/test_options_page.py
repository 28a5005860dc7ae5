"""Changing an activity's options on the workflow page: each pending
activity has a line of its options as they stand (its retry policy, its
timeouts, when schedule-to-close ends it, its task queue if not its run's),
for anyone; an admin has an *options…* button beside it, whose dialog shows
them, takes durations as seconds or with a unit, refuses what it cannot
read (nothing sent), POSTs only what was changed to
``/api/workflows/{id}/activities/{n}/options`` for the run shown, says so
in a toast and refreshes the page; the server's refusal (a 422) is its word
in the dialog, which stays open with what was typed, and nothing changed. A
read-only viewer has no button.

The runs are real (a ``perdure server`` and a ``perdure worker`` process
over tests/surfaces/async_workflows.py): ``keeps_retrying``'s activity
fails every 50 ms for ever, ``awaits_an_answer``'s attempt awaits
completion. The HTTP route itself is tested in
test_activity_options_surfaces.py, what a change does to the engine in the
e2e tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from surface_helpers import UI, activity_pages, pages_client
from surface_helpers import first_activity as the_activity

import perdure


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    yield from activity_pages(tmp_path_factory.mktemp("options-page-ui"))


@pytest.fixture
def client(ui: UI) -> Iterator[perdure.SyncClient]:
    yield from pages_client(ui)


def posts_to(page: Any) -> list[tuple[str, Any]]:
    """What the page POSTs from now on (after /api/, with its JSON body)."""
    posts: list[tuple[str, Any]] = []

    def posted(request: Any) -> None:
        if request.method == "POST":
            posts.append((request.url.split("/api/", 1)[1], request.post_data_json))

    page.on("request", posted)
    return posts


def test_a_read_only_viewer_sees_the_options_line_and_no_button(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, _ = ui
    run = client.start("awaits_an_answer", "v", id="ui-options/read")
    the_activity(client, "ui-options/read", lambda a: a.awaiting_completion, "awaiting")
    try:
        for page in bs.new_page(browser):

            def read_only(route: Route) -> None:
                route.fulfill(json={"role": "read", "auth_required": True})

            page.route(re.compile(r".*/api/whoami$"), read_only)
            page.goto(f"{url}#/workflows/ui-options%2Fread")
            expect(page.locator("#token-button")).to_have_text("Token: read")
            item = page.locator("#pending .pending-activity")
            # ask_within_an_hour: RetryPolicy(50 ms, max_attempts=3), its
            # max interval 100 initial intervals; start_to_close 1 h.
            expect(item.locator(".activity-options")).to_have_text(
                "retry every 50ms \u00d72 up to 5s, at most 3 attempts · start-to-close 1h"
            )
            expect(item.locator("button")).to_have_count(0)

            # Changed elsewhere (by id): the line follows, with when
            # schedule-to-close ends it and the queue that is not its run's.
            client.get_async_activity_handle(
                workflow_id="ui-options/read", activity_id=1
            ).update_options(
                schedule_to_close_timeout=timedelta(days=2),
                heartbeat_timeout=timedelta(seconds=90),
                retry_backoff=1.0,
                retry_max_attempts=0,
                task_queue="elsewhere",
            )
            expect(item.locator(".activity-options")).to_have_text(
                re.compile(
                    r"^retry every 50ms, no limit on attempts · start-to-close 1h · "
                    r"schedule-to-close 2d \(ends \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) · "
                    r"heartbeat 1m 30s · task queue “elsewhere”$"
                )
            )
            expect(item.locator(".activity-options")).to_have_attribute(
                "title", re.compile(r"schedule-to-close ends it at .* \(in 2 d 0 h\)$")
            )
            expect(item.locator("button")).to_have_count(0)
            expect(page.locator("#options-dialog")).to_have_count(0)
    finally:
        run.terminate("done")


def test_an_admin_changes_max_attempts_and_the_initial_interval(
    ui: UI, client: perdure.SyncClient
) -> None:
    # keeps_retrying's activity is retried every 50 ms without limit: the
    # admin makes it every 2 s, 100000 attempts at most, each attempt 90 s
    # at most; only those are sent, for the run shown.
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    run = client.start("keeps_retrying", "c", id="ui-options/change")
    before = the_activity(client, "ui-options/change", lambda a: a.attempt >= 2, "retried")
    assert before.retry_policy is not None and before.start_to_close_timeout is None
    try:
        for page in bs.new_page(browser):
            posts = posts_to(page)
            page.goto(f"{url}#/workflows/ui-options%2Fchange")
            item = page.locator("#pending .pending-activity")
            line = item.locator(".activity-options")
            expect(line).to_have_text("retry every 50ms, no limit on attempts")
            item.locator("button.change-options").click()
            dialog = page.locator("#options-dialog")
            expect(dialog).to_be_visible()
            expect(dialog.locator("#options-title")).to_have_text(
                "Change activity down_for_ever (ref 1)'s options?"
            )
            expect(dialog.locator("#options-now")).to_have_text(
                "Now: retry every 50ms, no limit on attempts."
            )
            shown = {
                "start-to-close": "",
                "schedule-to-close": "",
                "heartbeat": "",
                "initial-interval": "50ms",
                "backoff": "1",
                "max-interval": "5s",
                "max-attempts": "0",
                "task-queue": before.task_queue,
            }
            for name, value in shown.items():
                expect(dialog.locator(f"#options-{name}")).to_have_value(value)
            dialog.locator("#options-max-attempts").fill("100000")
            dialog.locator("#options-initial-interval").fill("2s")
            dialog.locator("#options-start-to-close").fill("1.5m")
            dialog.locator("#options-max-interval").fill("5000ms")  # (the same: not sent)
            dialog.locator("#options-ok").click()
            expect(page.locator("#toasts .toast-ok")).to_have_text(
                "Activity down_for_ever (ref 1)'s options changed: start-to-close timeout "
                "1m 30s, initial interval 2s, max attempts 100000."
            )
            expect(dialog).to_be_hidden()
            assert posts == [
                (
                    f"workflows/ui-options%2Fchange/activities/1/options?run_id={run.run_id}",
                    {
                        "start_to_close_timeout": 90,
                        "retry_initial_interval": 2,
                        "retry_max_attempts": 100000,
                    },
                )
            ]
            after = the_activity(
                client,
                "ui-options/change",
                lambda a: a.retry_policy is not None and a.retry_policy.max_attempts == 100000,
                "changed",
            )
            assert after.retry_policy is not None
            assert after.retry_policy.initial_interval == timedelta(seconds=2)
            assert after.retry_policy.backoff == 1.0
            assert after.retry_policy.max_interval == timedelta(seconds=5)
            assert after.start_to_close_timeout == timedelta(seconds=90)
            expect(line).to_have_text(  # (refreshed)
                "retry every 2s, at most 100000 attempts · start-to-close 1m 30s"
            )

            # Opened again, the dialog shows them as they stand.
            item.locator("button.change-options").click()
            expect(dialog.locator("#options-initial-interval")).to_have_value("2s")
            expect(dialog.locator("#options-max-attempts")).to_have_value("100000")
            expect(dialog.locator("#options-start-to-close")).to_have_value("1m 30s")
            dialog.locator("#options-cancel").click()
            expect(dialog).to_be_hidden()
            assert len(posts) == 1
    finally:
        run.terminate("done")


def test_input_the_dialog_cannot_read_is_refused_and_nothing_sent(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    run = client.start("keeps_retrying", "b", id="ui-options/bad")
    the_activity(client, "ui-options/bad", lambda a: a.attempt >= 1, "tried")
    refusals = [
        (
            "start-to-close",
            "5 parsecs",
            "The start-to-close timeout, “5 parsecs”, is not a duration: seconds (90) or a "
            "number with ms, s, m, h or d (30s, 5m, 2h, 1d, 1m 30s).",
        ),
        ("heartbeat", "0", "The heartbeat timeout must be more than 0."),
        ("schedule-to-close", "36526d", "The schedule-to-close timeout must be at most 36525d"),
        ("initial-interval", "", "The initial interval cannot be removed, only changed"),
        ("backoff", "0.5", "The backoff, “0.5”, is not a number of at least 1"),
        ("max-attempts", "-1", "Max attempts, “-1”, is not a whole number from 0 (no limit)"),
        ("max-interval", "10ms", "The max interval (10ms) would be below the initial interval"),
    ]
    try:
        for page in bs.new_page(browser):
            posts = posts_to(page)
            page.goto(f"{url}#/workflows/ui-options%2Fbad")
            item = page.locator("#pending .pending-activity")
            item.locator("button.change-options").click()
            dialog = page.locator("#options-dialog")
            error = dialog.locator("#options-error")
            for name, text, said in refusals:
                field = dialog.locator(f"#options-{name}")
                was = field.input_value()
                field.fill(text)
                dialog.locator("#options-ok").click()
                expect(error).to_be_visible()
                expect(error).to_contain_text(said)
                expect(field).to_be_focused()
                expect(dialog).to_be_visible()
                field.fill(was)
            dialog.locator("#options-ok").click()  # (as they were)
            expect(error).to_have_text("Nothing is changed: change at least one option, or close.")
            dialog.locator("#options-cancel").click()
            expect(dialog).to_be_hidden()
            assert posts == []
    finally:
        run.terminate("done")


def test_a_change_the_server_refuses_says_why_and_changes_nothing(
    ui: UI, client: perdure.SyncClient
) -> None:
    # Paused after attempts failed, none running: max attempts 1 would
    # allow no more, and the server (422) says so.
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    run = client.start("keeps_retrying", "r", id="ui-options/refused")
    the_activity(client, "ui-options/refused", lambda a: a.attempt >= 2, "retried")
    by_id = client.get_async_activity_handle(
        workflow_id="ui-options/refused", activity_id=1, run_id=run.run_id
    )  # (the run shown, as the page names it)
    by_id.pause()
    try:
        held = the_activity(
            client, "ui-options/refused", lambda a: a.paused and not a.running, "held"
        )
        with pytest.raises(ValueError) as refused:  # (what the server says: the same words)
            by_id.update_options(retry_max_attempts=1)
        for page in bs.new_page(browser):
            posts = posts_to(page)
            page.goto(f"{url}#/workflows/ui-options%2Frefused")
            item = page.locator("#pending .pending-activity")
            expect(item.locator(".paused-badge")).to_have_text("paused")
            item.locator("button.change-options").click()
            dialog = page.locator("#options-dialog")
            expect(dialog.locator("#options-now")).to_have_text(
                "Now: retry every 50ms, no limit on attempts. It is paused: the new options "
                "wait with it."
            )
            dialog.locator("#options-max-attempts").fill("1")
            dialog.locator("#options-ok").click()
            # Said in the dialog, which stays open with what was typed.
            expect(dialog.locator("#options-error")).to_have_text(
                f"Cannot change activity down_for_ever (ref 1)'s options: {refused.value}"
            )
            expect(dialog.locator("#options-max-attempts")).to_have_value("1")
            assert [body for _, body in posts] == [{"retry_max_attempts": 1}]
            dialog.locator("#options-cancel").click()
            expect(dialog).to_be_hidden()
            [still] = run.describe().pending_activities
            assert still.retry_policy == held.retry_policy
            assert (still.paused, still.attempt) == (True, held.attempt)
            expect(item.locator(".activity-options")).to_have_text(
                "retry every 50ms, no limit on attempts"
            )
            expect(item.locator("button.change-options")).to_be_enabled()  # (again)
    finally:
        run.terminate("done")
