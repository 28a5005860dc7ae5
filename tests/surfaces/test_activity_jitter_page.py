"""Spreading the next attempts from the workflow list's "Act on all
matching…" dialog: *Unpause activities* and *Reset activities* (and they
only) ask for a span to spread them over ("1h"), sent as ``jitter_seconds``
with the dry run and with the act; each activity's next attempt is then
due at a random moment within that span, not all at once. A span that is
not one is said in the dialog before anything is sent; an empty one is not
sent (due now).

The runs are real (a ``perdure server`` and a ``perdure worker`` process
over tests/surfaces/async_workflows.py): ``keeps_retrying``'s activity
fails for ever, its retries made an hour apart here so that it waits, and
paused for the unpause. The route itself is tested in
test_activity_jitter_http.py (its draws there, against the span).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from surface_helpers import RETRIED, UI, activity_pages, pages_client
from surface_helpers import first_activity as the_activity
from test_activity_reset_page import an_hour_off
from test_options_page import posts_to

import perdure
from perdure.client import PendingActivityInfo

HOUR = timedelta(hours=1)
SPAN = 3600  # "1h", in seconds, as the dialog sends it
# Between the test's clock and the server's (the same machine: far less).
SLACK = 1.0
BATCH = "batch/activities"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    yield from activity_pages(tmp_path_factory.mktemp("activity-jitter-ui"))


@pytest.fixture
def client(ui: UI) -> Iterator[perdure.SyncClient]:
    yield from pages_client(ui)


def waiting(
    client: perdure.SyncClient, ident: str, *, pause: bool
) -> perdure.SyncWorkflowHandle[Any]:
    """keeps_retrying started as ``ident``, its retries made an hour apart
    and, once it waits for the next, paused if ``pause``: its handle."""
    handle = client.start(RETRIED, ident, id=ident)
    the_activity(client, ident, lambda a: a.attempt >= 2, "retried")
    named = client.get_async_activity_handle(workflow_id=ident, activity_id=1)
    named.update_options(retry_initial_interval=HOUR, retry_max_interval=HOUR)
    the_activity(client, ident, an_hour_off, "waiting an hour")
    if pause:
        named.pause()
    return handle


def due_again(client: perdure.SyncClient, ident: str) -> PendingActivityInfo:
    """Its activity once let go: not paused, its next attempt due."""
    return the_activity(
        client,
        ident,
        lambda a: not a.paused and not a.running and a.next_attempt_at is not None,
        "let go, its next attempt due",
    )


def due(activity: PendingActivityInfo) -> float:
    """Its next attempt's due time, in seconds since the epoch."""
    assert activity.next_attempt_at is not None
    return activity.next_attempt_at.timestamp()


def within_the_span(when: float, since: float, until: float) -> bool:
    """Between the click and an hour after the answer was read (an attempt
    drawn in the first moments ran, and failed: its next is an hour after)."""
    return since - SLACK <= when <= until + SPAN + SLACK


def test_an_unpause_spread_over_an_hour_makes_each_due_within_it(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    idents = [f"ui-jit-un-{n}" for n in range(4)]
    handles = [waiting(client, ident, pause=True) for ident in idents]
    try:
        for page in bs.new_page(browser):
            posts = posts_to(page)
            page.goto(f"{url}#/?status=running&search=ui-jit-un-")
            expect(page.locator("tbody tr")).to_have_count(len(idents))
            page.click("#batch-button")
            page.select_option("#batch-action", "unpause-activities")
            expect(page.locator("#batch-explain")).to_contain_text(
                "or at a random moment within the span they are spread over"
            )
            expect(page.locator("#batch-jitter-label")).to_be_visible()
            page.fill("#batch-jitter", "1h")
            page.click("#batch-check")  # the dry run sends it too: the server checks it
            expect(page.locator("#batch-preview p")).to_have_text("4 activities match:")
            expect(page.locator("#batch-confirm")).to_have_text("Unpause 4 activities")
            assert all(client.get_handle(i).describe().pending_activities[0].paused for i in idents)
            since = time.time()
            page.click("#batch-confirm")
            expect(page.locator("#batch-summary")).to_have_text(
                "Unpaused 4 of 4 activities matched: 0 skipped, 0 failed."
            )
            expect(page.locator("#batch-jitter")).to_be_disabled()
            dues = sorted(due(due_again(client, ident)) for ident in idents)
            until = time.time()
            assert all(within_the_span(when, since, until) for when in dues), (since, dues, until)
            # Not all at once: four draws within an hour, not the moment of the click.
            assert dues[-1] - dues[0] > 60, dues
            body = {"search": "ui-jit-un-", "reset_attempts": False, "jitter_seconds": SPAN}
            assert posts == [
                (f"{BATCH}/unpause", {**body, "dry_run": True}),
                (f"{BATCH}/unpause", {**body, "dry_run": False}),
            ]
    finally:
        for handle in handles:
            handle.terminate("done")


def test_a_reset_spread_over_an_hour_makes_it_due_within_it(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    handle = waiting(client, "ui-jit-reset", pause=False)
    before = the_activity(client, "ui-jit-reset", an_hour_off, "waiting an hour")
    try:
        for page in bs.new_page(browser):
            posts = posts_to(page)
            page.goto(f"{url}#/?status=running&search=ui-jit-reset")
            expect(page.locator("tbody tr")).to_have_count(1)
            page.click("#batch-button")
            page.select_option("#batch-action", "reset-activities")
            expect(page.locator("#batch-explain")).to_contain_text(
                "or at a random moment within the span they are spread over"
            )
            page.fill("#batch-jitter", " 1h ")  # (trimmed)
            page.press("#batch-jitter", "Enter")
            expect(page.locator("#batch-preview p")).to_have_text("1 activity matches:")
            since = time.time()
            page.click("#batch-confirm")
            expect(page.locator("#batch-summary")).to_have_text(
                "Reset 1 of 1 activity matched: 0 skipped, 0 failed."
            )
            after = due_again(client, "ui-jit-reset")
            until = time.time()
            # Counted from 1 again (1: its draw fell in the first moment, and it ran).
            assert after.attempt in (0, 1) and before.attempt >= 2, (before, after)
            assert within_the_span(due(after), since, until), (since, after, until)
            body = {
                "search": "ui-jit-reset",
                "keep_paused": False,
                "clear_heartbeat_details": False,
                "jitter_seconds": SPAN,
            }
            assert posts == [
                (f"{BATCH}/reset", {**body, "dry_run": True}),
                (f"{BATCH}/reset", {**body, "dry_run": False}),
            ]
    finally:
        handle.terminate("done")


def test_the_spread_is_asked_for_unpause_and_reset_only(ui: UI) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    for page in bs.new_page(browser):
        posts = posts_to(page)
        label = page.locator("#batch-jitter-label")
        page.goto(f"{url}#/?status=running&search=ui-jit-none-")
        page.click("#batch-button")
        expect(label).to_be_hidden()  # (cancel: an action on runs)
        for action, shown in [
            ("pause-activities", False),
            ("unpause-activities", True),
            ("reset-activities", True),
            ("terminate", False),
            ("pause-activities", False),
        ]:
            page.select_option("#batch-action", action)
            if shown:
                expect(label).to_be_visible()
            else:
                expect(label).to_be_hidden()
        expect(page.locator("#batch-explain")).not_to_contain_text("spread")

        # Typed for an unpause, then the action changed to a pause: not sent
        # (the server refuses a pause's jitter with a 422).
        page.select_option("#batch-action", "unpause-activities")
        page.fill("#batch-jitter", "5m")
        page.select_option("#batch-action", "pause-activities")
        page.click("#batch-check")
        expect(page.locator("#batch-preview")).to_have_text("No activities match: nothing to do.")
        expect(page.locator("#batch-error")).to_be_hidden()
        assert posts == [(f"{BATCH}/pause", {"search": "ui-jit-none-", "dry_run": True})]

        # Empty: not sent, each due now.
        page.select_option("#batch-action", "unpause-activities")
        page.fill("#batch-jitter", "  ")
        page.click("#batch-check")
        expect(page.locator("#batch-preview")).to_have_text("No activities match: nothing to do.")
        assert posts[1:] == [
            (
                f"{BATCH}/unpause",
                {"search": "ui-jit-none-", "reset_attempts": False, "dry_run": True},
            )
        ]


BAD = [
    (
        "soon",
        "The spread, “soon”, is not a span: seconds (90) or a number with ms, s, m, h or d "
        "(30s, 5m, 1h, 1m 30s).",
    ),
    ("-5m", "The spread, “-5m”, is not a span"),
    ("36526d", "The spread must be at most 36525d (100 years)."),
]


def test_a_bad_span_is_said_in_the_dialog_and_nothing_is_done(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    handle = waiting(client, "ui-jit-bad", pause=True)
    before = the_activity(client, "ui-jit-bad", lambda a: a.paused, "paused")
    try:
        for page in bs.new_page(browser):
            posts = posts_to(page)
            error = page.locator("#batch-error")
            page.goto(f"{url}#/?status=running&search=ui-jit-bad")
            expect(page.locator("tbody tr")).to_have_count(1)
            page.click("#batch-button")
            for action in ("unpause-activities", "reset-activities"):
                page.select_option("#batch-action", action)
                for text, said in BAD:
                    page.fill("#batch-jitter", text)
                    expect(error).to_be_hidden()  # (typing starts again)
                    page.click("#batch-check")
                    expect(error).to_contain_text(said)
                    expect(page.locator("#batch-preview")).to_be_hidden()
                    expect(page.locator("#batch-confirm")).to_be_hidden()
            assert posts == []
            # Nothing changed: still paused, at the same attempt, nothing due.
            after = client.get_handle("ui-jit-bad").describe().pending_activities[0]
            assert (after.paused, after.attempt, after.next_attempt_at) == (
                True,
                before.attempt,
                None,
            )
    finally:
        handle.terminate("done")
