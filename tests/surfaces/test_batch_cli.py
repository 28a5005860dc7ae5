"""``perdure cancel``, ``terminate`` and ``reset`` by filter, through the real
entry point (``python -m perdure``), on SQLite, with a real worker process:
without ``--yes`` they list what matches and do nothing; with it they act
on exactly those runs (other types, other values, closed runs untouched),
``--limit`` takes the newest, a run whose action fails is listed with its
error (exit 5), and a mix of the two forms, or neither, is a usage error
(exit 2) that does nothing.

(A run that ends between the choosing and the acting is ``skipped``: that
is arranged in process, in test_batch_api.py.) Set-up and waiting go through
an in-process SyncClient; independent commands run side by side (``cli_all``).
The commands add no SQL of their own: Client.batch is tested on both
databases in tests/e2e/test_batch.py, and the HTTP API's batches in
test_batch_api.py (on both); here one database keeps the suite short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import batch_workflows as bw
import pytest
from surface_helpers import (
    Proc,
    cli_all,
    migrated_sqlite,
    sync_client,
    wait_for,
    worker_serving,
)

import perdure


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("batch-cli"))


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(bw.__file__, db, tmp_path_factory.mktemp("batch-worker"))


def status(client: perdure.SyncClient, ident: str) -> str:
    return client.get_handle(ident).describe().status


def reasons(client: perdure.SyncClient, ident: str, event: str) -> list[Any]:
    return [e.get("reason") for e in client.get_handle(ident).history() if e["type"] == event]


def waiting(client: perdure.SyncClient, *idents: str) -> None:
    for ident in idents:
        handle = client.get_handle(ident)
        wait_for(lambda h=handle: h.describe().waiting_signals == ["go"], 20, f"{ident} to wait")


def text(done: Any) -> str:
    """stderr as one line (rich wraps and boxes it)."""
    return " ".join(done.stderr.replace("│", " ").split())


def test_without_yes_it_lists_what_matches_and_does_nothing(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    idents = [f"cd-{n:02}" for n in range(1, 23)]
    for ident in idents:
        client.start("parked", ident, id=ident)
    table, as_json, limited, none = cli_all(
        ("terminate", "--type", "parked", "--search", "cd-", "--db", db),
        ("terminate", "--search", "cd-", "--reason", "not yet", "--json", "--db", db),
        ("reset", "--search", "cd-", "--limit", "3", "--db", db),
        ("cancel", "--search", "nothing-is-called-this", "--db", db),
    )
    assert table.returncode == 0, table.stderr
    assert "22 runs match: each workflow id's latest run, newest first." in table.stdout
    shown = re.findall(r"^(cd-\d+) +│ parked +│ running +│ \d{4}-", table.stdout, re.M)
    assert shown == idents[::-1][:20]  # the first 20, newest first
    assert "… and 2 more (--json lists them all)" in table.stdout
    assert "Nothing was done. To terminate them, run this again with --yes." in table.stdout

    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert [row["id"] for row in found["matched"]] == idents[::-1]
    assert (found["action"], found["dry_run"]) == ("terminate", True)
    assert found["done"] == found["skipped"] == found["failed"] == {}
    row = found["matched"][0]
    assert set(row) == {
        *("id", "run_id", "workflow_type", "task_queue", "status", "created_at"),
        *("closed_at", "last_error", "search_attributes", "priority", "build_id"),
    }
    assert limited.returncode == 0 and "3 runs match (--limit)" in limited.stdout
    assert none.returncode == 0 and "No runs match: nothing to cancel." in none.stdout

    listed = client.list(search="cd-", limit=100)
    assert len(listed) == 22 and {e.status for e in listed} == {"running"}
    for ident in idents[::7]:
        assert reasons(client, ident, "WorkflowTerminated") == []


def test_yes_terminates_exactly_the_matched_runs(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    ops, dev = {"team": "ops"}, {"team": "dev"}
    for ident in ("ct-1", "ct-2", "ct-3"):
        client.start("parked", ident, id=ident, search_attributes=ops)
    client.start("parked", "ct-4", id="ct-4", search_attributes=dev)  # another value
    client.start("held", "ct-5", id="ct-5", search_attributes=ops)  # another type
    client.start("parked", "ct-6", id="ct-6", search_attributes=ops)
    client.get_handle("ct-6").terminate("closed before")  # closed: not matched
    (done,) = cli_all(
        ("terminate", "--type", "parked", "--attr", "team=ops", "--search", "ct-",
         "--reason", "incident 7", "--yes", "--db", db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Terminated 3 of 3 runs matched: 0 skipped, 0 failed." in done.stdout
    for ident in ("ct-1", "ct-2", "ct-3"):
        assert status(client, ident) == "terminated"
        assert reasons(client, ident, "WorkflowTerminated") == ["incident 7"]
    assert status(client, "ct-4") == "running" and status(client, "ct-5") == "running"
    assert reasons(client, "ct-6", "WorkflowTerminated") == ["closed before"]


def test_build_id_names_the_runs_pinned_to_a_build(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    """After a bad deploy: --build-id alone is a filter; the dry run and
    --yes both take the runs pinned to that build, no other. (Pinned by
    hand: the worker has no build, and need not run them.)"""
    pins = {"cb-1": "bad-1", "cb-2": "bad-1", "cb-3": "good-1", "cb-4": None}
    for ident in pins:
        client.start("parked", ident, id=ident)
    waiting(client, *pins)
    for ident, build in pins.items():
        if build is not None:
            client.get_handle(ident).set_build_id(build)
    look, as_json = cli_all(
        ("terminate", "--build-id", "bad-1", "--db", db),
        ("terminate", "--build-id", "bad-1", "--json", "--db", db),
    )
    assert look.returncode == 0, look.stderr
    assert "2 runs match: each workflow id's latest run, newest first." in look.stdout
    assert re.findall(r"^(cb-\d) +│ parked +│ running +│", look.stdout, re.M) == ["cb-2", "cb-1"]
    found = json.loads(as_json.stdout)
    assert [(r["id"], r["build_id"]) for r in found["matched"]] == [
        ("cb-2", "bad-1"),
        ("cb-1", "bad-1"),
    ]
    assert {status(client, ident) for ident in pins} == {"running"}

    (done,) = cli_all(
        ("terminate", "--build-id", "bad-1", "--reason", "bad deploy", "--yes", "--db", db)
    )
    assert done.returncode == 0, done.stderr
    assert "Terminated 2 of 2 runs matched: 0 skipped, 0 failed." in done.stdout
    for ident in ("cb-1", "cb-2"):
        assert reasons(client, ident, "WorkflowTerminated") == ["bad deploy"]
    assert status(client, "cb-3") == "running" and status(client, "cb-4") == "running"


def test_yes_cancels_the_matched_runs_and_their_code_sees_it(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    for ident in ("cc-1", "cc-2"):
        client.start("parked", ident, id=ident)
    client.start("held", "cc-3", id="cc-3")
    waiting(client, "cc-1", "cc-2", "cc-3")
    (done,) = cli_all(
        ("cancel", "--type", "parked", "--search", "cc-", "--reason", "not needed", "--yes",
         "--db", db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Cancellation requested for 2 of 2 runs matched: 0 skipped, 0 failed." in done.stdout
    for ident in ("cc-1", "cc-2"):
        wait_for(lambda i=ident: status(client, i) == "cancelled", 20, f"{ident} cancelled")
        assert reasons(client, ident, "CancelRequested") == ["not needed"]
    assert status(client, "cc-3") == "running"


def test_reset_by_filter_runs_the_failed_payments_again(
    db: str, client: perdure.SyncClient, worker: Proc, tmp_path: Path
) -> None:
    flag, up = tmp_path / "payment-api-up", tmp_path / "always-up"
    up.touch()
    old = {
        ident: client.start("payment", ident, str(flag), id=ident).run_id
        for ident in ("cr-1", "cr-2", "cr-3")
    }
    paid = client.start("payment", "cr-ok", str(up), id="cr-ok")
    assert paid.result(timeout=20) == "charged cr-ok"
    for ident in old:
        wait_for(lambda i=ident: status(client, i) == "failed", 20, f"{ident} to fail")
    flag.touch()  # the payment API is back

    look = ("reset", "--status", "failed", "--type", "payment", "--search", "cr-", "--db", db)
    (seen,) = cli_all(look)
    assert seen.returncode == 0 and "3 runs match" in seen.stdout, seen.stderr
    assert [e.status for e in client.list(search="cr-", limit=100)].count("failed") == 3
    (done,) = cli_all((*look, "--reason", "API back", "--yes", "--json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dry_run"] is False and sorted(result["done"]) == sorted(old)
    assert result["skipped"] == result["failed"] == {}
    for ident, old_run in old.items():
        new_run = result["done"][ident]
        assert new_run != old_run
        assert client.get_handle(ident, new_run).result(timeout=20) == f"charged {ident}"
        assert client.get_handle(ident, old_run).describe().status == "failed"
        assert client.get_handle(ident).describe().run_id == new_run  # the id's latest
        assert reasons(client, ident, "WorkflowReset") == ["API back"]
    latest = client.list(search="cr-", latest=True, limit=100)
    assert {e.id: e.run_id for e in latest} == {**result["done"], "cr-ok": paid.run_id}
    (again,) = cli_all(look)
    assert again.returncode == 0 and "No runs match: nothing to reset." in again.stdout


def test_limit_acts_on_the_newest_runs(db: str, client: perdure.SyncClient) -> None:
    for ident in ("cl-1", "cl-2", "cl-3", "cl-4"):
        client.start("parked", ident, id=ident)
    (done,) = cli_all(("terminate", "--search", "cl-", "--limit", "2", "--yes", "--db", db))
    assert done.returncode == 0, done.stderr
    assert "Terminated 2 of 2 runs matched" in done.stdout
    states = [status(client, i) for i in ("cl-1", "cl-2", "cl-3", "cl-4")]
    assert states == ["running", "running", "terminated", "terminated"]


def test_a_run_whose_action_fails_is_listed_with_its_error_and_exit_5(
    db: str, client: perdure.SyncClient, worker: Proc, tmp_path: Path
) -> None:
    client.start("parent", "o-1", "cf", id="cf-1")  # its child: batch=cf
    failing = client.start(
        "payment", "o-2", str(tmp_path / "down"), id="cf-2", search_attributes={"batch": "cf"}
    )
    with pytest.raises(perdure.WorkflowFailedError):
        failing.result(timeout=20)
    waiting(client, "cf-1/kid")
    (done,) = cli_all(("reset", "--attr", "batch=cf", "--reason", "again", "--yes", "--db", db))
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "Reset 1 of 2 runs matched: 0 skipped, 1 failed." in done.stdout
    assert re.search(
        r"^Failed:\n  cf-1/kid: WorkflowResetError: workflow 'cf-1/kid' is a child of run \S+,"
        r" which waits on this run's outcome: reset the parent instead$",
        done.stdout,
        re.M,
    ), done.stdout
    assert "error: 1 run could not be reset (listed above)" in text(done)
    assert client.get_handle("cf-2").describe().run_id != failing.run_id  # the other went on
    assert status(client, "cf-1/kid") == "running"


def test_both_forms_or_neither_is_a_usage_error_that_does_nothing(
    db: str, client: perdure.SyncClient
) -> None:
    client.start("parked", "cu-1", id="cu-1")
    before = client.get_handle("cu-1").describe()
    both = "give a workflow id or filters, not both"
    neither = "name a workflow id, or give filters (--status, --type, --since, --until,"
    cases: dict[tuple[str, ...], str] = {
        ("cancel", "cu-1", "--status", "running"): f"{both} (--status go with filters)",
        ("terminate", "cu-1", "--yes"): f"{both} (--yes go with filters)",
        ("reset", "cu-1", "--limit", "3"): f"{both} (--limit go with filters)",
        ("terminate", "cu-1", "--search", "cu-", "--attr", "a=1", "--yes"): (
            f"{both} (--search, --attr, --yes go with filters)"
        ),
        ("terminate",): (
            f"{neither} --search, --attr, --retrying, --build-id) to terminate every run"
        ),
        ("terminate", "cu-1", "--build-id", "b-1"): f"{both} (--build-id go with filters)",
        ("cancel", "--build-id", "", "--yes"): neither,
        ("reset", "--build-id", "x" * 201): (
            "Invalid value for '--build-id': a build id must be at most 200 bytes"
        ),
        ("cancel", "--yes"): neither,
        ("reset", "--search", "", "--type", "", "--yes"): neither,
        ("cancel", "--status", "failed"): (
            "Invalid value for --status: only open runs can be cancelled: leave it out or give"
            " running, not 'failed'"
        ),
        ("terminate", "--status", "completed", "--yes"): "only open runs can be terminated",
        ("reset", "--status", "failed", "--to-event", "2"): (
            "--to-event is for one run, not with filters"
        ),
        ("reset", "--search", "cu-", "--list-points", "--yes"): "--list-points is for one run",
        ("terminate", "--search", "cu-", "--run-id", "r-1", "--yes"): "--run-id is for one run",
        ("reset", "--status", "nope"): "--status: must be one of running, completed",
        ("cancel", "--search", "cu-", "--since", "1h", "--until", "2h"): "is after --until",
        ("cancel", "--search", "cu-", "--attr", "team", "--yes"): "--attr takes NAME=VALUE",
        ("terminate", "--search", "cu-", "--limit", "0", "--yes"): "--limit",
    }  # fmt: skip
    results = cli_all(*((*args, "--db", db) for args in cases))
    for (args, message), done in zip(cases.items(), results, strict=True):
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in text(done), (args, done.stderr)
    after = client.get_handle("cu-1").describe()
    assert (after.run_id, after.status, after.closed_at) == (
        before.run_id,
        before.status,
        before.closed_at,
    )
    assert reasons(client, "cu-1", "CancelRequested") == []


def test_one_run_by_id_as_before_and_with_json(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    for ident in ("co-1", "co-2"):
        client.start("parked", ident, id=ident)
    cancelled, terminated = cli_all(
        ("cancel", "co-1", "--reason", "just this one", "--json", "--db", db),
        ("terminate", "co-2", "--db", db),
    )
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout) == {
        "id": "co-1",
        "action": "cancel",
    }
    assert terminated.returncode == 0 and "Terminated co-2" in terminated.stdout
    # (The request is recorded in the history by the run's next turn.)
    wait_for(
        lambda: reasons(client, "co-1", "CancelRequested") == ["just this one"],
        20,
        "co-1's cancel request in its history",
    )
    assert status(client, "co-2") == "terminated"


def options_of(client: perdure.SyncClient, ident: str) -> tuple[int, str | None]:
    d = client.get_handle(ident).describe()
    return d.priority, d.fairness_key


def test_update_options_changes_one_run_or_the_matched_runs(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    for ident in ("uo-1", "uo-2"):
        client.start("parked", ident, id=ident, fairness_key="acme")
    client.start("held", "uo-x", id="uo-x", fairness_key="acme")
    listed, one = cli_all(
        ("update-options", "--type", "parked", "--search", "uo-", "--priority", "1", "--db", db),
        ("update-options", "uo-x", "--priority", "5", "--no-fairness-key", "--db", db),
    )
    assert listed.returncode == 0, listed.stderr
    assert "2 runs match: each workflow id's latest run, newest first." in listed.stdout
    assert "Nothing was done. To update them, run this again with --yes." in listed.stdout
    assert options_of(client, "uo-1") == (3, "acme")
    assert one.returncode == 0, one.stderr
    assert "Run of uo-x now has priority 5 and no fairness key" in one.stdout
    assert options_of(client, "uo-x") == (5, None)

    [done] = cli_all(
        ("update-options", "--type", "parked", "--search", "uo-", "--priority", "1",
         "--fairness-key", "acme-gold", "--yes", "--db", db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Updated the options of 2 of 2 runs matched: 0 skipped, 0 failed." in done.stdout
    assert [options_of(client, i) for i in ("uo-1", "uo-2", "uo-x")] == [
        (1, "acme-gold"),
        (1, "acme-gold"),
        (5, None),
    ]


def test_update_options_usage_errors_change_nothing(db: str, client: perdure.SyncClient) -> None:
    client.start("parked", "ue-1", id="ue-1", fairness_key="acme")
    cases: dict[tuple[str, ...], str] = {
        ("update-options", "ue-1"): "give the options to change: --priority N, --fairness-key",
        ("update-options", "ue-1", "--fairness-key", "k", "--no-fairness-key"): (
            "give --fairness-key KEY or --no-fairness-key, not both"
        ),
        ("update-options", "ue-1", "--fairness-key", ""): "fairness_key must be a non-empty",
        ("update-options", "ue-1", "--priority", "9"): "must be from 1 (first) to 5 (last)",
        ("update-options", "ue-1", "--search", "ue-", "--priority", "1"): (
            "give a workflow id or filters, not both (--search go with filters)"
        ),
        ("update-options", "--priority", "1", "--yes"): "name a workflow id, or give filters",
        ("update-options", "--status", "failed", "--priority", "1"): (
            "only open runs can be updated: leave it out or give running, not 'failed'"
        ),
        ("update-options", "--search", "ue-", "--run-id", "r-1", "--priority", "1"): (
            "--run-id is for one run"
        ),
    }
    results = cli_all(*((*args, "--db", db) for args in cases))
    for (args, message), done in zip(cases.items(), results, strict=True):
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in text(done), (args, done.stderr)
    assert options_of(client, "ue-1") == (3, "acme")
