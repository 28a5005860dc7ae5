"""Asynchronous activity completion on the operator surfaces: an attempt
whose function called ``activity.raise_complete_async()`` shows as awaiting
completion (and until when) in ``perdure show``, ``show --json``, the HTTP
description and the workflow page; ``perdure activity complete|fail`` and
``POST /api/activities/complete|fail`` give its outcome by its task token,
once (a second outcome: exit 3, 404); a malformed token or body is exit 2
or a 422 saying what is wrong, and changes nothing. ``heartbeat`` (with
details, shown by ``show``, the description and the page) and
``report-cancellation`` say it is alive, and end it once its workflow
cancelled it (a heartbeat then: exit 9, a 409), or hand it back, not
counted, once an operator paused or reset its activity (the same exit 9
and 409, saying which). The HTTP routes need the
admin role, as a signal does.

The attempts are real: a worker (a ``perdure worker`` process for the CLI
and the browser, in process for the HTTP API) runs tests/surfaces/
async_workflows.py, whose activity hands its token out on the run's stream
``token``. How the engine records each outcome (retries, timeouts,
heartbeats, crashes) is tested in tests/e2e/test_async_completion.py.
The workflow page's other reasons a pending activity waits (no live
worker, its queue's limits, the backlog) are checked here too, on the
same page (tests/e2e/test_waiting_reasons.py sets them for real), and so
are its complete… and fail… buttons, which settle a pending activity by
id (``keeps_retrying``'s, retried for ever).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually
from surface_helpers import Proc, cli_all, migrated_sqlite, sync_client, wait_for, worker_serving

import perdure
from perdure.cli._operator import local_time
from perdure.client import PendingActivityInfo
from perdure.server._auth import AuthConfig
from perdure.server._query import iso
from perdure.server.app import create_app


def forged_token(task_id: int, ref: int) -> str:
    """A token of the right shape naming task ``task_id``, activity ``ref``."""
    raw = json.dumps([task_id, "lease", "run", ref]).encode()
    return "pt1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def said(done: Any) -> str:
    """A command's stderr as one line of words (rich boxes and wraps it)."""
    return " ".join(str(done.stderr).replace("│", " ").split())


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("async-completion-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("async-worker"))


def tokens(sync: perdure.SyncClient, ident: str, count: int = 1) -> list[str]:
    """The first ``count`` task tokens the run's attempts handed out."""

    def handed_out() -> list[str] | None:
        entries = sync.get_handle(ident).stream_page("token").entries
        return [e.value for e in entries] if len(entries) >= count else None

    return wait_for(handed_out, 20, f"{ident}'s attempt {count} to hand out its token")[:count]


def awaiting(sync: perdure.SyncClient, ident: str, attempt: int = 1) -> PendingActivityInfo:
    """The run's pending activity, once its attempt ``attempt`` awaits completion."""

    def awaits() -> PendingActivityInfo | None:
        pending = sync.get_handle(ident).describe().pending_activities
        if pending and pending[0].awaiting_completion and pending[0].attempt == attempt:
            return pending[0]
        return None

    return wait_for(awaits, 20, f"attempt {attempt} of {ident} to await its completion")


@pytest.mark.usefixtures("worker")
def test_show_says_the_attempt_awaits_completion_and_until_when(
    db: str, sync: perdure.SyncClient
) -> None:
    sync.start("awaits_an_answer", "a", id="cli-ac-show")
    sync.start("awaits_an_answer_for_ever", "b", id="cli-ac-forever")
    timed, forever = awaiting(sync, "cli-ac-show"), awaiting(sync, "cli-ac-forever")
    assert timed.running and timed.completion_deadline is not None
    assert forever.completion_deadline is None  # (no timeout: it is never lost)
    shown, shown_json, forever_shown, forever_json = cli_all(
        ("show", "cli-ac-show", "--db", db),
        ("show", "cli-ac-show", "--json", "--db", db),
        ("show", "cli-ac-forever", "--db", db),
        ("show", "cli-ac-forever", "--json", "--db", db),
    )
    for done in (shown, shown_json, forever_shown, forever_json):
        assert done.returncode == 0, (done.args, done.stderr)
    deadline = local_time(timed.completion_deadline)
    assert (
        "activity ask_within_an_hour (ref 1): attempt 1 awaiting completion by its task "
        f"token; lost at {deadline} if none comes"
    ) in shown.stdout, shown.stdout
    assert "attempt 1 running" not in shown.stdout
    line = next(x for x in forever_shown.stdout.splitlines() if "ask_without_a_deadline" in x)
    assert line.endswith("(ref 1): attempt 1 awaiting completion by its task token"), line
    [pending] = json.loads(shown_json.stdout)["pending_activities"]
    assert pending["running"] is True and pending["awaiting_completion"] is True
    assert pending["completion_deadline"] == iso(timed.completion_deadline)
    [pending] = json.loads(forever_json.stdout)["pending_activities"]
    assert pending["awaiting_completion"] is True and pending["completion_deadline"] is None
    for ident in ("cli-ac-show", "cli-ac-forever"):
        sync.get_handle(ident).terminate("done")


@pytest.mark.usefixtures("worker")
def test_activity_complete_gives_the_run_its_result_and_a_second_exits_3(
    db: str, sync: perdure.SyncClient
) -> None:
    handle = sync.start("awaits_an_answer", "c", id="cli-ac-complete")
    [token] = tokens(sync, "cli-ac-complete")
    awaiting(sync, "cli-ac-complete")
    (done,) = cli_all(("activity", "complete", token, '{"x": 1}', "--db", db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Completed activity 1 of run {handle.run_id}"
    assert handle.result(timeout=20) == {"result": {"x": 1}}

    (again,) = cli_all(("activity", "complete", token, '{"x": 2}', "--db", db))
    assert again.returncode == 3, (again.stdout, again.stderr)
    assert again.stdout == ""
    assert f"error: activity 1 of run {handle.run_id}: this attempt can no longer end" in said(
        again
    ), said(again)
    assert "a retry has a new one" in said(again)  # (the hint)
    completed = [e for e in handle.history() if e["type"] == "ActivityCompleted"]
    assert [e["result"] for e in completed] == [{"x": 1}]


@pytest.mark.usefixtures("worker")
def test_activity_fail_non_retryable_fails_the_activity(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("awaits_an_answer", "d", id="cli-ac-fail")
    [token] = tokens(sync, "cli-ac-fail")
    awaiting(sync, "cli-ac-fail")
    (done,) = cli_all(("activity", "fail", token, "--message", "no", "--non-retryable", "--db", db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"Failed activity 1 of run {handle.run_id} with ApplicationError (not retried: the "
        "workflow's await raises ActivityError)"
    )
    # The workflow saw an ActivityError whose cause is the failure given.
    assert handle.result(timeout=20) == {
        "failed": "ApplicationError",
        "message": "no",
        "attempt": 1,
    }
    assert len(tokens(sync, "cli-ac-fail")) == 1  # (no other attempt ran)
    (again,) = cli_all(("activity", "fail", token, "--message", "again", "--db", db))
    assert again.returncode == 3 and "can no longer end" in said(again), said(again)


@pytest.mark.usefixtures("worker")
def test_a_retryable_fail_runs_a_new_attempt_with_a_new_token(
    db: str, sync: perdure.SyncClient
) -> None:
    handle = sync.start("awaits_an_answer", "e", id="cli-ac-retry")
    [first] = tokens(sync, "cli-ac-retry")
    awaiting(sync, "cli-ac-retry")
    (done,) = cli_all(
        ("activity", "fail", first, "-m", "busy", "--type", "Busy", "--db", db),
    )
    assert done.returncode == 0, done.stderr
    assert "with Busy (retried per its retry policy while attempts are left)" in done.stdout
    old, new = tokens(sync, "cli-ac-retry", 2)
    assert old == first and new != first
    retried = awaiting(sync, "cli-ac-retry", attempt=2)
    assert retried.last_failure is not None and retried.last_failure["type"] == "Busy"
    (stale,) = cli_all(("activity", "complete", first, '"late"', "--db", db))
    assert stale.returncode == 3 and "can no longer end" in said(stale), said(stale)
    (fresh,) = cli_all(("activity", "complete", new, '"yes"', "--db", db))
    assert fresh.returncode == 0, fresh.stderr
    assert handle.result(timeout=20) == {"result": "yes"}


def no_activity_pending(sync: perdure.SyncClient, ident: str) -> None:
    wait_for(
        lambda: not sync.get_handle(ident).describe().pending_activities,
        20,
        f"{ident}'s cancelled attempt to end",
    )


@pytest.mark.usefixtures("worker")
def test_heartbeat_shows_its_details_and_a_cancelled_attempt_is_reported(
    db: str, sync: perdure.SyncClient
) -> None:
    handle = sync.start("awaits_until_cancelled", "hb", id="cli-ac-beat")
    [token] = tokens(sync, "cli-ac-beat")
    assert awaiting(sync, "cli-ac-beat").heartbeat_details is None
    (beat,) = cli_all(("activity", "heartbeat", token, '{"pages": 40}', "--db", db))
    assert beat.returncode == 0, beat.stderr
    assert beat.stdout.strip() == f"Heartbeat recorded for activity 1 of run {handle.run_id}"
    assert awaiting(sync, "cli-ac-beat").heartbeat_details == {"pages": 40}
    shown, shown_json = cli_all(
        ("show", "cli-ac-beat", "--db", db), ("show", "cli-ac-beat", "--json", "--db", db)
    )
    assert 'awaiting completion by its task token\n    last heartbeat: {"pages": 40}' in (
        shown.stdout
    ), shown.stdout
    [pending] = json.loads(shown_json.stdout)["pending_activities"]
    assert pending["heartbeat_details"] == {"pages": 40}

    handle.cancel()
    wait_for(
        lambda: sync.get_handle("cli-ac-beat").describe().waiting_signals == ["finish"],
        20,
        "the workflow to cancel its activity",
    )
    (shown,) = cli_all(("show", "cli-ac-beat", "--db", db))
    assert (
        "cancel requested by its workflow: this attempt stops at its next heartbeat (if it "
        "sends none, it runs on until it ends)"
    ) in " ".join(shown.stdout.split()), shown.stdout
    told, bad = cli_all(
        ("activity", "heartbeat", token, '{"pages": 41}', "--db", db),
        ("activity", "heartbeat", token, "{pages: 42}", "--db", db),
    )
    assert told.returncode == 9, (told.stdout, told.stderr)
    assert "was cancelled by its workflow" in said(told), said(told)
    assert "perdure activity report-cancellation TOKEN" in said(told)  # (the hint)
    assert bad.returncode == 2 and "DETAILS_JSON must be JSON" in said(bad), said(bad)
    # (As in Temporal, a heartbeat that hears of the cancellation is recorded.)
    assert awaiting(sync, "cli-ac-beat").heartbeat_details == {"pages": 41}
    (reported,) = cli_all(("activity", "report-cancellation", token, "--db", db))
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.strip() == (
        f"Recorded the cancellation of activity 1 of run {handle.run_id}"
    )
    no_activity_pending(sync, "cli-ac-beat")
    # (The outcome reaches the history with the run's next turn, which a
    # loaded worker may take a moment to run: the task row goes first.)
    ended = wait_for(
        lambda: next((e for e in handle.history() if e["type"] == "ActivityFailed"), None),
        20,
        "the cancellation in the run's history",
    )
    assert ended["failure"]["type"] == "CancelledError"
    late = cli_all(
        ("activity", "heartbeat", token, "--db", db),
        ("activity", "report-cancellation", token, "--db", db),
    )
    for done in late:
        assert done.returncode == 3 and "can no longer end" in said(done), said(done)
    handle.signal("finish")
    assert handle.result(timeout=20) == {"cancelled": True}


def retried(sync: perdure.SyncClient, ident: str) -> None:
    """Wait until the run's activity has failed and been retried."""
    wait_for(
        lambda: (p := sync.get_handle(ident).describe().pending_activities) and p[0].attempt >= 2,
        20,
        f"{ident}'s activity to be retried",
    )


@pytest.mark.usefixtures("worker")
def test_a_heartbeat_under_a_pause_exits_9_and_the_report_hands_the_attempt_back(
    db: str, sync: perdure.SyncClient
) -> None:
    handle = sync.start("awaits_an_answer_for_ever", "hp", id="cli-ac-paused")
    [token] = tokens(sync, "cli-ac-paused")
    by_id = ("-w", "cli-ac-paused", "-a", "1")
    (paused,) = cli_all(("activity", "pause", *by_id, "--db", db))
    assert paused.returncode == 0, said(paused)
    told, by_token = cli_all(
        ("activity", "heartbeat", *by_id, '{"rows": 3}', "--db", db),
        ("activity", "heartbeat", token, '{"rows": 3}', "--db", db),
    )
    assert told.returncode == 9, (told.stdout, told.stderr)
    assert "was paused by an operator" in said(told), said(told)
    assert "perdure activity report-cancellation -w ID -a N" in said(told)  # (the hint)
    assert by_token.returncode == 9 and "report-cancellation TOKEN" in said(by_token)
    (reported,) = cli_all(("activity", "report-cancellation", *by_id, "--db", db))
    assert reported.returncode == 0, said(reported)
    assert reported.stdout.strip() == (
        "Handed back the attempt of activity 1 of workflow 'cli-ac-paused' (its activity is "
        "paused): not counted; the next attempt starts once it is unpaused"
    )
    [info] = handle.describe().pending_activities
    assert info.paused and not info.awaiting_completion and info.attempt == 0
    # (A heartbeat that hears of a pause is recorded, as in Temporal.)
    assert info.heartbeat_details == {"rows": 3}
    (unpaused,) = cli_all(("activity", "unpause", *by_id, "--db", db))
    assert unpaused.returncode == 0, said(unpaused)
    [again] = tokens(sync, "cli-ac-paused", 2)[1:]
    assert awaiting(sync, "cli-ac-paused").attempt == 1  # (the handed-back one not counted)
    (done,) = cli_all(("activity", "complete", again, '"yes"', "--db", db))
    assert done.returncode == 0, said(done)
    assert handle.result(timeout=20) == {"result": "yes"}


@pytest.mark.usefixtures("worker")
def test_an_activity_retried_for_ever_is_settled_by_id(db: str, sync: perdure.SyncClient) -> None:
    failing = sync.start("keeps_retrying", "f", id="cli-id/fail")
    completing = sync.start("keeps_retrying", "c", id="cli-id/complete")
    retried(sync, "cli-id/fail")
    retried(sync, "cli-id/complete")
    wait_for(
        lambda: sync.get_handle("cli-id/fail").describe().pending_activities[0].attempt >= 3,
        20,
        "a third attempt",
    )
    beat, shown = cli_all(
        ("activity", "heartbeat", "-w", "cli-id/fail", "-a", "1", "--db", db),
        ("show", "cli-id/fail", "--db", db),
    )
    assert (
        "failing for good? deploy a fix, pause it (perdure activity pause -w cli-id/fail -a 1), "
        "or settle it by hand: perdure activity fail|complete -w cli-id/fail -a 1 ...; "
        "fixed, retry it now: perdure activity reset -w cli-id/fail -a 1 (docs/operations.md)"
    ) in " ".join(shown.stdout.split()), shown.stdout
    failed, completed = cli_all(
        ("activity", "fail", "-w", "cli-id/fail", "-a", "1", "-m", "gave up", "-t", "GaveUp",
         "--db", db),
        ("activity", "complete", "--workflow-id", "cli-id/complete", "--activity-id", "1",
         "--run-id", str(completing.run_id), '"shipped by hand"', "--db", db),
    )  # fmt: skip
    assert beat.returncode == 3, (beat.stdout, beat.stderr)
    assert "heartbeat and report_cancellation by id act on an attempt awaiting" in said(beat)
    assert failed.returncode == 0, failed.stderr
    assert failed.stdout.strip() == (
        "Failed activity 1 of workflow 'cli-id/fail' with GaveUp (not retried: the workflow's "
        "await raises ActivityError)"
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (
        f"Completed activity 1 of workflow 'cli-id/complete' (run {completing.run_id})"
    )
    outcome = failing.result(timeout=20)
    assert (outcome["failed"], outcome["message"]) == ("GaveUp", "gave up")
    assert completing.result(timeout=20) == {"result": "shipped by hand"}
    (again,) = cli_all(("activity", "complete", "-w", "cli-id/fail", "-a", "1", "--db", db))
    assert again.returncode == 3, (again.stdout, again.stderr)
    assert "the run has ended (completed)" in said(again), said(again)
    assert "perdure show ID` lists the run's pending activities" in said(again)  # (the hint)


@pytest.mark.usefixtures("worker")
def test_by_id_usage_errors_exit_2_and_change_nothing(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("keeps_retrying", "u", id="cli-id-usage")
    retried(sync, "cli-id-usage")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("complete",), "Invalid value for 'TOKEN': give the attempt's TOKEN, or --workflow-id"),
        (("complete", "-w", "cli-id-usage"), "by id, give both --workflow-id and --activity-id"),
        (("fail", "-a", "1", "-m", "m"), "give both --workflow-id and --activity-id"),
        (("complete", "-w", "cli-id-usage", "-a", "0"), "'-a': Input should be greater than"),
        (("complete", "-w", "cli-id-usage", "-a", "x"), "'-a': Input should be a valid integer"),
        (("complete", "-w", "", "-a", "1"), "'--workflow-id': must not be empty"),
        (("complete", "-w", "cli-id-usage", "-a", "1", "-r", ""), "'--run-id': must not be"),
        (
            ("complete", "-w", "cli-id-usage", "-a", "1", "pt1.x", '"r"'),
            "by id (--workflow-id), give only RESULT_JSON: '\"r\"' is one argument too many",
        ),
        (("fail", "pt1.x", "-w", "cli-id-usage", "-a", "1", "-m", "m"), "give no TOKEN"),
        (("complete", "-w", "cli-id-usage", "-a", "1", "{x"), "RESULT_JSON must be JSON"),
        (("heartbeat", "-r", "r"), "give both --workflow-id and --activity-id"),
    ]
    done = cli_all(*(("activity", *args, "--db", db) for args, _ in cases))
    for (args, message), result in zip(cases, done, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in said(result), (args, said(result))
    assert handle.describe().status == "running"
    assert not [e for e in handle.history() if e["type"] == "ActivityFailed"]
    handle.terminate("done")


@pytest.mark.usefixtures("worker")
def test_a_malformed_token_or_result_exits_2_and_changes_nothing(
    db: str, sync: perdure.SyncClient
) -> None:
    sync.start("awaits_an_answer", "f", id="cli-ac-bad")
    [token] = tokens(sync, "cli-ac-bad")
    before = awaiting(sync, "cli-ac-bad")
    huge = forged_token(2**70, 1)
    cases: list[tuple[tuple[str, ...], str]] = [
        (
            ("complete", "not-a-token"),
            "Invalid value for 'TOKEN': not a task token: 'not-a-token' (a token is "
            "activity.info().task_token, as the attempt's function read it, starting 'pt1.')",
        ),
        (("complete", "pt1.bm90IGEga2V5"), "not a task token: 'pt1.bm90IGEga2V5'"),
        (("complete", token[:-6]), "Invalid value for 'TOKEN': not a task token"),
        (("fail", "", "--message", "x"), "not a task token: ''"),
        (("complete", huge), f"Invalid value for 'TOKEN': not a task token: {huge!r}"),
        (("complete", token, "{x: 1}"), "RESULT_JSON must be JSON"),
        (("complete", token, "yes"), "strings need quotes"),
        (("fail", token), "Missing option '--message'"),
        (("fail", token, "--message", "x", "--type", " "), "must not be empty"),
        (("heartbeat", "nope"), "Invalid value for 'TOKEN': not a task token: 'nope'"),
        (("heartbeat", token, "[1,"), "DETAILS_JSON must be JSON"),
        (("report-cancellation", token[:-6]), "Invalid value for 'TOKEN': not a task token"),
    ]
    done = cli_all(*(("activity", *args, "--db", db) for args, _ in cases))
    for (args, message), result in zip(cases, done, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in said(result), (args, said(result))
    # A token is checked before the database is opened (a missing one is exit 4).
    (early,) = cli_all(("activity", "complete", "x", "--db", f"{db}.missing"))
    assert early.returncode == 2, early.stderr
    assert awaiting(sync, "cli-ac-bad") == before
    assert len(tokens(sync, "cli-ac-bad")) == 1
    ended = {"ActivityCompleted", "ActivityFailed"}
    assert not [e for e in sync.get_handle("cli-ac-bad").history() if e["type"] in ended]
    sync.get_handle("cli-ac-bad").terminate("done")


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[perdure.Client]:
    """The client, with an in-process worker of async_workflows."""
    w = perdure.Worker(client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield client


async def api_token(
    client: perdure.Client, ident: str, count: int = 1, attempt: int | None = None
) -> str:
    """The task token the run's ``count``-th attempt handed out, once it
    awaits completion (as attempt ``attempt``: by default, ``count``)."""
    attempt = count if attempt is None else attempt

    async def handed_out() -> Any:
        entries = (await client.get_handle(ident).stream_page("token")).entries
        return entries[count - 1].value if len(entries) >= count else None

    token: str = await eventually(handed_out, f"{ident}'s attempt {count} to hand out its token")

    async def awaits() -> bool:
        pending = (await client.get_handle(ident).describe()).pending_activities
        return bool(pending) and pending[0].awaiting_completion and pending[0].attempt == attempt

    await eventually(awaits, f"attempt {count} of {ident} to await its completion")
    return token


async def test_the_description_says_the_attempt_awaits_completion_and_until_when(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await served.start(aw.awaits_an_answer, "g", id="api-ac-show")
    await served.start(aw.awaits_an_answer_for_ever, "h", id="api-ac-forever")
    await api_token(served, "api-ac-show")
    await api_token(served, "api-ac-forever")
    timed = (await served.get_handle("api-ac-show").describe()).pending_activities[0]
    assert timed.completion_deadline is not None
    [pending] = (await api.get("/api/workflows/api-ac-show")).json()["pending_activities"]
    assert (pending["running"], pending["awaiting_completion"]) == (True, True)
    assert pending["completion_deadline"] == iso(timed.completion_deadline)
    assert pending["completion_deadline"].endswith("Z")
    [pending] = (await api.get("/api/workflows/api-ac-forever")).json()["pending_activities"]
    assert (pending["awaiting_completion"], pending["completion_deadline"]) == (True, None)

    spec = (await api.get("/api/openapi.json")).json()
    fields = spec["components"]["schemas"]["PendingActivity"]["properties"]
    assert "raise_complete_async" in fields["awaiting_completion"]["description"]
    assert "null: never" in fields["completion_deadline"]["description"]
    for name in ("complete", "fail", "heartbeat", "report-cancellation"):
        route = f"/api/activities/{name}"
        post = spec["paths"][route]["post"]
        assert {"200", "401", "403", "404", "422", "503"} <= set(post["responses"]), route
        assert post["requestBody"]["required"] is True
        wrong = await api.get(route)  # (not the web UI's 404 for a file not there)
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST"), wrong.text
    assert "409" in spec["paths"]["/api/activities/heartbeat"]["post"]["responses"]
    beat = spec["components"]["schemas"]["PendingActivity"]["properties"]["heartbeat_details"]
    assert "kept across its attempts" in beat["description"]


async def test_complete_over_http_gives_the_run_its_result_once(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_an_answer, "i", id="api-ac-complete")
    token = await api_token(served, "api-ac-complete")
    done = await api.post("/api/activities/complete", json={"task_token": token, "result": [1, 2]})
    assert done.status_code == 200, done.text
    assert done.json() == {"ok": True}
    assert await handle.result(timeout=20) == {"result": [1, 2]}
    again = await api.post("/api/activities/complete", json={"task_token": token})
    assert again.status_code == 404, again.text
    assert again.json()["detail"] == (
        f"activity 1 of run {handle.run_id}: this attempt can no longer end (it ended already, "
        "a timeout passed and it was retried with a new token, or its run ended)"
    )
    late = await api.post("/api/activities/fail", json={"task_token": token, "message": "x"})
    assert late.status_code == 404, late.text
    for task_id in (1, 2**40):  # (a token of the right shape that names nothing)
        nothing = await api.post(
            "/api/activities/complete", json={"task_token": forged_token(task_id, 1)}
        )
        assert nothing.status_code == 404, nothing.text
        assert "of run run: this attempt can no longer end" in nothing.json()["detail"]
    # The result left out is null.
    other = await served.start(aw.awaits_an_answer, "j", id="api-ac-null")
    plain = await api.post(
        "/api/activities/complete", json={"task_token": await api_token(served, "api-ac-null")}
    )
    assert plain.status_code == 200, plain.text
    assert await other.result(timeout=20) == {"result": None}


async def test_fail_over_http_fails_the_activity_or_retries_it(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_an_answer, "k", id="api-ac-fail")
    first = await api_token(served, "api-ac-fail")
    retried = await api.post(
        "/api/activities/fail", json={"task_token": first, "message": "busy", "type": "Busy"}
    )
    assert retried.status_code == 200 and retried.json() == {"ok": True}, retried.text
    second = await api_token(served, "api-ac-fail", 2)  # (a new attempt, a new token)
    assert second != first
    body = {"task_token": second, "message": "declined", "type": "Declined", "non_retryable": True}
    failed = await api.post("/api/activities/fail", content=json.dumps(body))  # (no Content-Type)
    assert failed.status_code == 200, failed.text
    assert await handle.result(timeout=20) == {
        "failed": "Declined",
        "message": "declined",
        "attempt": 2,
    }
    again = await api.post("/api/activities/fail", json=body)
    assert again.status_code == 404 and "can no longer end" in again.json()["detail"]


async def test_heartbeat_and_report_cancellation_over_http(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_until_cancelled, "n", id="api-ac-beat")
    token = await api_token(served, "api-ac-beat")
    beat = await api.post(
        "/api/activities/heartbeat", json={"task_token": token, "details": {"rows": 7}}
    )
    assert beat.status_code == 200 and beat.json() == {"ok": True}, beat.text
    [pending] = (await api.get("/api/workflows/api-ac-beat")).json()["pending_activities"]
    assert pending["heartbeat_details"] == {"rows": 7}
    await handle.cancel()

    async def gave_up() -> bool:
        return (await handle.describe()).waiting_signals == ["finish"]

    await eventually(gave_up, "the workflow to cancel its activity")
    [pending] = (await api.get("/api/workflows/api-ac-beat")).json()["pending_activities"]
    assert pending["cancel_requested"] is True
    told = await api.post("/api/activities/heartbeat", json={"task_token": token})
    assert told.status_code == 409, told.text
    assert told.json()["detail"] == (
        f"activity 'ask_without_a_deadline' (1) of run {handle.run_id} was cancelled by its "
        "workflow: end it with report_cancellation()"
    )
    reported = await api.post("/api/activities/report-cancellation", json={"task_token": token})
    assert reported.status_code == 200 and reported.json() == {
        "ok": True,
        "stopped": "cancelled",
    }, reported.text

    async def ended() -> bool:
        return not (await handle.describe()).pending_activities

    await eventually(ended, "the cancelled attempt to end")
    for route in ("heartbeat", "report-cancellation"):
        late = await api.post(f"/api/activities/{route}", json={"task_token": token})
        assert late.status_code == 404 and "can no longer end" in late.json()["detail"], late.text
    await handle.signal("finish")
    assert await handle.result(timeout=20) == {"cancelled": True}


async def test_a_heartbeat_under_a_reset_is_a_409_and_the_report_hands_it_back(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_an_answer_for_ever, "r", id="api-ac-reset")
    token = await api_token(served, "api-ac-reset")
    reset = await api.post("/api/workflows/api-ac-reset/activities/1/reset", json={})
    assert reset.status_code == 200, reset.text
    told = await api.post(
        "/api/activities/heartbeat", json={"task_token": token, "details": {"rows": 8}}
    )
    assert told.status_code == 409, told.text
    assert told.json()["detail"] == (
        f"activity 'ask_without_a_deadline' (1) of run {handle.run_id} was reset by an "
        "operator: stop its work and end the attempt with report_cancellation() (not counted; "
        "the next attempt starts at once, as attempt 1)"
    )
    reported = await api.post("/api/activities/report-cancellation", json={"task_token": token})
    assert reported.status_code == 200 and reported.json() == {"ok": True, "stopped": "reset"}, (
        reported.text
    )
    again = await api_token(served, "api-ac-reset", 2, attempt=1)
    [pending] = (await api.get("/api/workflows/api-ac-reset")).json()["pending_activities"]
    assert (pending["attempt"], pending["reset_requested"]) == (1, False)
    assert pending["last_failure"]["type"] == "ActivityReset"
    done = await api.post("/api/activities/complete", json={"task_token": again, "result": "ok"})
    assert done.status_code == 200, done.text
    assert await handle.result(timeout=20) == {"result": "ok"}


async def test_settle_an_activity_by_id_over_http(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    failing = await served.start(aw.keeps_retrying, "f", id="api/by-id/fail")
    completing = await served.start(aw.keeps_retrying, "c", id="api/by-id/complete")
    for handle in (failing, completing):

        async def retried(handle: Any = handle) -> bool:
            pending = (await handle.describe()).pending_activities
            return bool(pending) and pending[0].attempt >= 2

        await eventually(retried, f"{handle.id}'s activity to be retried")
    failed = await api.post(
        "/api/workflows/api/by-id/fail/activities/1/fail",
        json={"message": "gave up", "type": "GaveUp"},
    )
    assert failed.status_code == 200 and failed.json() == {"ok": True}, failed.text
    outcome = await failing.result(timeout=20)
    assert (outcome["failed"], outcome["message"]) == ("GaveUp", "gave up")
    done = await api.post(
        f"/api/workflows/api/by-id/complete/activities/1/complete?run_id={completing.run_id}"
    )  # (no body: the result is null)
    assert done.status_code == 200, done.text
    assert await completing.result(timeout=20) == {"result": None}
    for route, says in [
        ("api/by-id/fail/activities/1/complete", "the run has ended (completed)"),
        ("nope/activities/1/complete", "activity 1 of workflow 'nope' (its latest run): no such"),
        ("api/by-id/fail/activities/1/complete?run_id=r-1", "(run r-1): no such run"),
    ]:
        missing = await api.post(f"/api/workflows/{route}", json={"result": 1})
        assert missing.status_code == 404, (route, missing.text)
        assert says in missing.json()["detail"], (route, missing.json())
    spec = (await api.get("/api/openapi.json")).json()
    for action in ("complete", "fail"):
        post = spec["paths"][f"/api/workflows/{{workflow_id}}/activities/{{activity_id}}/{action}"]
        assert {"200", "401", "403", "404", "422"} <= set(post["post"]["responses"]), action


async def test_by_id_bad_input_is_422_and_changes_nothing(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.keeps_retrying, "b", id="api-by-id-bad")

    async def retried() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].attempt >= 2

    await eventually(retried, "the activity to be retried")
    base = "/api/workflows/api-by-id-bad/activities"
    for route, body, says in [
        (f"{base}/0/complete", {}, "activity_id"),
        (f"{base}/x/complete", {}, "activity_id"),
        (f"{base}/{2**31}/fail", {"message": "m"}, "activity_id"),
        (f"{base}/1/complete", {"results": 1}, "body.results: Extra inputs"),
        (f"{base}/1/complete", [1], "body: Input should be a valid dictionary"),
        (f"{base}/1/fail", {}, "body.message: Field required"),
        (f"{base}/1/fail", {"message": "m", "non_retryable": True}, "Extra inputs"),
        (f"{base}/1/fail", {"message": "m", "type": ""}, "at least 1 character"),
        (f"{base}/1/complete?run_id=", {}, "run_id"),
    ]:
        refused = await api.post(route, json=body)
        assert refused.status_code == 422, (route, body, refused.text)
        reply = refused.json()
        assert says in str(reply.get("message", reply.get("detail"))), (route, body, reply)
    assert (await handle.describe()).status == "running"
    assert not [e for e in await handle.history() if e["type"] == "ActivityFailed"]
    await handle.terminate("done")


async def test_a_malformed_token_or_body_is_422_and_changes_nothing(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_an_answer, "l", id="api-ac-bad")
    token = await api_token(served, "api-ac-bad")
    before = (await handle.describe()).pending_activities
    tokens_422 = {
        "nope": "task_token: not a task token: 'nope' (a token is activity.info().task_token",
        "": "task_token: not a task token: ''",
        token[:-6]: "task_token: not a task token",
        forged_token(1, 2**40): f"task_token: not a task token: {forged_token(1, 2**40)!r}",
    }
    routes_422 = (
        ("complete", {"result": 1}),
        ("fail", {"message": "m"}),
        ("heartbeat", {"details": 1}),
        ("report-cancellation", {}),
    )
    for route, fields in routes_422:
        for bad, says in tokens_422.items():
            refused = await api.post(f"/api/activities/{route}", json={"task_token": bad, **fields})
            assert refused.status_code == 422, (route, bad, refused.text)
            detail = refused.json()["detail"]
            assert detail.startswith("task_token: not a task token: "), (route, bad, detail)
            assert says in detail, (route, bad, detail)
    bodies: list[tuple[str, Any, str]] = [
        ("complete", {"task_token": token, "results": 1}, "body.results: Extra inputs"),
        ("complete", {"task_token": 7}, "body.task_token: Input should be a valid string"),
        ("complete", {}, "body.task_token: Field required"),
        ("complete", None, "body: Input should be a valid dictionary"),
        ("complete", [token], "body: Input should be a valid dictionary"),
        ("complete", {"task_token": "x" * 2049}, "at most 2048 characters"),
        ("fail", {"task_token": token}, "body.message: Field required"),
        ("fail", {"task_token": token, "message": 1}, "body.message: Input should be a valid"),
        ("fail", {"task_token": token, "message": "m", "non_retryable": "yes"}, "valid boolean"),
        ("fail", {"task_token": token, "message": "m", "non_retryable": 1}, "valid boolean"),
        ("fail", {"task_token": token, "message": "m", "type": ""}, "at least 1 character"),
        ("fail", {"task_token": token, "message": "m", "result": 1}, "Extra inputs"),
        ("heartbeat", {"task_token": token, "detail": 1}, "body.detail: Extra inputs"),
        ("heartbeat", {}, "body.task_token: Field required"),
        ("report-cancellation", {"task_token": token, "reason": "x"}, "Extra inputs"),
        ("report-cancellation", None, "body: Input should be a valid dictionary"),
    ]
    for route, body, says in bodies:
        refused = await api.post(f"/api/activities/{route}", json=body)
        assert refused.status_code == 422, (route, body, refused.text)
        assert says in refused.json()["message"], (route, body, refused.json())
    not_json = await api.post("/api/activities/complete", content=b"{task_token: 1}")
    assert not_json.status_code == 422
    assert not_json.json()["message"].startswith("the request body is not valid JSON")
    assert (await handle.describe()).pending_activities == before  # (nothing changed)
    done = await api.post("/api/activities/complete", json={"task_token": token, "result": 3})
    assert done.status_code == 200, done.text
    assert await handle.result(timeout=20) == {"result": 3}


async def test_the_routes_need_the_admin_role_as_a_signal_does(served: perdure.Client) -> None:
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))

    def http(**headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers)

    handle = await served.start(aw.awaits_an_answer, "m", id="api-ac-auth")
    token = await api_token(served, "api-ac-auth")
    body = {"task_token": token, "message": "m"}
    routes = (
        "/api/activities/complete",
        "/api/activities/fail",
        "/api/activities/heartbeat",
        "/api/activities/report-cancellation",
        "/api/workflows/x/activities/1/complete",
        "/api/workflows/x/activities/1/fail",
        "/api/workflows/x/signals/go",
    )
    async with http() as anonymous:
        for route in routes:
            missing = await anonymous.post(route, json=body)
            assert missing.status_code == 401, (route, missing.text)
            assert missing.headers["www-authenticate"] == "Bearer"
    async with http(Authorization=f"Bearer {READ}") as reader:
        for route in routes:
            forbidden = await reader.post(route, json=body)
            assert forbidden.status_code == 403, (route, forbidden.text)
            assert "read-only" in forbidden.json()["detail"]
    async with http(Authorization=f"Bearer {ADMIN}") as admin:
        cross = await admin.post(routes[0], json=body, headers={"origin": "http://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["detail"]
        assert (await handle.describe()).pending_activities[0].awaiting_completion
        done = await admin.post(routes[0], json={"task_token": token, "result": "ok"})
        assert done.status_code == 200, done.text
    assert await handle.result(timeout=20) == {"result": "ok"}


# ---------------------------------------------------------------- the web UI


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """A browser, the open server's URL and the database, over a worker of
    async_workflows; skips the test without chromium, as the browser tests do."""
    import browser_support as bs  # (importing it skips without chromium)

    folder: Path = tmp_path_factory.mktemp("async-completion-ui")
    for browser in bs.launch():
        for stack in bs.serve(folder, [aw.__file__], ADMIN, READ):
            yield browser, stack.open_url, stack.db


def test_the_workflow_page_says_the_attempt_awaits_completion(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        client.client.poll_interval = 0.02
        client.start("awaits_an_answer", "n", id="ui-ac-timed")
        client.start("awaits_an_answer_for_ever", "o", id="ui-ac-forever")
        cancelled = client.start("awaits_until_cancelled", "c", id="ui-ac-cancelled")
        awaiting(client, "ui-ac-timed")
        awaiting(client, "ui-ac-forever")
        awaiting(client, "ui-ac-cancelled")
        cancelled.cancel()
        wait_for(
            lambda: cancelled.describe().waiting_signals == ["finish"],
            20,
            "the workflow to cancel its activity",
        )
        [token] = tokens(client, "ui-ac-timed")
        client.get_async_activity_handle(token).heartbeat({"pages": [1, 2], "of": 9})
        try:
            for page in bs.new_page(browser):
                page.goto(f"{url}#/workflows/ui-ac-timed")
                item = page.locator("#pending .pending-activity")
                expect(item).to_contain_text(
                    re.compile(
                        r"ref 1 · attempt 1 awaiting completion · lost at "
                        r"\d\d:\d\d:\d\d\.\d{3} \(in (59 m \d+ s|1 h 0 m)\)"
                    )
                )
                expect(item.locator(".heartbeat-details")).to_have_text(
                    'last heartbeat: {"pages":[1,2],"of":9}'
                )
                page.goto(f"{url}#/workflows/ui-ac-forever")
                item = page.locator("#pending .pending-activity")
                expect(item).to_have_text(  # (then the admin's buttons and its options)
                    re.compile(
                        r"ask_without_a_deadline ref 1 · attempt 1 awaiting completion"
                        r"complete…fail…pausereset…options…"
                        "retry every 50ms \u00d72 up to 5s, at most 3 attempts$"
                    )
                )
                page.goto(f"{url}#/workflows/ui-ac-cancelled")
                item = page.locator("#pending .pending-activity")
                expect(item.locator(".cancel-requested")).to_have_text(
                    "Cancel requested by its workflow: this attempt stops at its next heartbeat "
                    "(one that sends none runs on until it ends)."
                )
        finally:
            for ident in ("ui-ac-timed", "ui-ac-forever", "ui-ac-cancelled"):
                client.get_handle(ident).terminate("done")


def test_the_workflow_page_settles_an_activity_by_id(ui: tuple[Any, str, str]) -> None:
    # keeps_retrying's activity fails every 50 ms for ever: an admin ends it
    # from the page, by the run's id and the activity's (the run shown).
    import browser_support as bs
    from playwright.sync_api import Request, Route, expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        client.client.poll_interval = 0.02
        failing = client.start("keeps_retrying", "uf", id="ui-settle/fail")
        completing = client.start("keeps_retrying", "uc", id="ui-settle/complete")
        retried(client, "ui-settle/fail")
        retried(client, "ui-settle/complete")
        try:
            # A read-only viewer (the whoami of a read token) has no buttons.
            for page in bs.new_page(browser):

                def read_only(route: Route) -> None:
                    route.fulfill(json={"role": "read", "auth_required": True})

                page.route(re.compile(r".*/api/whoami$"), read_only)
                page.goto(f"{url}#/workflows/ui-settle%2Ffail")
                expect(page.locator("#token-button")).to_have_text("Token: read")
                item = page.locator("#pending .pending-activity")
                expect(item).to_contain_text("down_for_ever ref 1 · attempt")
                expect(item.locator("button")).to_have_count(0)

            posts: list[tuple[str, Any]] = []  # (what the page POSTs, after /api/)

            def posted(request: Request) -> None:
                if request.method == "POST":
                    posts.append((request.url.split("/api/", 1)[1], request.post_data_json))

            for page in bs.new_page(browser):
                page.on("request", posted)
                dialog, error = page.locator("#settle-dialog"), page.locator("#settle-error")
                item = page.locator("#pending .pending-activity")

                # Fail: ActivityError with the type given, not retried.
                page.goto(f"{url}#/workflows/ui-settle%2Ffail")
                expect(item).to_contain_text("down_for_ever ref 1 · attempt")
                item.locator("button.settle-fail").click()
                expect(dialog).to_be_visible()
                expect(page.locator("#settle-text")).to_have_text(
                    "End activity down_for_ever (ref 1) now with this error, not retried: the "
                    "workflow's await raises ActivityError."
                )
                expect(page.locator("#settle-result")).to_be_hidden()
                expect(page.locator("#settle-ok")).to_have_text("Fail activity")
                page.fill("#settle-message", "carrier gone")
                page.fill("#settle-type", "CarrierGone")
                page.click("#settle-ok")
                expect(page.locator("#toasts")).to_contain_text(
                    "Activity down_for_ever (ref 1) failed."
                )
                expect(dialog).to_be_hidden()
                outcome = failing.result(timeout=20)
                assert (outcome["failed"], outcome["message"]) == ("CarrierGone", "carrier gone")
                assert posts == [
                    (
                        f"workflows/ui-settle%2Ffail/activities/1/fail?run_id={failing.run_id}",
                        {"message": "carrier gone", "type": "CarrierGone"},
                    )
                ]
                expect(page.locator(".wf-title .badge")).to_have_text("completed")  # (refreshed)

                # Complete: invalid JSON is said in the dialog and sends nothing.
                page.goto(f"{url}#/workflows/ui-settle%2Fcomplete")
                expect(item).to_contain_text("down_for_ever ref 1 · attempt")
                item.locator("button.settle-complete").click()
                expect(page.locator("#settle-text")).to_have_text(
                    "End activity down_for_ever (ref 1) now with this result: the workflow's "
                    "await returns it. An attempt running on a worker runs on, and its own "
                    "result is refused."
                )
                expect(page.locator("#settle-message")).to_be_hidden()
                expect(page.locator("#settle-type")).to_be_hidden()
                expect(page.locator("#settle-result")).to_have_value("null")
                expect(page.locator("#settle-ok")).to_have_text("Complete activity")
                page.fill("#settle-result", "{x")
                page.click("#settle-ok")
                expect(error).to_contain_text("The result is not valid JSON: ")
                expect(error).to_contain_text('Strings need quotes: "yes".')
                expect(dialog).to_be_visible()
                described = completing.describe()
                assert described.status == "running", described.status
                assert [p.activity_id for p in described.pending_activities] == [1]
                assert len(posts) == 1  # (the fail's)
                page.fill("#settle-result", '"by hand"')
                page.click("#settle-ok")
                expect(page.locator("#toasts")).to_contain_text(
                    "Activity down_for_ever (ref 1) completed."
                )
                expect(dialog).to_be_hidden()
                assert completing.result(timeout=20) == {"result": "by hand"}
                assert posts[1:] == [
                    (
                        "workflows/ui-settle%2Fcomplete/activities/1/complete"
                        f"?run_id={completing.run_id}",
                        {"result": "by hand"},
                    )
                ]
        finally:
            for handle in (failing, completing):
                if handle.describe().status == "running":
                    handle.terminate("done")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (
            {"in_backlog": True, "ahead": 7},
            "In the backlog. 7 due before it on task queue “pool”; its workers are busy.",
        ),
        (
            {"waiting_for_worker": True, "ahead": 0},
            "No live worker serves it. Start a worker for task queue “pool” that registers",
        ),
        (
            {"held_by_limits": True, "ahead": 2},
            "Waiting for room. Task queue “pool” has limits on its activities (perdure queue "
            "show pool); 2 due before it.",
        ),
        (
            {"held_by_limits": True, "ahead": 2, "paused": True},
            "held: its task queue is pausedcomplete…fail…pausereset…options…retry every 50ms "
            "\u00d72 up to 5s, at most 3 attempts · task queue “pool”Its task queue is paused. "
            "Task queue "
            "“pool” has max_running 0: no attempt starts until its limit is raised on the "
            "queues page (or perdure queue limit).",
        ),
        (
            {"run": {"in_backlog": True, "ahead": 4}},
            "Its turn is in the backlog. 4 due before it on task queue “default”; its workers "
            "are busy.",
        ),
        (
            {"run": {"waiting_for_worker": True, "ahead": 0}},
            "No live worker serves this run. Start a worker for task queue “default” that "
            "registers awaits_an_answer_for_ever.",
        ),
    ],
)
def test_the_workflow_page_says_why_an_activity_waits(
    ui: tuple[Any, str, str], flags: dict[str, Any], says: str
) -> None:
    # The describe JSON as the server gives it, with the pending activity's
    # reason set (making workers busy on cue is not this test's business:
    # tests/e2e/test_waiting_reasons.py sets the flags for real).
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, db = ui
    run_flags = flags.get("run")
    flags = dict(flags)
    paused = flags.pop("paused", False)  # (its queue's limits say so: max_running 0)
    ident = f"ui-why-{next(iter(run_flags or flags))}{'-run' if run_flags else ''}"
    ident += "-paused" if paused else ""
    with perdure.SyncClient.connect(db) as client:
        client.client.poll_interval = 0.02
        client.start("awaits_an_answer_for_ever", "p", id=ident)
        awaiting(client, ident)

        def reasoned(route: Route) -> None:
            described = route.fetch().json()
            if run_flags:
                described.update(run_flags)
            else:
                described["pending_activities"][0].update(
                    running=False, awaiting_completion=False, task_queue="pool", **flags
                )
            route.fulfill(json=described)

        def pool(route: Route) -> None:  # (the queue the activity is said to wait on)
            limits = {"max_running": 0 if paused else 2, "max_starts": None, "per_seconds": None}
            route.fulfill(json={"task_queue": "pool", "limits": limits, "running": 0})

        try:
            for page in bs.new_page(browser):
                page.route(re.compile(rf".*/api/workflows/{ident}(\?.*)?$"), reasoned)
                page.route(re.compile(r".*/api/queues/pool$"), pool)
                page.goto(f"{url}#/workflows/{ident}")
                where = (
                    "#turn-in-backlog, #no-worker" if run_flags else "#pending .pending-activity"
                )
                expect(page.locator(where)).to_contain_text(says)
        finally:
            client.get_handle(ident).terminate("done")


@pytest.mark.usefixtures("worker")
def test_show_says_whether_a_live_worker_serves_a_waiting_turn(
    db: str, sync: perdure.SyncClient
) -> None:
    # A run on a queue no worker serves: its turn waits for a worker.
    handle = sync.start("awaits_an_answer", "w", id="cli-unserved", task_queue="empty-queue")
    wait_for(lambda: handle.describe().ahead is not None, 20, "the turn to wait a while")
    # A live worker of that queue (as the registry knows it) that takes
    # nothing now: the turn waits in the backlog instead.
    sync._runner.call(
        sync.client.store.register_worker(
            "busy-cli",
            host="elsewhere",
            pid=1,
            task_queue="empty-queue",
            workflows=["awaits_an_answer"],
            activities=[],
            lease_timeout=30.0,
        )
    )
    before = cli_all(("show", "cli-unserved", "--db", db))[0]
    assert "No live worker serves this run" not in before.stdout  # (registered meanwhile)
    assert "Its turn waits in task queue 'empty-queue''s backlog: 0 due before it" in " ".join(
        before.stdout.split()
    ), before.stdout
    described = json.loads(cli_all(("show", "cli-unserved", "--json", "--db", db))[0].stdout)
    assert (described["in_backlog"], described["ahead"]) == (True, 0)
    sync._runner.call(sync.client.store.unregister_worker("busy-cli"))
    after = cli_all(("show", "cli-unserved", "--db", db))[0]
    assert (
        "No live worker serves this run: start one for task queue 'empty-queue' that "
        "registers workflow 'awaits_an_answer'."
    ) in " ".join(after.stdout.split()), after.stdout
    handle.terminate("done")
