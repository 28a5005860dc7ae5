"""The web UI in headless Chromium (Debian's ``chromium``, driven by Playwright):
the list, a workflow's page and timeline, a signal that resumes the run, an
update's answer and rejection, and the token flow. A real ``perdure server``
and ``perdure worker`` run in subprocesses.

Skipped when chromium is absent, except in CI (``CI=true``), where it must run:
``make chromium`` installs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import stamping
import surface_workflows as wf
import update_workflows as uw
from browser_support import Stack, launch, new_page, serve  # (skips without chromium)
from playwright.sync_api import Browser, Page, expect
from surface_helpers import spawn, wait_for

import perdure

ADMIN, READ = "admin-token-for-browser-tests", "read-token-for-browser-tests"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database with a worker, an open server and a server with tokens: the URLs."""
    yield from serve(tmp_path_factory.mktemp("browser"), [wf.__file__, uw.__file__], ADMIN, READ)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


def test_list_workflow_page_timeline_and_a_signal_that_resumes(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        handle = client.start("approval", "ada", 2, id="ui-approval-1")  # flaky_step fails twice
        client.start("doomed", "the printer is on fire", id="ui-doomed-1")
        wait_for(lambda: handle.describe().waiting_signals == ["approve"], 20, "the signal wait")

        page.goto(stack.open_url)
        row = page.locator("tr[data-id='ui-approval-1']")
        expect(row).to_contain_text("running")
        expect(page.locator("tr[data-id='ui-doomed-1']")).to_contain_text("failed")
        page.get_by_role("button", name="running", exact=True).click()
        expect(page.locator("tr[data-id='ui-doomed-1']")).to_have_count(0)
        page.fill("#search", "approval-1")
        expect(page).to_have_url(re.compile(r"status=running&search=approval-1"))
        expect(page.locator("tbody tr")).to_have_count(1)

        row.get_by_role("link").click()
        expect(page.locator("#wf-id")).to_have_text("ui-approval-1")
        expect(page.locator(".wf-title .badge")).to_have_text("running")
        expect(page.locator("#pending")).to_contain_text("awaiting approve")
        timeline = page.locator("#timeline svg")
        expect(timeline.locator("g.row-activity")).to_have_count(2)  # make_greeting, flaky_step
        expect(timeline.locator("g.row-timer")).to_have_count(1)  # the signal wait's timeout
        expect(timeline).to_contain_text("flaky_step")
        expect(timeline).to_contain_text("3 attempts")
        # One bar per attempt: two failed ones (with their error), then the success.
        flaky = timeline.locator("g.row-activity", has_text="flaky_step")
        expect(flaky.locator("rect.attempt")).to_have_count(3)
        expect(flaky.locator("rect.attempt.act-attempt-failed")).to_have_count(2)
        expect(flaky.locator("rect.attempt.act-completed")).to_have_count(1)
        failed = flaky.locator("rect.attempt[data-attempt='2'] title")
        expect(failed).to_have_text(
            re.compile(r"attempt 2 [\s\S]*ConnectionError: upstream unavailable")
        )
        assert flaky.locator("rect.attempt").evaluate_all(
            "bars => bars.every((b, i) => i === 0 || Number(b.getAttribute('x')) >="
            " Number(bars[i - 1].getAttribute('x')))"
        ), "attempt bars are not in time order"
        expect(page.locator("#history")).to_contain_text("ActivityScheduled")

        page.click("#signal-button")
        expect(page.locator("#signal-name")).to_have_value("approve")
        page.fill("#signal-payload", "not json")
        page.click("#signal-send")
        expect(page.locator("#signal-error")).to_contain_text("not valid JSON")
        page.fill("#signal-payload", '"browser"')
        page.click("#signal-send")
        expect(page.locator(".wf-title .badge")).to_have_text("completed")
        expect(page.locator("#history")).to_contain_text('approve "browser"')
        expect(page.locator("#timeline svg g.row-signals")).to_have_count(1)
        assert handle.result(timeout=10)["approved_by"] == "browser"

        # A delayed start says when its first turn is due (it had looked stuck).
        client.start("approval", "later", id="ui-later-1", start_delay=timedelta(hours=2))
        page.goto(stack.open_url + "#/workflows/ui-later-1")
        expect(page.locator("#starts-at")).to_contain_text("Not started yet")
        expect(page.locator("#starts-at")).not_to_contain_text("Debounced")
        expect(page.locator("#no-worker")).to_have_count(0)
        expect(page.locator("#awaiting-nothing")).to_have_count(0)
        # A debounced one names its key.
        debounced = client.debounce("approval", "soon", key="ui-burst", delay=timedelta(hours=2))
        page.goto(stack.open_url + f"#/workflows/{debounced.id}")
        expect(page.locator("#starts-at")).to_contain_text(
            'Debounced: a start with key "ui-burst" before then moves it back.'
        )

        # An activity no worker takes says so (its queue has no worker).
        unserved = client.start("waits_on_an_unserved_queue", "ui", id="ui-unserved-1")
        wait_for(
            lambda: (
                any(a.waiting_for_worker for a in unserved.describe().pending_activities) or None
            ),
            20,
            "the activity to wait for a worker",
        )
        page.goto(stack.open_url + "#/workflows/ui-unserved-1")
        untaken = page.locator(".pending-activity .no-activity-worker")
        expect(untaken).to_contain_text("No live worker serves it")
        expect(untaken).to_contain_text("nobody-serves-this-queue")
        unserved.terminate("seen")

        # A run whose turns fail (and are retried) is marked in the list.
        failing = client.start("reads_in_a_thread", "ui", id="ui-retrying-1")
        wait_for(lambda: failing.describe().last_error, 20, "the turn to fail")
        page.goto(stack.open_url)
        mark = page.locator("tr[data-id='ui-retrying-1'] .retrying")
        expect(mark).to_have_text("retrying")
        assert "loop.run_in_executor()" in (mark.get_attribute("title") or "")
        expect(page.locator("tr[data-id='ui-approval-1'] .retrying")).to_have_count(0)
        page.check("#retrying-only")
        expect(page).to_have_url(re.compile(r"retrying=true"))
        expect(page.locator("tbody tr")).to_have_count(1)
        expect(page.locator("tbody tr")).to_have_attribute("data-id", "ui-retrying-1")
        failing.terminate("seen")

        # A run whose code awaits what nothing will complete says so.
        stuck = client.start("awaits_an_event", "ui", id="ui-awaits-nothing-1")
        wait_for(lambda: stuck.describe().awaiting_nothing or None, 20, "the run to await nothing")
        page.goto(stack.open_url + "#/workflows/ui-awaits-nothing-1")
        expect(page.locator("#awaiting-nothing")).to_contain_text("waits for nothing")
        stuck.terminate("seen")

        # A run whose code waits on a condition says so among what it waits on.
        gathering = client.start("awaits_a_condition", "ui", id="ui-condition-1")
        wait_for(lambda: gathering.describe().waiting_conditions or None, 20, "the condition")
        page.goto(stack.open_url + "#/workflows/ui-condition-1")
        expect(page.locator("#pending .pending-condition")).to_contain_text(
            "a condition in its code (workflow.wait_condition)"
        )
        expect(page.locator("#awaiting-nothing")).to_have_count(0)
        gathering.terminate("seen")


def test_a_long_run_lists_its_latest_events_and_fetches_only_new_ones(
    stack: Stack, page: Page
) -> None:
    """A run of 600 steps: its page had drawn 600 timeline rows and listed
    every event, and fetched the whole history again every 2 s."""
    with perdure.SyncClient.connect(stack.db) as client:
        handle = client.start("many_steps", 600, id="ui-long-1")
        wait_for(lambda: handle.describe().waiting_signals == ["finish"], 30, "the signal wait")
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url) if "/history" in r.url else None)
        page.goto(stack.open_url + "#/workflows/ui-long-1")
        expect(page.locator("#history-more")).to_contain_text("earlier ones are not")
        expect(page.locator("#history tbody tr.ev")).to_have_count(500)
        expect(page.locator("#timeline-hidden")).to_contain_text("earlier ones are left out")
        expect(page.locator("#timeline svg g.row-activity")).to_have_count(99)
        expect(page.locator("#timeline svg g.row-activity").last).to_contain_text("ref 600")

        client.get_handle("ui-long-1").signal("finish")
        expect(page.locator(".wf-title .badge")).to_have_text("completed")
        expect(page.locator("#history tbody tr.ev").last).to_contain_text("WorkflowCompleted")
        later = [url for url in fetched[1:] if "after_seq=" in url]
        assert later and len(later) == len(fetched) - 1, fetched  # only the first was whole
        expect(page.locator("#timeline svg g.row-activity").last).to_contain_text("ref 601")

        page.click("#history-all")
        expect(page.locator("#history-more")).to_have_count(0)
        assert page.locator("#history tbody tr.ev").count() > 1_200


def test_the_page_of_a_run_that_continues_as_new_follows_the_new_run(
    stack: Stack, page: Page
) -> None:
    """The page of a workflow id fetches only new events after its first load;
    when the run continues as new, it shows the new run's history, not the old
    one's with the new one's appended."""
    with perdure.SyncClient.connect(stack.db) as client:
        handle = client.start("relay", 0, id="ui-relay-1")
        wait_for(lambda: handle.describe().waiting_signals == ["next"], 20, "the signal wait")
        page.goto(stack.open_url + "#/workflows/ui-relay-1")
        started = page.locator("#history tbody tr.ev", has_text="WorkflowStarted")
        expect(started).to_contain_text("relay(0)")
        client.get_handle("ui-relay-1").signal("next")
        expect(started).to_contain_text("relay(1)")
        expect(started).to_have_count(1)
        client.get_handle("ui-relay-1").signal("next")
        expect(page.locator(".wf-title .badge")).to_have_text("completed")
        expect(started).to_contain_text("relay(2)")
        expect(started).to_have_count(1)


def test_the_update_form_shows_the_answer_or_the_rejection(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        handle = client.start("expense", "exp-ui", 1500, id="ui-expense-1")
        wait_for(lambda: handle.describe().waiting_updates == ["decide"], 20, "the update wait")
        page.goto(f"{stack.open_url}#/workflows/ui-expense-1")
        expect(page.locator("#pending .pending-update")).to_contain_text("awaiting decide")
        expect(page.locator("#update-button")).to_have_class("primary")  # (no signal awaited)
        page.click("#update-button")
        expect(page.locator("#update-name")).to_have_value("decide")
        page.fill("#update-payload", "not json")
        page.click("#update-send")
        expect(page.locator("#update-error")).to_contain_text("not valid JSON")

        error, answer = page.locator("#update-error"), page.locator("#update-answer")
        page.fill("#update-payload", '{"decision": "approved", "by": "team-lead"}')
        page.click("#update-send")
        expect(error).to_contain_text("Rejected (update ")
        expect(error).to_contain_text("above 1,000 a director decides")
        expect(answer).to_be_hidden()
        page.fill("#update-payload", '{"decision": "approved", "by": "director"}')
        page.fill("#update-id", "ui-director-1")
        page.click("#update-send")
        expect(answer).to_contain_text("Answered decide (update ui-director-1):")
        expect(answer.locator("pre")).to_contain_text('"status": "approved"')
        expect(error).to_be_hidden()
        expect(page.locator("#update-id")).to_have_value("")  # (a new send: a new request)
        page.click("#update-cancel")
        expect(page.locator(".wf-title .badge")).to_have_text("completed")
        assert handle.result(timeout=10) == "approved"

        # The history says which event is an update's request, and its answer.
        history = page.locator("#history")
        expect(history).to_contain_text(
            'update decide (ui-director-1) {"decision":"approved","by":"director"}'
        )
        expect(history).to_contain_text("rejected: above 1,000 a director decides")
        expect(history).to_contain_text(
            'decide (ui-director-1) → {"status":"approved","amount":1500}'
        )
        expect(history).not_to_contain_text("perdure.update:")
        expect(page.locator("#timeline svg g.row-signals")).to_contain_text("signals, updates")
        expect(page.locator("#update-button")).to_have_count(0)  # closed

        # No answer in time (the page's 30 s cut to 0.3 on the way): the dialog
        # keeps the request's id, and sending again gets that request's answer.
        gate = client.start("gate", "ada", id="ui-gate-1")
        wait_for(lambda: gate.describe().waiting_signals == ["open"], 20, "the gate's wait")
        page.goto(f"{stack.open_url}#/workflows/ui-gate-1")
        expect(page.locator("#signal-button")).to_have_class("primary")
        page.route(
            re.compile(r".*/updates/ask\?.*"),
            lambda route: route.continue_(
                url=route.request.url.replace("timeout=30", "timeout=0.3")
            ),
        )
        page.click("#update-button")
        page.fill("#update-name", "ask")
        page.fill("#update-payload", '"tea"')
        page.click("#update-send")
        expect(error).to_contain_text("No answer within 30 s; the request stays queued")
        update_id = page.locator("#update-id").input_value()
        assert re.fullmatch(r"[0-9a-f]{32}", update_id), update_id
        page.unroute(re.compile(r".*/updates/ask\?.*"))
        page.click("#update-send")  # (the same id: it waits for that request's answer)
        expect(page.locator("#update-send")).to_have_text("Waiting for the answer…")

        def sent() -> list[str] | None:
            events = gate.history()
            ids = [e["payload"]["update_id"] for e in events if e["type"] == "SignalReceived"]
            return ids if len(ids) == 2 else None

        assert wait_for(sent, 20, "the retry's request") == [update_id, update_id]
        gate.signal("open")
        expect(answer).to_contain_text(f"Answered ask (update {update_id}):")
        expect(answer.locator("pre")).to_have_text('"ada says yes to tea"')
        assert gate.result(timeout=10) == f"answered {update_id}"


def test_tokens_read_only_and_admin(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        client.start("approval", "bob", id="ui-token-1")
        wait_for(lambda: client.get_handle("ui-token-1").describe().waiting_signals, 20, "the wait")

    page.goto(f"{stack.auth_url}#/workflows/ui-token-1")
    expect(page.locator("#token-dialog")).to_be_visible()  # 401: the UI asks for a token
    page.fill("#token-input", "wrong-token-wrong-token")
    page.click("#token-save")
    expect(page.locator("#token-error")).to_contain_text("not valid")
    page.fill("#token-input", READ)
    page.click("#token-save")
    expect(page.locator("#wf-id")).to_have_text("ui-token-1")
    expect(page.locator("#token-button")).to_have_text("Token: read")
    expect(page.locator("#signal-button")).to_have_count(0)  # read-only: no actions
    expect(page.locator("#update-button")).to_have_count(0)
    expect(page.locator("#terminate-button")).to_have_count(0)
    expect(page.locator("#reset-button")).to_have_count(0)

    page.click("#token-button")
    page.fill("#token-input", ADMIN)
    page.click("#token-save")
    expect(page.locator("#token-button")).to_have_text("Token: admin")
    page.click("#terminate-button")
    page.fill("#confirm-reason", "cleanup from the UI")
    page.click("#confirm-ok")
    expect(page.locator(".wf-title .badge")).to_have_text("terminated")
    expect(page.locator("body")).to_contain_text("cleanup from the UI")
    page.reload()  # the token survives a reload (sessionStorage)
    expect(page.locator("#token-button")).to_have_text("Token: admin")


def test_a_history_read_behind_its_description_is_caught_up(stack: Stack, page: Page) -> None:
    """The page reads a run's description and its history side by side; a
    turn that commits between the two reads leaves the history behind (a
    reset's new run at event 1 has no event until its first turn). Here the
    first history read answers as if it came before the run's turns: the
    page fetches the events the description counts, rather than showing a
    closed run (no longer refreshed) with no history."""
    with perdure.SyncClient.connect(stack.db) as client:
        done = client.start("double", 4, id="ui-behind")
        assert done.result(timeout=20) == 8
    stale: list[str] = []

    def first_empty(route: Any) -> None:
        if not stale and "after_seq" not in route.request.url:
            stale.append(route.request.url)
            route.fulfill(status=200, content_type="application/json", body="[]")
        else:
            route.continue_()

    page.route(re.compile(r".*/api/workflows/ui-behind/history.*"), first_empty)
    page.goto(f"{stack.open_url}#/workflows/ui-behind")
    expect(page.locator(".wf-title .badge")).to_have_text("completed")
    expect(page.locator("#history")).to_contain_text("WorkflowCompleted")
    assert len(stale) == 1


def test_reset_from_the_ui_goes_to_the_new_run(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        first = client.start("double", 21, id="ui-reset-1")
        assert first.result(timeout=20) == 42

    page.goto(f"{stack.open_url}#/workflows/ui-reset-1")
    expect(page.locator(".wf-title .badge")).to_have_text("completed")
    expect(page.locator("#signal-button")).to_have_count(0)  # closed: reset only
    page.click("#reset-button")
    expect(page.locator("#confirm-event-label")).to_be_visible()
    expect(page.locator("#confirm-points")).to_have_text(
        "It may go back to event 1; by default, 1."
    )
    page.fill("#confirm-event", "99")
    page.click("#confirm-ok")
    expect(page.locator("#confirm-error")).to_contain_text("no event 99")
    page.fill("#confirm-event", "1")
    page.fill("#confirm-reason", "again from the UI")
    page.click("#confirm-ok")
    expect(page.locator("#reset-from")).to_contain_text("reset at event 1 from")
    expect(page.locator(".wf-title .badge")).to_have_text("completed")
    expect(page.locator("#history")).to_contain_text("again from the UI")
    new_run = page.locator(".wf-meta code").first.inner_text()
    assert new_run != first.run_id and new_run in page.url
    # The old run is no longer the id's latest: its page says so and links to
    # the new run; its reset is refused, and says why.
    page.goto(f"{stack.open_url}#/workflows/ui-reset-1?run={first.run_id}")
    expect(page.locator("#newer-run")).to_contain_text(f"run {new_run[:8]}… is (completed)")
    page.click("#reset-button")
    page.click("#confirm-ok")
    expect(page.locator("#confirm-error")).to_contain_text("not the latest run")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    # The list: both runs of the id, or with "Latest runs only" the new one.
    page.goto(f"{stack.open_url}#/?search=ui-reset-1")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.check("#latest-only")
    expect(page).to_have_url(re.compile(r"latest=true"))
    expect(page.locator("tbody tr")).to_have_count(1)

    # A child's page offers no reset (its parent waits on it): only the parent's.
    with perdure.SyncClient.connect(stack.db) as client:
        client.start("family", 2, id="ui-reset-family")
        kid = client.get_handle("ui-reset-family/kid")
        wait_for(lambda: _exists(kid), 20, "the waiting child")
    page.goto(f"{stack.open_url}#/workflows/{'ui-reset-family%2Fkid'}")
    expect(page.locator("#parent")).to_be_visible()
    expect(page.locator("#cancel-button")).to_be_visible()
    expect(page.locator("#reset-button")).to_have_count(0)
    page.goto(f"{stack.open_url}#/workflows/ui-reset-family")
    expect(page.locator("#reset-button")).to_be_visible()


def _exists(handle: perdure.SyncWorkflowHandle[object]) -> bool:
    try:
        return handle.describe().status == "running"
    except perdure.WorkflowNotFoundError:
        return False


def test_a_sealed_run_reads_in_clear_and_downloads_as_stored(
    tmp_path_factory: pytest.TempPathFactory, page: Page
) -> None:
    """With the server's --converter, the history table shows payloads opened;
    "Download JSON" still gives the history as stored (what replay reads)."""
    import json

    import sealed_workflows as sealed

    folder = tmp_path_factory.mktemp("sealed-ui")
    db = f"sqlite:///{folder / 'sealed.db'}"
    converter = ["--converter", f"{sealed.__file__}:converter"]
    procs = [
        spawn(["worker", sealed.__file__, "--db", db, "--poll-interval", "0.02", *converter],
              folder / "worker.log"),
        spawn(["server", "--port", "0", "--db", db, *converter], folder / "server.log"),
    ]  # fmt: skip
    try:
        with perdure.SyncClient.connect(db, converter=sealed.converter) as client:
            handle = client.start(sealed.sealed_echo, "psst", id="ui-sealed-1")
            wait_for(lambda: handle.describe().waiting_signals == ["more"], 20, "the signal wait")
        page.goto(procs[1].url() + "#/workflows/ui-sealed-1")
        history = page.locator("#history")
        expect(history).to_contain_text('"psst"')
        expect(history).not_to_contain_text("__perdure_codec__")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download JSON").click()
        stored = json.loads(download.value.path().read_text(encoding="utf-8"))
        assert stored[0]["type"] == "WorkflowStarted"
        assert "__perdure_codec__" in json.dumps(stored) and "psst" not in json.dumps(stored)
    finally:
        for proc in procs:
            assert proc.stop() == 0, proc.output()


def test_the_schedules_page_lists_pauses_triggers_and_deletes(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        schedule = client.create_schedule("ui-often", "double", 5, every=timedelta(seconds=1))
        client.create_schedule(
            "ui-nightly", "double", 1, cron="0 3 * * *", timezone="Europe/Paris", paused=True
        )
        wait_for(lambda: schedule.describe().runs_started >= 2, 20, "two scheduled runs")

        page.goto(f"{stack.auth_url}#/schedules")
        expect(page.locator("#token-dialog")).to_be_visible()
        page.fill("#token-input", ADMIN)
        page.click("#token-save")
        row = page.locator("tr[data-id='ui-often']")
        expect(row).to_contain_text("every 1.0 s")
        expect(row.locator("a").first).to_have_attribute("href", "#/workflows/schedule%3Aui-often")
        expect(row.locator("a[href^='#/workflows/ui-often%40']").first).to_be_visible()
        nightly = page.locator("tr[data-id='ui-nightly']")
        expect(nightly).to_contain_text("cron 0 3 * * * (Europe/Paris)")
        expect(nightly.locator(".paused")).to_have_text("paused")
        expect(nightly.locator("[data-action='unpause']")).to_be_visible()

        page.once("dialog", lambda dialog: dialog.accept("quiet hours"))
        row.locator("[data-action='pause']").click()
        expect(row.locator(".paused")).to_be_visible()
        wait_for(lambda: schedule.describe().note == "quiet hours", 20, "the note")
        started = schedule.describe().runs_started
        row.locator("[data-action='trigger']").click()
        wait_for(lambda: schedule.describe().runs_started > started, 20, "the triggered run")
        assert schedule.describe().recent[-1].trigger

        page.once("dialog", lambda dialog: dialog.accept())
        nightly.locator("[data-action='delete']").click()
        expect(nightly).to_have_count(0)
        assert client.get_schedule("ui-nightly").describe().status == "terminated"
        row.locator("a").first.click()  # the schedule's own workflow
        expect(page.locator("#wf-id")).to_have_text("schedule:ui-often")
        schedule.delete()


def test_the_queues_page_sets_edits_and_lifts_limits(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        page.goto(f"{stack.auth_url}#/queues")
        expect(page.locator("#token-dialog")).to_be_visible()
        page.fill("#token-input", ADMIN)
        page.click("#token-save")
        form = page.locator("#limits-form")
        expect(form).to_be_visible()
        form.locator("input[name='queue']").fill("ui-limited")
        form.locator("input[name='max_starts']").fill("10")
        form.locator("[data-action='set-limits']").click()  # no window: refused
        expect(page.locator(".toast-error")).to_contain_text("a rate limit needs both")
        assert client.describe_queue("ui-limited").limits is None

        form.locator("input[name='per_seconds']").fill("60")
        form.locator("input[name='max_running']").fill("3")
        form.locator("[data-action='set-limits']").click()
        row = page.locator("tr[data-queue='ui-limited']")
        expect(row).to_contain_text("at most 3 running, at most 10 started per 1 m 0 s")
        limits = client.describe_queue("ui-limited").limits
        assert limits is not None and (limits.max_running, limits.max_starts) == (3, 10)

        form.locator("input[name='queue']").fill("")
        row.locator("[data-action='edit']").click()  # fills the form in
        expect(form.locator("input[name='queue']")).to_have_value("ui-limited")
        expect(form.locator("input[name='per_seconds']")).to_have_value("60")
        form.locator("input[name='max_running']").fill("4")
        form.locator("input[name='max_running_per_key']").fill("2")
        form.locator("[data-action='set-limits']").click()
        expect(row).to_contain_text("at most 4 running, at most 10 started per 1 m 0 s, at most 2")
        expect(row.locator(".keys-at-limit")).to_have_text("0 keys at the limit")
        per_key = client.describe_queue("ui-limited").limits
        assert per_key is not None and per_key.max_running_per_key == 2
        form.locator("input[name='max_starts_per_key']").fill("5")  # (and a rate per key)
        form.locator("[data-action='set-limits']").click()
        expect(row).to_contain_text("at most 2 running per key, at most 5 of a key started per")
        rated = client.describe_queue("ui-limited").limits
        assert rated is not None and (rated.max_starts_per_key, rated.max_starts) == (5, 10)
        form.locator("input[name='max_starts_per_key']").fill("")
        form.locator("input[name='max_running_per_key']").fill("")
        form.locator("input[name='max_running']").fill("0")  # (pauses the queue)
        form.locator("[data-action='set-limits']").click()
        expect(row).to_contain_text("paused: no attempt starts, at most 10 started per")
        paused = client.describe_queue("ui-limited").limits
        assert paused is not None and paused.paused

        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("[data-action='lift']").click()
        expect(row).to_have_count(0)  # no tasks and no limits: not listed
        assert client.describe_queue("ui-limited").limits is None


def test_search_attributes_filter_the_list_and_show_on_a_run(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        client.start("double", 1, id="ui-attr-1", search_attributes={"shop": "ui-s1", "total": 120})
        client.start("double", 2, id="ui-attr-2", search_attributes={"shop": "ui-s1", "total": "7"})
        client.start(
            "double", 3, id="ui-attr-3", search_attributes={"shop": "ui-s2", "city": "New York"}
        )
        client.start("double", 4, id="ui-attr-4")

    page.goto(stack.open_url)
    expect(page.locator("tr[data-id='ui-attr-4']")).to_be_visible()
    page.fill("#attr-filter", "shop=ui-s1")
    expect(page).to_have_url(re.compile(r"attr=shop%3Dui-s1"))
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.locator("tr[data-id='ui-attr-3']")).to_have_count(0)
    # Terms separated by spaces or commas, each required; values match as text.
    page.fill("#attr-filter", "shop=ui-s1, total=120")
    expect(page).to_have_url(re.compile(r"attr=shop%3Dui-s1&attr=total%3D120"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_attribute("data-id", "ui-attr-1")
    page.fill("#attr-filter", 'city="New York"')
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_attribute("data-id", "ui-attr-3")
    # Bounds: a number compares the runs' numbers ("7" is a string).
    page.fill("#attr-filter", "total>=5 total<200")
    expect(page).to_have_url(re.compile(r"attr=total%3E%3D5&attr=total%3C200"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_attribute("data-id", "ui-attr-1")
    page.fill("#attr-filter", 'city>="New"')
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_attribute("data-id", "ui-attr-3")
    page.reload()  # (the field is filled in from the link, the bound kept)
    expect(page.locator("#attr-filter")).to_have_value("city>=New")
    page.fill("#attr-filter", "shop")  # no '=': the server's message is shown
    expect(page.locator(".empty.error")).to_contain_text("attr takes NAME=VALUE")
    # A shared link fills the field in.
    page.goto(f"{stack.open_url}#/?attr=city%3DNew%20York&attr=shop%3Dui-s2")
    expect(page.locator("#attr-filter")).to_have_value('city="New York" shop=ui-s2')
    expect(page.locator("tbody tr")).to_have_count(1)

    page.goto(f"{stack.open_url}#/workflows/ui-attr-1")
    table = page.locator("#search-attributes")
    expect(table.locator("tr")).to_have_count(2)
    expect(table.locator("tr[data-name='shop'] td")).to_have_text('"ui-s1"')
    expect(table.locator("tr[data-name='total'] td")).to_have_text("120")
    table.locator("tr[data-name='shop'] a").click()  # the runs with this value
    expect(page.locator("#attr-filter")).to_have_value("shop=ui-s1")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.goto(f"{stack.open_url}#/workflows/ui-attr-4")
    expect(page.locator("#search-attributes-none")).to_contain_text("None")


def test_acting_on_all_matching_runs_from_a_filtered_list(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        for ident in ("ui-batch-1", "ui-batch-2", "ui-batch-3"):
            client.start("approval", "batch", id=ident)
        finished = client.start("double", 3, id="ui-batch-done")
        assert finished.result(timeout=20) == 6
        filtered = f"{stack.auth_url}#/?status=running&search=ui-batch-"

        page.goto(filtered)  # a read token: no such control
        page.fill("#token-input", READ)
        page.click("#token-save")
        expect(page.locator("tbody tr")).to_have_count(3)
        expect(page.locator("#batch-button")).to_have_count(0)

        page.click("#token-button")
        page.fill("#token-input", ADMIN)
        page.click("#token-save")
        expect(page.locator("#token-button")).to_have_text("Token: admin")
        expect(page.locator("#batch-button")).to_be_visible()
        page.goto(f"{stack.auth_url}#/")  # not filtered: hidden
        expect(page.locator("tbody tr").first).to_be_visible()
        expect(page.locator("#batch-button")).to_be_hidden()
        page.check("#latest-only")  # (not a filter a batch takes: still hidden)
        expect(page.locator("#batch-button")).to_be_hidden()

        # Cancel or terminate only open runs: the server says so in the dialog.
        page.goto(f"{stack.auth_url}#/?status=completed&search=ui-batch-")
        page.click("#batch-button")
        page.click("#batch-check")
        expect(page.locator("#batch-error")).to_contain_text("only open runs can be cancelled")
        page.click("#batch-close")

        page.goto(filtered)
        expect(page.locator("tbody tr")).to_have_count(3)
        page.click("#batch-button")
        expect(page.locator("#batch-filters")).to_have_text(
            "Runs matching: status running · id contains “ui-batch-”. Each workflow id's "
            "latest run; cancel and terminate act on open runs only."
        )
        page.select_option("#batch-action", "terminate")
        page.fill("#batch-reason", "cleared from the list")
        page.click("#batch-check")  # a dry run: says which, does nothing
        expect(page.locator("#batch-preview")).to_have_text(
            "3 runs match (first ones: ui-batch-3, ui-batch-2, ui-batch-1)."
        )
        expect(page.locator("#batch-confirm")).to_have_text("Terminate 3 runs")
        assert {client.get_handle(f"ui-batch-{n}").describe().status for n in (1, 2, 3)} == {
            "running"
        }
        page.click("#batch-confirm")
        expect(page.locator("#batch-summary")).to_have_text(
            "Terminated 3 of 3 runs matched: 0 skipped, 0 failed."
        )
        expect(page.locator("#batch-confirm")).to_be_hidden()
        page.click("#batch-close")
        expect(page.locator(".empty")).to_have_text("No workflow runs match these filters.")
        for n in (1, 2, 3):
            handle = client.get_handle(f"ui-batch-{n}")
            assert handle.describe().status == "terminated"
            reasons = [
                e.get("reason") for e in handle.history() if e["type"] == "WorkflowTerminated"
            ]
            assert reasons == ["cleared from the list"]
        assert finished.describe().status == "completed"

        # A run whose action fails is listed with its error (a child: reset its parent).
        client.start("family", 2, id="ui-batch-family")
        wait_for(lambda: _exists(client.get_handle("ui-batch-family/kid")), 20, "the child")
        page.goto(f"{stack.auth_url}#/?search=ui-batch-family%2Fkid")
        expect(page.locator("tbody tr")).to_have_count(1)
        page.click("#batch-button")
        page.select_option("#batch-action", "reset")
        page.click("#batch-check")
        expect(page.locator("#batch-preview")).to_have_text(
            "1 run matches (first ones: ui-batch-family/kid)."
        )
        page.click("#batch-confirm")
        expect(page.locator("#batch-summary p").first).to_have_text(
            "Reset 0 of 1 run matched: 0 skipped, 1 failed."
        )
        expect(page.locator("#batch-failed li")).to_contain_text(
            "ui-batch-family/kid: WorkflowResetError: workflow 'ui-batch-family/kid' is a child"
        )
        assert client.get_handle("ui-batch-family/kid").describe().status == "running"


def test_a_runs_headers_show_on_its_page(stack: Stack, page: Page) -> None:
    stamp = stamping.Stamp("the browser test")
    with perdure.SyncClient.connect(stack.db, interceptors=[stamp]) as client:
        client.start("double", 5, id="ui-headed")
    with perdure.SyncClient.connect(stack.db) as client:
        client.start("double", 6, id="ui-headless")
    page.goto(f"{stack.open_url}#/workflows/ui-headed")
    table = page.locator("#headers")
    expect(table.locator("tr")).to_have_count(1)
    expect(table.locator("tr[data-name='started-by'] td")).to_have_text("the browser test")
    page.goto(f"{stack.open_url}#/workflows/ui-headless")
    expect(page.locator("#search-attributes-none")).to_be_visible()
    expect(page.locator("#headers")).to_have_count(0)
