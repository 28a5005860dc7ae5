"""``perdure activity reset`` through the real entry point, with a real
worker process, on SQLite and PostgreSQL: by id (``-w ID -a N``) an
activity waiting out an hour's backoff runs again at once, as attempt 1;
``--keep-paused`` keeps a paused one paused, its count reset; an attempt
awaiting completion runs on, ``perdure show`` says a reset is requested,
and its failure is retried at once as attempt 1; ``--clear-heartbeat-details``
drops what it reported. With ``-w``/``-a`` left out, the batch form, as
``pause`` and ``unpause`` have it (``--activity-type``, the run filters,
``--yes``, ``--json``), paused activities included. Usage errors exit 2, an
activity that is not pending 3.

The workflows are tests/surfaces/async_workflows.py's, through the module
fixtures (a database of each backend, a worker) and helpers of
test_activity_batch_cli.py. What a reset does to the activity, state by
state, is tested in tests/e2e/test_activity_reset.py; here, what the
command line says and does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import test_activity_batch_cli as batch_cli
from surface_helpers import AWAITING, RETRIED, cli_all, said
from surface_helpers import first_activity as the_activity
from surface_helpers import started_activities as started
from test_activity_batch_cli import ended, on, paused

import perdure
from perdure.cli._activity_options import reset_ends
from perdure.cli._activity_retries import _reset_then
from perdure.cli._activity_target import Target
from perdure.client import PendingActivityInfo

# The batch form's module fixtures: a database of each backend, a client, a worker.
db, sync, worker = batch_cli.db, batch_cli.sync, batch_cli.worker
pytestmark = pytest.mark.usefixtures("worker")


def backing_off(a: PendingActivityInfo) -> bool:
    """Its last attempt failed, and the next is due in more than half an hour."""
    later = datetime.now(UTC) + timedelta(minutes=30)
    return not a.running and a.next_attempt_at is not None and a.next_attempt_at > later


def held(sync: perdure.SyncClient, ident: str) -> PendingActivityInfo:
    """Pause the run's activity, and wait until no attempt of it runs."""
    sync.get_async_activity_handle(workflow_id=ident, activity_id=1).pause()
    return the_activity(sync, ident, lambda a: a.paused and not a.running, "paused")


def test_an_activity_waiting_out_an_hour_runs_now_as_attempt_1(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started(sync, {"rw-1": RETRIED})
    the_activity(sync, "rw-1", lambda a: a.attempt >= 2, "retried")
    by_id = sync.get_async_activity_handle(workflow_id="rw-1", activity_id=1)
    hour = timedelta(hours=1)
    by_id.update_options(retry_initial_interval=hour, retry_max_interval=hour)
    before = the_activity(sync, "rw-1", backing_off, "an hour's backoff")

    (done,) = cli_all(on(db, "reset", "-w", "rw-1", "-a", "1"))
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == (
        "Reset activity 1 of workflow 'rw-1': attempts count from 1 again; its next attempt "
        "is due now"
    )
    # Attempt 1 ran at once, failed, and waits out the hour again.
    after = the_activity(
        sync,
        "rw-1",
        lambda a: backing_off(a) and len(a.attempts) == len(before.attempts) + 1,
        "attempt 1 run, and failed",
    )
    assert before.attempt >= 2 and (after.attempt, after.attempts[-1]["attempt"]) == (1, 1)
    ended(handles)


def test_keep_paused_resets_the_count_and_keeps_it_paused(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started(sync, {"rp-1": RETRIED})
    before = held(sync, "rp-1")

    (done,) = cli_all(on(db, "reset", "-w", "rp-1", "-a", "1", "--keep-paused"))
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == (
        "Reset activity 1 of workflow 'rp-1': attempts count from 1 again; kept paused, it "
        "waits for `perdure activity unpause -w rp-1 -a 1`"
    )
    [now] = handles["rp-1"].describe().pending_activities
    assert before.attempt >= 1
    assert (now.paused, now.attempt, now.next_attempt_at, now.reset_requested) == (
        True,
        0,
        None,
        False,
    )
    (shown,) = cli_all(("show", "rp-1", "--db", db))
    assert "(ref 1): paused " in said(shown), shown.stdout  # (not "attempt N failed, paused")

    # The fresh count starts with the unpause.
    sync.get_async_activity_handle(workflow_id="rp-1", activity_id=1).unpause()
    again = the_activity(
        sync, "rp-1", lambda a: len(a.attempts) > len(before.attempts), "run once unpaused"
    )
    assert again.attempts[len(before.attempts)]["attempt"] == 1
    ended(handles)


def test_what_it_says_of_a_running_attempt_under_a_reset(sync: perdure.SyncClient) -> None:
    """A running attempt under a reset stops at its next heartbeat, within
    milliseconds of the reset if it heartbeats: what the command and ``perdure
    show`` say of one is checked on an awaiting attempt's description, made
    running (how the worker stops it: tests/e2e/test_activity_reset.py)."""
    started(sync, {"rt-1": AWAITING})
    sync.get_async_activity_handle(workflow_id="rt-1", activity_id=1).reset()
    awaiting = the_activity(sync, "rt-1", lambda a: a.reset_requested, "the reset requested")
    running = dataclasses.replace(awaiting, awaiting_completion=False, running=True)
    then = (
        "stops at its next heartbeat (if it sends none, it runs on until it fails or is "
        "lost); then the next starts at once, as attempt 1"
    )
    where = Target(workflow_id="rt-1", activity_id=1)
    assert _reset_then(where, running) == f"attempt 1 (running) {then}"
    assert reset_ends(running) + " starts at once, as attempt 1" == then
    assert reset_ends(awaiting).startswith(
        "stops at its next heartbeat, once its completer reports the cancellation"
    )


def test_what_it_says_of_an_attempt_awaiting_completion_under_a_reset(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started(sync, {"rr-1": AWAITING, "rr-p": AWAITING})
    sync.get_async_activity_handle(workflow_id="rr-1", activity_id=1).heartbeat({"page": 4})
    sync.get_async_activity_handle(workflow_id="rr-p", activity_id=1).pause()  # (it runs on)

    done, kept = cli_all(
        on(db, "reset", "-w", "rr-1", "-a", "1", "--clear-heartbeat-details"),
        on(db, "reset", "-w", "rr-p", "-a", "1", "--keep-paused"),
    )
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == (
        "Reset activity 1 of workflow 'rr-1': attempt 1 (awaiting completion) stops at its next "
        "heartbeat, once its completer reports the cancellation (if it sends none, it runs on "
        "until it fails or is lost); then the next starts at once, as attempt 1; its heartbeat "
        "details dropped"
    )
    assert kept.returncode == 0, said(kept)
    assert kept.stdout.strip() == (
        "Reset activity 1 of workflow 'rr-p': attempt 1 (awaiting completion) stops at its next "
        "heartbeat, once its completer reports the cancellation (if it sends none, it runs on "
        "until it fails or is lost); then the next is attempt 1, once `perdure activity unpause "
        "-w rr-p -a 1` lets it start"
    )
    shown, shown_json, shown_kept = cli_all(
        ("show", "rr-1", "--db", db),
        ("show", "rr-1", "--json", "--db", db),
        ("show", "rr-p", "--db", db),
    )
    words = said(shown)
    assert "(ref 1): attempt 1 awaiting completion by its task token" in words, shown.stdout
    assert (
        "reset requested: this attempt stops at its next heartbeat, once its completer reports "
        "the cancellation (if it sends none, it runs on until it fails or is lost); then the "
        "next starts at once, as attempt 1"
    ) in words, shown.stdout
    assert "last heartbeat" not in words
    assert (
        "reset requested: this attempt stops at its next heartbeat, once its completer reports "
        "the cancellation (if it sends none, it runs on until it fails or is lost); then the "
        "next starts as attempt 1, once unpaused"
    ) in said(shown_kept), shown_kept.stdout
    [described] = json.loads(shown_json.stdout)["pending_activities"]
    assert (described["reset_requested"], described["heartbeat_details"]) == (True, None)

    # Its failure is retried at once, counted as attempt 1 (not 2).
    [token] = [e.value for e in handles["rr-1"].stream_page("token").entries]
    (failed,) = cli_all(("activity", "fail", token, "-m", "still down", "--db", db))
    assert failed.returncode == 0, said(failed)
    again = the_activity(
        sync, "rr-1", lambda a: a.awaiting_completion and a.attempts, "attempted again"
    )
    assert (again.attempt, again.reset_requested) == (1, False)
    (shown,) = cli_all(("show", "rr-1", "--db", db))
    assert "reset requested" not in said(shown)
    ended(handles)


def test_without_yes_the_batch_form_lists_what_matches_and_resets_nothing(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started(sync, {"rl-r": RETRIED, "rl-p": RETRIED, "rl-a": AWAITING})
    before = held(sync, "rl-p")

    table, as_json = cli_all(
        on(db, "reset", "--activity-type", "down_for_ever", "--search", "rl-", "--keep-paused"),
        on(db, "reset", "--search", "rl-", "--json"),
    )
    assert table.returncode == 0, said(table)
    assert "2 activities match: pending in the open runs that match" in table.stdout
    assert re.search(r"^rl-p +│ 1 +│ down_for_ever │ \d+ +│ paused *$", table.stdout, re.M)
    assert re.search(r"^rl-r +│ 1 +│ down_for_ever │ ", table.stdout, re.M)
    assert "rl-a" not in table.stdout  # (another type)
    assert "Nothing was done. To reset them, run this again with --yes." in table.stdout

    found = json.loads(as_json.stdout)
    assert (found["action"], found["dry_run"], found["done"]) == ("reset", True, [])
    assert {m["workflow_id"] for m in found["matched"]} == {"rl-r", "rl-p", "rl-a"}  # (paused too)
    [still] = handles["rl-p"].describe().pending_activities
    assert (still.paused, still.attempt) == (True, before.attempt)  # (not reset)
    [waiting] = handles["rl-a"].describe().pending_activities
    assert not waiting.reset_requested
    ended(handles)


def test_yes_resets_each_activity_that_matches(db: str, sync: perdure.SyncClient) -> None:
    handles = started(sync, {"ry-r": RETRIED, "ry-p": RETRIED, "ry-a": AWAITING})
    before = held(sync, "ry-p")

    only = ("--activity-type", "down_for_ever", "--search", "ry-")
    (done,) = cli_all(on(db, "reset", *only, "--keep-paused", "--yes"))
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == "Reset 2 of 2 activities matched: 0 skipped, 0 failed."
    [now] = handles["ry-p"].describe().pending_activities
    assert before.attempt >= 1 and (now.paused, now.attempt) == (True, 0)
    retried = the_activity(
        sync, "ry-r", lambda a: [r["attempt"] for r in a.attempts].count(1) == 2, "from 1"
    )
    assert not retried.paused
    [untouched] = handles["ry-a"].describe().pending_activities
    assert not untouched.reset_requested  # (another type)

    other = ("--activity-type", "ask_without_a_deadline", "--search", "ry-")
    (as_json,) = cli_all(on(db, "reset", *other, "--yes", "--json"))
    assert as_json.returncode == 0, said(as_json)
    result = json.loads(as_json.stdout)
    assert (result["action"], result["dry_run"]) == ("reset", False)
    assert result["done"] == [{"workflow_id": "ry-a", "activity_id": 1}]
    assert result["skipped"] == result["failed"] == []
    [requested] = handles["ry-a"].describe().pending_activities
    assert requested.reset_requested and requested.awaiting_completion
    ended(handles)


def test_usage_errors_exit_2_and_what_is_not_pending_exits_3(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started(sync, {"ru-1": RETRIED})
    neither = "Missing option '--workflow-id' / '-w'. Name one activity"
    both = "give -w ID -a N or filters, not both"
    usage: dict[tuple[str, ...], str] = {
        ("reset",): f"{neither} (perdure activity reset -w ID -a N), or give filters",
        ("reset", "--keep-paused", "--clear-heartbeat-details"): neither,
        ("reset", "-w", "ru-1"): "Missing option '--activity-id' / '-a'.",
        ("reset", "-w", "", "-a", "1"): "must not be empty",
        ("reset", "-w", "ru-1", "-a", "0"): "--activity-id",
        ("reset", "-w", "ru-1", "-a", "1", "--yes"): f"{both} (--yes go with filters)",
        ("reset", "--search", "ru-", "-r", "r-1"): "--run-id is for one activity",
    }
    # A usage error exits 2 before a database is opened: this one is not there.
    missing = f"sqlite:///{'/nowhere' * 3}/perdure.db"
    results = cli_all(*(on(missing, *args) for args in usage))
    for (args, message), done in zip(usage.items(), results, strict=True):
        assert done.returncode == 2, (args, said(done))
        assert message in said(done), (args, said(done))

    not_pending, no_run = cli_all(
        on(db, "reset", "-w", "ru-1", "-a", "7"), on(db, "reset", "-w", "ru-none", "-a", "1")
    )
    assert not_pending.returncode == 3, said(not_pending)
    assert "activity 7 of workflow 'ru-1' (its latest run) is not pending" in said(not_pending)
    assert no_run.returncode == 3, said(no_run)
    assert "activity 1 of workflow 'ru-none' (its latest run): no such run" in said(no_run)
    assert not paused(sync, "ru-1")
    ended(handles)
