"""Pausing and unpausing the pending activities of a type from the
workflow list's "Act on all matching…" dialog: the activity actions ask
for an activity type (and, to unpause, whether to count attempts from 1
again) instead of a reason; what cannot be sent, and what the server
refuses, is said in the dialog; the dry run counts and names the
activities (workflow id, type, ref, attempt), changing nothing; acting sums
up, and the workflow page shows them paused; activities of another type
are left alone.

The runs are real (a ``perdure server`` and a ``perdure worker`` process
over tests/surfaces/async_workflows.py): ``keeps_retrying``'s activity
``down_for_ever`` fails every 50 ms for ever; ``awaits_an_answer_for_ever``'s
attempt awaits completion for ever. The route itself is tested in
test_activity_batch_http.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from surface_helpers import UI, activity_pages, pages_client
from surface_helpers import first_activity as the_activity

import perdure

RUNS = ("ui-ab-1", "ui-ab-2")  # keeps_retrying: their activities are paused
OTHER = "ui-ab-ask"  # awaits_an_answer_for_ever: another activity type, left alone


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    yield from activity_pages(tmp_path_factory.mktemp("activity-batch-ui"))


@pytest.fixture
def client(ui: UI) -> Iterator[perdure.SyncClient]:
    yield from pages_client(ui)


def paused(client: perdure.SyncClient, ident: str) -> bool:
    return client.get_handle(ident).describe().pending_activities[0].paused


def test_an_admin_pauses_then_unpauses_the_activities_of_a_type(
    ui: UI, client: perdure.SyncClient
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, _ = ui
    handles = [client.start("keeps_retrying", ident, id=ident) for ident in RUNS]
    handles.append(client.start("awaits_an_answer_for_ever", "a", id=OTHER))
    for ident in RUNS:
        the_activity(client, ident, lambda a: a.attempt >= 2, "retried")
    the_activity(client, OTHER, lambda a: a.awaiting_completion, "awaiting")
    try:
        for page in bs.new_page(browser):
            dialog = page.locator("#batch-dialog")
            error = page.locator("#batch-error")

            # Only open runs have pending activities: said before anything is sent.
            page.goto(f"{url}#/?status=failed&search=ui-ab-")
            page.click("#batch-button")
            page.select_option("#batch-action", "pause-activities")
            expect(page.locator("#batch-check")).to_have_text("Find matching activities")
            page.click("#batch-check")
            expect(error).to_have_text(
                "Only open runs have pending activities: filter the list by status running, "
                "not failed."
            )
            page.click("#batch-close")

            # Neither a type nor a filter of the runs (status running is none
            # here): the server's refusal, in the dialog.
            page.goto(f"{url}#/?status=running")
            page.click("#batch-button")
            page.select_option("#batch-action", "pause-activities")
            page.click("#batch-check")
            expect(error).to_contain_text("name which activities to pause: give activity_type")
            page.click("#batch-close")

            page.goto(f"{url}#/?status=running&search=ui-ab-")
            expect(page.locator("tbody tr")).to_have_count(3)
            page.click("#batch-button")
            expect(page.locator("#batch-reason-label")).to_be_visible()
            expect(page.locator("#batch-type-label")).to_be_hidden()
            page.select_option("#batch-action", "pause-activities")
            expect(page.locator("#batch-reason-label")).to_be_hidden()
            expect(page.locator("#batch-type-label")).to_be_visible()
            expect(page.locator("#batch-reset-label")).to_be_hidden()  # (unpause only)
            page.fill("#batch-activity-type", "down_for_ever")
            page.press("#batch-activity-type", "Enter")  # a dry run: says which, does nothing
            expect(page.locator("#batch-preview p")).to_have_text("2 activities match:")
            items = page.locator("#batch-activities li")
            expect(items).to_have_count(2)
            for item, ident in zip((items.nth(0), items.nth(1)), reversed(RUNS), strict=True):
                expect(item).to_have_text(
                    re.compile(rf"^{ident} · down_for_ever ref 1 · attempt \d+$")
                )
            expect(page.locator("#batch-confirm")).to_have_text("Pause 2 activities")
            assert [paused(client, i) for i in (*RUNS, OTHER)] == [False] * 3
            page.click("#batch-confirm")
            expect(page.locator("#batch-summary")).to_have_text(
                "Paused 2 of 2 activities matched: 0 skipped, 0 failed."
            )
            expect(page.locator("#batch-confirm")).to_be_hidden()
            expect(page.locator("#batch-activity-type")).to_be_disabled()
            page.click("#batch-close")
            expect(dialog).not_to_be_visible()

            # The workflow page shows it paused; the other type's is not.
            badge = page.locator("#pending .pending-activity .paused-badge")
            page.goto(f"{url}#/workflows/{RUNS[0]}")
            expect(badge).to_have_text("paused")
            page.goto(f"{url}#/workflows/{OTHER}")
            expect(page.locator("#pending .pending-activity")).to_contain_text(
                "ask_without_a_deadline ref 1"
            )
            expect(badge).to_have_count(0)
            assert [paused(client, i) for i in (*RUNS, OTHER)] == [True, True, False]

            # Unpaused, their attempts counted from 1 again (none runs now).
            for ident in RUNS:
                the_activity(client, ident, lambda a: not a.running, "idle")
            page.goto(f"{url}#/?status=running&search=ui-ab-")
            page.click("#batch-button")
            page.select_option("#batch-action", "unpause-activities")
            expect(page.locator("#batch-reset-label")).to_be_visible()
            page.check("#batch-reset-attempts")
            page.click("#batch-check")
            expect(page.locator("#batch-preview p")).to_have_text("2 activities match:")
            page.click("#batch-confirm")
            expect(page.locator("#batch-summary")).to_have_text(
                "Unpaused 2 of 2 activities matched: 0 skipped, 0 failed."
            )
            for ident in RUNS:
                again = the_activity(
                    client,
                    ident,
                    lambda a: [r["attempt"] for r in a.attempts].count(1) == 2,
                    "retried from attempt 1",
                )
                assert not again.paused
            assert not paused(client, OTHER)
    finally:
        for handle in handles:
            handle.terminate("done")
