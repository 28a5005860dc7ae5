"""``perdure activity update-options`` by filter, through the real entry
point, with a real worker process, on SQLite and PostgreSQL: with
``-w``/``-a`` left out it changes the options of every pending activity
the filters match (``--activity-type``, and the run filters of ``perdure
list``). Without ``--yes`` it lists those and changes nothing; with it,
each one's options change (another type's are left alone) and it sums up;
``--json`` prints what matched and what was done; an activity whose new
options are refused is listed with its error (exit 5) while the others
change; a mix of the two forms, no option to change or one that cannot be
read is a usage error (exit 2) that changes nothing.

The activities are ``keeps_retrying``'s (``down_for_ever``, retried every
50 ms for ever) and ``awaits_an_answer_for_ever``'s
(``ask_without_a_deadline``, whose attempt awaits completion):
tests/surfaces/async_workflows.py. Each test names its runs by a prefix of
their ids (``--search``). How Client.batch_activities changes the options
is tested in tests/e2e/test_activity_batch.py, the one-activity form in
test_activity_options_surfaces.py; here, what the command line says and
does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import async_workflows as aw
import pytest
from surface_helpers import (
    AWAITING,
    RETRIED,
    Proc,
    cli_all,
    migrated_database,
    said,
    started_activities,
    sync_client,
    worker_serving,
)
from surface_helpers import first_activity as the_activity

import perdure
from perdure.client import PendingActivityInfo


def on(db: str, *args: str) -> tuple[str, ...]:
    """``perdure activity update-options ARGS --db DB``, for cli_all."""
    return ("activity", "update-options", *args, "--db", db)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_database(request, lambda: tmp_path_factory.mktemp("options-batch-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("options-batch-worker"))


def pending(sync: perdure.SyncClient, ident: str) -> PendingActivityInfo:
    [activity] = sync.get_handle(ident).describe().pending_activities
    return activity


def options(sync: perdure.SyncClient, ident: str) -> tuple[object, ...]:
    """The activity's options as ``describe()`` shows them."""
    a = pending(sync, ident)
    timeouts = (a.start_to_close_timeout, a.schedule_to_close_timeout, a.heartbeat_timeout)
    return (a.retry_policy, *timeouts, a.task_queue)


def ended(handles: dict[str, perdure.SyncWorkflowHandle[Any]]) -> None:
    for handle in handles.values():
        handle.terminate("test over")


@pytest.mark.usefixtures("worker")
def test_without_yes_it_lists_what_matches_and_changes_nothing(
    db: str, sync: perdure.SyncClient
) -> None:
    runs = {"od-1": RETRIED, "od-2": RETRIED, "od-x": AWAITING}
    handles = started_activities(sync, runs)
    before = {ident: options(sync, ident) for ident in runs}
    table, as_json, limited, none = cli_all(
        on(db, "--activity-type", "down_for_ever", "--search", "od-", "--start-to-close-timeout",
           "2m", "--retry-max-attempts", "0"),
        on(db, "--search", "od-", "--retry-backoff", "2", "--retry-max-interval", "1h", "--json"),
        on(db, "--search", "od-", "--heartbeat-timeout", "1m", "--limit", "1"),
        on(db, "--activity-type", "no_such_activity", "--task-queue", "elsewhere"),
    )  # fmt: skip
    assert table.returncode == 0, said(table)
    assert (
        "2 activities match: pending in the open runs that match (each workflow id's "
        "latest), newest run first." in table.stdout
    )
    rows = re.findall(
        r"^(od-\d) +│ 1 +│ down_for_ever +│ \d+ +│ (?:running|waiting to retry) *$",
        table.stdout,
        re.M,
    )
    assert rows == ["od-2", "od-1"], table.stdout  # (newest run first; not od-x's type)
    assert "Nothing was done. To update them, run this again with --yes." in table.stdout

    assert as_json.returncode == 0, said(as_json)
    found = json.loads(as_json.stdout)
    assert (found["action"], found["dry_run"]) == ("update_options", True)
    assert found["done"] == found["skipped"] == found["failed"] == []
    assert {(m["workflow_id"], m["activity_id"], m["activity_type"]) for m in found["matched"]} == {
        ("od-1", 1, "down_for_ever"),
        ("od-2", 1, "down_for_ever"),
        ("od-x", 1, "ask_without_a_deadline"),
    }
    row = next(m for m in found["matched"] if m["workflow_id"] == "od-x")
    assert row["run_id"] == handles["od-x"].run_id and row["awaiting_completion"] is True

    assert limited.returncode == 0, said(limited)
    assert "1 activity matches (--limit)" in limited.stdout
    assert re.search(r"^od-x +│ 1 +│ ask_without_a_deadline │ 1 +│ ", limited.stdout, re.M)
    assert none.returncode == 0 and "No activities match: nothing to update." in none.stdout
    assert {ident: options(sync, ident) for ident in runs} == before
    ended(handles)


def waits_an_hour(a: PendingActivityInfo) -> bool:
    """No attempt runs: its retry waits out the new policy's hour."""
    if a.running or a.next_attempt_at is None:
        return False
    return a.next_attempt_at.timestamp() - a.attempts[-1]["ended_at"] > 1800


@pytest.mark.usefixtures("worker")
def test_yes_changes_that_type_only_and_json_says_what_was_done(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started_activities(sync, {"oy-1": RETRIED, "oy-2": RETRIED, "oy-x": AWAITING})
    other = options(sync, "oy-x")
    (done,) = cli_all(
        on(db, "--activity-type", "down_for_ever", "--search", "oy-", "--start-to-close-timeout",
           "2m", "--retry-initial-interval", "1h", "--retry-max-interval", "2h",
           "--retry-max-attempts", "100000", "--yes"),
    )  # fmt: skip
    assert done.returncode == 0, said(done)
    assert (
        done.stdout.strip()
        == "Updated the options of 2 of 2 activities matched: 0 skipped, 0 failed."
    )
    hourly = perdure.RetryPolicy(
        initial_interval=timedelta(hours=1),
        backoff=1.0,
        max_interval=timedelta(hours=2),
        max_attempts=100_000,
    )
    for ident in ("oy-1", "oy-2"):
        changed = the_activity(sync, ident, waits_an_hour, "waiting out its new backoff")
        assert (changed.retry_policy, changed.start_to_close_timeout) == (
            hourly,
            timedelta(minutes=2),
        )
    assert options(sync, "oy-x") == other  # (another type: left alone)

    # Any type, as JSON: only the option given changes, the others stay.
    (every,) = cli_all(on(db, "--search", "oy-", "--retry-max-attempts", "0", "--yes", "--json"))
    assert every.returncode == 0, said(every)
    result = json.loads(every.stdout)
    assert (result["action"], result["dry_run"]) == ("update_options", False)
    assert sorted(result["done"], key=lambda d: d["workflow_id"]) == [
        {"workflow_id": ident, "activity_id": 1} for ident in ("oy-1", "oy-2", "oy-x")
    ]
    assert result["skipped"] == result["failed"] == []
    assert {m["workflow_id"]: m["run_id"] for m in result["matched"]} == {
        ident: handle.run_id for ident, handle in handles.items()
    }
    for ident in ("oy-1", "oy-2", "oy-x"):
        now = pending(sync, ident)
        assert now.retry_policy is not None and now.retry_policy.max_attempts is None, ident
    now = pending(sync, "oy-1")
    assert (
        now.retry_policy is not None
        and now.retry_policy.initial_interval == hourly.initial_interval
    )
    assert now.start_to_close_timeout == timedelta(minutes=2)
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_an_activity_whose_new_options_are_refused_is_listed_and_exit_5(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started_activities(sync, {"of-r": RETRIED, "of-a": AWAITING})
    # Paused, no attempt runs: a max_attempts of 1 allows it none after those
    # it made. of-a's first attempt awaits completion: 1 lets that one end.
    sync.get_async_activity_handle(workflow_id="of-r", activity_id=1).pause()
    held = the_activity(sync, "of-r", lambda a: a.paused and not a.running, "paused, none running")
    (refused,) = cli_all(on(db, "--search", "of-", "--retry-max-attempts", "1", "--yes"))
    assert refused.returncode == 5, said(refused)
    assert (
        "Updated the options of 1 of 2 activities matched: 0 skipped, 1 failed." in refused.stdout
    )
    assert re.search(
        r"^Failed:\n  of-r activity 1: ValueError: .*max_attempts 1 would allow no more",
        refused.stdout,
        re.M,
    ), refused.stdout
    assert "error: 1 activity could not be updated (listed above)" in said(refused)
    kept = pending(sync, "of-r")
    assert (kept.retry_policy, kept.paused) == (held.retry_policy, True)
    changed = pending(sync, "of-a")
    assert changed.retry_policy is not None and changed.retry_policy.max_attempts == 1
    assert changed.awaiting_completion
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_usage_errors_exit_2_and_change_nothing(db: str, sync: perdure.SyncClient) -> None:
    handles = {"ou-1": sync.start(RETRIED, "ou-1", id="ou-1")}
    the_activity(sync, "ou-1", lambda a: True, "pending")
    before = options(sync, "ou-1")
    both = "give -w ID -a N or filters, not both"
    nothing = "give at least one option to change: --start-to-close-timeout,"
    change = ("--retry-backoff", "2")
    before_any_db: dict[tuple[str, ...], str] = {
        ("--activity-type", "down_for_ever", "--search", "ou-", "--yes"): nothing,
        ("--search", "ou-", "--limit", "3"): nothing,
        ("-w", "ou-1", "-a", "1"): nothing,  # (the one-activity form too)
        ("--search", "ou-", "--start-to-close-timeout", "-5s", "--yes"): (
            "Invalid value for '--start-to-close-timeout': '-5s' is not a duration"
        ),
        ("--search", "ou-", "--heartbeat-timeout", "0s"): (
            "'--heartbeat-timeout': '0s': must be more than 0"
        ),
        ("--search", "ou-", "--retry-backoff", "0.5", "--yes"): (
            "'--retry-backoff': retry_backoff must be a finite number >= 1.0, not 0.5"
        ),
        ("--search", "ou-", "--task-queue", ""): "task_queue must be a non-empty string",
        ("--search", "ou-", "--retry-max-attempts", "-1"): "'--retry-max-attempts'",
        change: (
            "Missing option '--workflow-id' / '-w'. Name one activity (perdure activity "
            "update-options -w ID -a N), or give filters (--activity-type, --type, --since, "
            "--until, --search, --attr, --retrying, --build-id) to update the options of every "
            "pending "
            "activity they match"
        ),
        ("-w", "ou-1", "--activity-type", "down_for_ever", *change): (
            f"{both} (--activity-type go with filters)"
        ),
        ("-w", "ou-1", "-a", "1", "--search", "ou-", "--yes", *change): (
            f"{both} (--search, --yes go with filters)"
        ),
        ("-a", "1", "--json", *change): f"{both} (--json go with filters)",
        ("--search", "ou-", "-r", "r-1", *change): (
            "--run-id is for one activity, not with filters"
        ),
        ("--search", "ou-", "--limit", "0", *change): "--limit",
        ("--search", "ou-", "--attr", "team", *change): "--attr takes NAME=VALUE",
    }
    refused = {  # (by the Client, once connected)
        ("--activity-type", "x" * 2001, "--yes", *change): "activity_type must be at most",
    }
    # Given a database that is not there: a usage error exits 2 before opening one.
    missing = f"sqlite:///{'/nowhere' * 3}/perdure.db"
    cases = [
        *((args, message, missing) for args, message in before_any_db.items()),
        *((args, message, db) for args, message in refused.items()),
    ]
    results = cli_all(*(on(url, *args) for args, _, url in cases))
    for (args, message, _), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, said(done))
        assert message in said(done), (args, said(done))
    assert options(sync, "ou-1") == before
    ended(handles)
