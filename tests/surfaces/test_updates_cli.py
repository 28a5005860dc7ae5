"""``perdure update`` through the real entry point (``python -m perdure``), on
SQLite, with a real worker process: the workflow's answer is printed as JSON
(exit 0), a rejection says why (exit 7), no answer in time names the
``--update-id`` to retry with (exit 8) and the retry gets the answer; a run
that has ended, or ends without answering, is exit 5, an unknown workflow 3,
bad input 2. ``show`` lists the updates a run waits for, ``history`` shows a
request and its answer as an update's.

Set-up and waiting go through an in-process SyncClient; independent commands
run side by side (``cli_all``). The command adds nothing of its own to
``handle.update()``, which is tested on both databases in tests/e2e/test_updates.py
(and the HTTP API's route on both in test_updates_api.py): here one database
keeps the suite short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import update_workflows as uw
from surface_helpers import (
    Proc,
    cli_all,
    migrated_sqlite,
    spawn,
    sync_client,
    wait_for,
    worker_serving,
)

import perdure


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("updates-cli"))


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(uw.__file__, db, tmp_path_factory.mktemp("updates-worker"))


def waiting_for(client: perdure.SyncClient, ident: str, *, updates: list[str]) -> None:
    handle = client.get_handle(ident)
    wait_for(lambda: handle.describe().waiting_updates == updates, 20, f"{ident}'s update wait")


def text(done: Any) -> str:
    """stderr as one line (rich wraps it)."""
    return " ".join(done.stderr.split())


def test_an_update_is_answered_rejected_and_shown(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    client.start("expense", "exp-1", 1500, id="cli-exp-1")
    client.start("expense", "exp-2", 80, id="cli-exp-2")
    waiting_for(client, "cli-exp-1", updates=["decide"])
    waiting_for(client, "cli-exp-2", updates=["decide"])

    shown, described, refused, refused_json, answered = cli_all(
        ("show", "cli-exp-1", "--db", db),
        ("show", "cli-exp-1", "--json", "--db", db),
        ("update", "cli-exp-1", "decide", '{"decision": "approved", "by": "lead"}', "--db", db),
        (
            "update",
            "cli-exp-1",
            "decide",
            '"maybe"',
            "--json",
            "--update-id",
            "u-maybe",
            "--db",
            db,
        ),
        ("update", "cli-exp-2", "decide", '{"decision": "refused", "by": "ada"}', "--db", db),
    )
    assert shown.returncode == 0, shown.stderr
    assert "Waiting on" in shown.stdout and "update decide" in shown.stdout
    assert "signal decide" not in shown.stdout
    d = json.loads(described.stdout)
    assert (d["waiting_updates"], d["waiting_signals"]) == (["decide"], [])

    assert refused.returncode == 7, refused
    assert refused.stdout == ""
    assert "rejected update 'decide': above 1,000 a director decides" in text(refused)
    assert refused_json.returncode == 7, refused_json
    assert json.loads(refused_json.stdout) == {
        "id": "cli-exp-1",
        "update_id": "u-maybe",
        "rejected": True,
        "message": "decide 'approved' or 'refused', not 'maybe'",
    }
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout) == {"status": "refused", "amount": 80}

    approve = ("update", "cli-exp-1", "decide", '{"decision": "approved", "by": "director"}')
    done = cli_all((*approve, "--update-id", "u-director", "--json", "--db", db))[0]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "id": "cli-exp-1",
        "update_id": "u-director",
        "result": {"status": "approved", "amount": 1500},
    }
    assert client.get_handle("cli-exp-1").result(timeout=10) == "approved"

    # The run has ended: a retry by the answered id reads its answer (nothing
    # is sent); a new request is a conflict.
    again, closed, history = cli_all(
        (*approve, "--update-id", "u-director", "--db", db),
        (*approve, "--db", db),
        ("history", "cli-exp-1", "--db", db),
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"status": "approved", "amount": 1500}
    assert closed.returncode == 5, closed
    assert "already completed" in text(closed) or "ended" in text(closed), closed.stderr
    assert 'update decide (u-maybe) "maybe"' in history.stdout
    assert "decide (u-maybe) rejected: decide 'approved' or 'refused', not 'maybe'" in (
        history.stdout
    )
    assert 'update decide (u-director) {"decision": "approved", "by": "director"}' in history.stdout
    assert 'decide (u-director) -> {"status": "approved", "amount": 1500}' in history.stdout
    # Three requests (the two rejections in either order): the retry sent none.
    sent = requests(client.get_handle("cli-exp-1"))
    assert len(sent) == 3 and "u-maybe" in sent[:2] and sent[2] == "u-director", sent


def requests(handle: perdure.SyncWorkflowHandle[Any]) -> list[str]:
    """The update ids of the update requests in the run's history."""
    events = handle.history()
    return [e["payload"]["update_id"] for e in events if e["type"] == "SignalReceived"]


def test_no_answer_in_time_names_the_update_id_and_the_retry_gets_the_answer(
    db: str, worker: Proc, client: perdure.SyncClient, tmp_path: Path
) -> None:
    for ident in ("cli-gate-1", "cli-gate-2"):
        client.start("gate", "ada", id=ident)
        handle = client.get_handle(ident)
        wait_for(lambda h=handle: h.describe().waiting_signals == ["open"], 20, f"{ident} to wait")
    late, late_json = cli_all(
        ("update", "cli-gate-1", "ask", '"tea"', "--timeout", "0.3", "--db", db),
        ("update", "cli-gate-2", "ask", "--timeout", "0", "--json", "--db", db),
    )
    assert late.returncode == 8, late
    said = text(late)
    assert "did not answer update 'ask' within 0.3s; the request stays queued" in said
    found = re.search(r"run this again with --update-id (\w+)", said)
    assert found, said
    update_id = found[1]
    timed_out = json.loads(late_json.stdout)
    assert late_json.returncode == 8, late_json
    assert timed_out == {"id": "cli-gate-2", "update_id": timed_out["update_id"], "timed_out": True}
    assert re.fullmatch(r"[0-9a-f]{32}", timed_out["update_id"])

    # The request stayed queued. A retry by its id waits for its answer, which
    # comes once the gate opens (the workflow took the request once: it returns
    # the id it answered; the retry's copy was skipped).
    retry = ["update", "cli-gate-1", "ask", '"tea"', "--update-id", update_id, "--db", db]
    proc = spawn(retry, tmp_path / "retry.log")
    handle = client.get_handle("cli-gate-1")
    wait_for(lambda: len(requests(handle)) == 2, 20, "the retry's request")
    assert requests(handle) == [update_id, update_id]
    handle.signal("open")
    assert proc.popen.wait(timeout=30) == 0, proc.output()
    assert json.loads(proc.output()) == "ada says yes to tea"
    assert handle.result(timeout=10) == f"answered {update_id}"
    client.get_handle("cli-gate-2").terminate("done looking")


def test_errors_exit_with_their_codes(db: str, worker: Proc, client: perdure.SyncClient) -> None:
    client.start("expense", "exp-w", 10, id="cli-exp-withdrawn")
    waiting_for(client, "cli-exp-withdrawn", updates=["decide"])
    cases: dict[tuple[str, ...], tuple[int, str]] = {
        ("update", "nope", "decide"): (3, "no workflow with id 'nope'"),
        ("update", "cli-exp-withdrawn", "decide", '"withdraw"'): (
            5,
            "ended completed without answering update 'decide'",
        ),
        ("update", "nope", "decide", "{"): (2, "PAYLOAD_JSON must be JSON"),
        ("update", "", "decide"): (2, "id must be a non-empty string"),
        ("update", "nope", " "): (2, "must not be empty"),
        ("update", "nope", "decide", "--update-id", ""): (2, "must not be empty"),
        ("update", "nope", "decide", "--timeout", "-1"): (2, "Invalid value for '--timeout'"),
        ("update", "nope", "decide", "--timeout", "nan"): (2, "Invalid value for '--timeout'"),
        ("update", "nope"): (2, "Missing argument 'NAME'"),
        # A signal may not take an update's reserved name.
        ("signal", "nope", "perdure.update:decide"): (2, "kept for updates"),
    }
    results = cli_all(*((*args, "--db", db) for args in cases))
    for (args, (code, message)), done in zip(cases.items(), results, strict=True):
        assert done.returncode == code, (args, done)
        assert message in text(done), (args, done.stderr)
    assert client.get_handle("cli-exp-withdrawn").result(timeout=10) == "withdrawn"
