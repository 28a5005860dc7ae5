"""``perdure activity pause`` and ``unpause`` by filter, through the real
entry point, with a real worker process, on SQLite and PostgreSQL: with
``-w``/``-a`` left out they name every pending activity the filters match
(``--activity-type``, and the run filters of ``perdure list``). Without
``--yes`` they list those and change nothing; with it they act on exactly
those (another type's activity is left alone) and sum up; ``--json`` prints
what matched and what was done; an activity its action fails on is listed
with its error (exit 5); a mix of the two forms, or neither, is a usage
error (exit 2) that changes nothing.

The activities are ``keeps_retrying``'s (``down_for_ever``, retried every
50 ms for ever) and ``awaits_an_answer_for_ever``'s (``ask_without_a_deadline``,
whose attempt awaits completion): tests/surfaces/async_workflows.py. Each
test names its runs by a prefix of their ids (``--search``). How
Client.batch_activities chooses and acts is tested in
tests/e2e/test_activity_batch.py; here, what the command line says and does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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


def on(db: str, *args: str) -> tuple[str, ...]:
    """``perdure activity ARGS --db DB``, for cli_all."""
    return ("activity", *args, "--db", db)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_database(request, lambda: tmp_path_factory.mktemp("activity-batch-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("activity-batch-worker"))


def paused(sync: perdure.SyncClient, ident: str) -> bool:
    [pending] = sync.get_handle(ident).describe().pending_activities
    return pending.paused


def ended(handles: dict[str, perdure.SyncWorkflowHandle[Any]]) -> None:
    for handle in handles.values():
        handle.terminate("test over")


@pytest.mark.usefixtures("worker")
def test_without_yes_it_lists_what_matches_and_changes_nothing(
    db: str, sync: perdure.SyncClient
) -> None:
    runs = {f"al-{n:02}": AWAITING for n in range(1, 23)} | {"al-r": RETRIED}
    handles = started_activities(sync, runs)
    table, as_json, limited, other, none = cli_all(
        on(db, "pause", "--activity-type", "ask_without_a_deadline", "--search", "al-"),
        on(db, "pause", "--search", "al-", "--json"),
        on(db, "pause", "--activity-type", "down_for_ever", "--search", "al-", "--limit", "1"),
        on(db, "unpause", "--search", "al-", "--reset-attempts"),
        on(db, "pause", "--activity-type", "no_such_activity"),
    )
    assert table.returncode == 0, said(table)
    assert (
        "22 activities match: pending in the open runs that match (each workflow id's "
        "latest), newest run first." in table.stdout
    )
    assert re.search(r"^WORKFLOW ID +┃ ACTIVITY ┃ TYPE +┃ ATTEMPT ┃ STATE", table.stdout, re.M)
    rows = re.findall(
        r"^(al-\d+) +│ 1 +│ ask_without_a_deadline │ 1 +│ awaiting completion *$",
        table.stdout,
        re.M,
    )
    assert rows == [f"al-{n:02}" for n in range(22, 2, -1)]  # the first 20, newest run first
    assert "… and 2 more (--json lists them all)" in table.stdout
    assert "Nothing was done. To pause them, run this again with --yes." in table.stdout

    found = json.loads(as_json.stdout)
    assert (found["action"], found["dry_run"]) == ("pause", True)
    assert found["done"] == found["skipped"] == found["failed"] == []
    assert len(found["matched"]) == 23  # every type, every row
    assert {(m["workflow_id"], m["activity_id"], m["activity_type"]) for m in found["matched"]} == {
        *((ident, 1, "ask_without_a_deadline") for ident in runs if ident != "al-r"),
        ("al-r", 1, "down_for_ever"),
    }
    row = next(m for m in found["matched"] if m["workflow_id"] == "al-r")
    assert row["run_id"] == handles["al-r"].run_id and row["paused"] is False

    assert limited.returncode == 0, said(limited)
    assert "1 activity matches (--limit)" in limited.stdout
    assert re.search(r"^al-r +│ 1 +│ down_for_ever +│ \d+ +│ ", limited.stdout, re.M)
    assert other.returncode == 0 and "No activities match: nothing to unpause." in other.stdout
    assert none.returncode == 0 and "No activities match: nothing to pause." in none.stdout
    assert not any(paused(sync, ident) for ident in runs)
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_yes_pauses_that_type_only_then_unpause_counts_attempts_from_1(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started_activities(sync, {"ay-1": RETRIED, "ay-2": RETRIED, "ay-x": AWAITING})
    (done,) = cli_all(
        on(db, "pause", "--activity-type", "down_for_ever", "--search", "ay-", "--yes")
    )
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == "Paused 2 of 2 activities matched: 0 skipped, 0 failed."
    assert paused(sync, "ay-1") and paused(sync, "ay-2")
    assert not paused(sync, "ay-x")  # (another type: left alone)
    for ident in ("ay-1", "ay-2"):  # (their attempts end, and are not retried)
        the_activity(sync, ident, lambda a: a.paused and not a.running, "paused, none running")

    # The unpause takes the paused ones only: the other type's is not paused.
    (back,) = cli_all(on(db, "unpause", "--search", "ay-", "--reset-attempts", "--yes"))
    assert back.returncode == 0, said(back)
    assert back.stdout.strip() == "Unpaused 2 of 2 activities matched: 0 skipped, 0 failed."
    for ident in ("ay-1", "ay-2"):
        again = the_activity(
            sync,
            ident,
            lambda a: [r["attempt"] for r in a.attempts].count(1) == 2,
            "retried from attempt 1",
        )
        assert not again.paused
    (nothing,) = cli_all(on(db, "unpause", "--search", "ay-", "--yes"))
    assert nothing.stdout.strip() == "No activities match: nothing to unpause."
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_yes_with_json_says_what_was_done(db: str, sync: perdure.SyncClient) -> None:
    handles = started_activities(sync, {"aj-1": RETRIED, "aj-2": AWAITING})
    (done,) = cli_all(on(db, "pause", "--search", "aj-", "--yes", "--json"))
    assert done.returncode == 0, said(done)
    result = json.loads(done.stdout)
    assert (result["action"], result["dry_run"]) == ("pause", False)
    assert sorted(result["done"], key=lambda d: d["workflow_id"]) == [
        {"workflow_id": "aj-1", "activity_id": 1},
        {"workflow_id": "aj-2", "activity_id": 1},
    ]
    assert result["skipped"] == result["failed"] == []
    by_id = {m["workflow_id"]: m for m in result["matched"]}
    assert by_id["aj-1"]["run_id"] == handles["aj-1"].run_id
    assert by_id["aj-2"]["activity_type"] == "ask_without_a_deadline"
    assert by_id["aj-2"]["awaiting_completion"] is True
    assert paused(sync, "aj-1") and paused(sync, "aj-2")
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_build_id_names_the_activities_of_the_runs_pinned_to_a_build(
    db: str, sync: perdure.SyncClient
) -> None:
    """--build-id alone names activities: those of the open runs pinned to
    that build (pinned by hand: activities run on any worker of their queue)."""
    handles = started_activities(sync, {"ab-1": RETRIED, "ab-2": RETRIED})
    handles["ab-1"].set_build_id("bad-1")
    look, done = cli_all(
        on(db, "pause", "--build-id", "bad-1", "--json"),
        on(db, "unpause", "--build-id", "bad-1", "--yes"),  # (nothing paused yet)
    )
    assert look.returncode == 0, said(look)
    found = json.loads(look.stdout)
    assert [(m["workflow_id"], m["activity_id"]) for m in found["matched"]] == [("ab-1", 1)]
    assert done.stdout.strip() == "No activities match: nothing to unpause."
    (paused_one,) = cli_all(on(db, "pause", "--build-id", "bad-1", "--yes"))
    assert paused_one.returncode == 0, said(paused_one)
    assert paused_one.stdout.strip() == "Paused 1 of 1 activity matched: 0 skipped, 0 failed."
    assert paused(sync, "ab-1") and not paused(sync, "ab-2")
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_an_activity_its_action_fails_on_is_listed_and_exit_5(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = started_activities(sync, {"af-r": RETRIED, "af-a": AWAITING})
    (done,) = cli_all(on(db, "pause", "--search", "af-", "--yes"))
    assert done.returncode == 0, said(done)
    the_activity(sync, "af-r", lambda a: a.paused and not a.running, "paused, none running")
    # af-a's attempt awaits completion: its attempts cannot be counted from 1 again.
    (refused,) = cli_all(on(db, "unpause", "--search", "af-", "--reset-attempts", "--yes"))
    assert refused.returncode == 5, said(refused)
    assert "Unpaused 1 of 2 activities matched: 0 skipped, 1 failed." in refused.stdout
    assert re.search(
        r"^Failed:\n  af-a activity 1: PerdureError: activity 1 of workflow 'af-a' .*attempt 1 "
        r"awaits completion, so its attempts cannot be counted from 1 again",
        refused.stdout,
        re.M,
    ), refused.stdout
    assert "error: 1 activity could not be unpaused (listed above)" in said(refused)
    assert paused(sync, "af-a") and not paused(sync, "af-r")
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_usage_errors_exit_2_and_change_nothing(db: str, sync: perdure.SyncClient) -> None:
    handles = {"au-1": sync.start(RETRIED, "au-1", id="au-1")}
    the_activity(sync, "au-1", lambda a: True, "pending")
    neither = "Missing option '--workflow-id' / '-w'. Name one activity"
    both = "give -w ID -a N or filters, not both"
    before_any_db: dict[tuple[str, ...], str] = {
        ("pause",): f"{neither} (perdure activity pause -w ID -a N), or give filters",
        ("unpause", "--yes", "--reset-attempts"): neither,
        ("pause", "--activity-type", "", "--search", "", "--limit", "3"): neither,
        ("pause", "-r", "r-1"): neither,
        ("pause", "-a", "1"): "Missing option '--workflow-id' / '-w'. By id, give both",
        ("unpause", "-w", "au-1", "--reset-attempts"): "Missing option '--activity-id' / '-a'.",
        ("pause", "-w", "au-1", "--activity-type", "down_for_ever"): (
            f"{both} (--activity-type go with filters)"
        ),
        ("unpause", "-w", "au-1", "-a", "1", "--search", "au-", "--yes"): (
            f"{both} (--search, --yes go with filters)"
        ),
        ("pause", "-w", "au-1", "-a", "1", "--json"): f"{both} (--json go with filters)",
        ("pause", "--search", "au-", "-r", "r-1", "--yes"): (
            "--run-id is for one activity, not with filters"
        ),
        ("pause", "--search", "au-", "--status", "running"): "No such option: --status",
        ("pause", "--search", "au-", "--limit", "0"): "--limit",
        ("pause", "--search", "au-", "--since", "1h", "--until", "2h"): "is after --until",
        ("pause", "--search", "au-", "--attr", "team", "--yes"): "--attr takes NAME=VALUE",
        ("pause", "-w", "au-1", "-a", "1", "--build-id", "b-1"): (
            f"{both} (--build-id go with filters)"
        ),
        ("reset", "--build-id", "x" * 201): "Invalid value for '--build-id': a build id must be",
    }
    refused = {  # (by the Client, once connected)
        ("pause", "--activity-type", "x" * 2001, "--yes"): "activity_type must be at most",
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
    assert not paused(sync, "au-1")
    ended(handles)


@pytest.mark.usefixtures("worker")
def test_the_one_activity_form_is_as_it_was(db: str, sync: perdure.SyncClient) -> None:
    handles = started_activities(sync, {"ao-1": RETRIED})
    (one,) = cli_all(on(db, "pause", "-w", "ao-1", "-a", "1"))
    assert one.returncode == 0, said(one)
    assert one.stdout.startswith("Paused activity 1 of workflow 'ao-1': no attempt starts")
    assert paused(sync, "ao-1")
    ended(handles)
