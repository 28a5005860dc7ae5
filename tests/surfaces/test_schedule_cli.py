"""``perdure schedule``: create, list, show, pause, unpause, trigger and
delete through the real entry point, against a real worker process; bad
input refused with its exit code and nothing made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import surface_workflows as wf
from surface_helpers import cli, spawn, wait_for

import perdure


def shown(db: str, schedule_id: str) -> dict[str, Any]:
    done = cli("schedule", "show", schedule_id, "--json", "--db", db)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def watched(sync: perdure.SyncClient, schedule_id: str) -> dict[str, Any]:
    """What ``shown`` reads, in this process: the waits ask it again and
    again, and a ``perdure`` command each time cost 0.36 s of CPU."""
    return sync.get_schedule(schedule_id).describe().to_json()


def test_schedule_commands_end_to_end(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'schedules.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    refused = {
        ("--cron", "0 3 * *"): (2, "has 4 fields; it needs 5"),
        ("--every", "5x"): (2, "'5x' is not a duration"),
        ("--every", "99999999999d"): (2, "longer than any date"),
        ("--cron", "@daily", "--every", "1h"): (2, "needs exactly one of cron="),
        ("--cron", "@daily", "--timezone", "Mars/Olympus"): (2, "unknown time zone"),
        ("--cron", "@daily", "--overlap", "queue"): (2, "overlap must be 'skip' or 'allow'"),
        ("--cron", "@daily", "--arg", "{"): (2, "must be JSON"),
    }
    for options, (code, says) in refused.items():
        done = cli("schedule", "create", "bad", "double", *options, "--db", db)
        assert (done.returncode, says in done.stderr) == (code, True), (options, done.stderr)
    listed = cli("schedule", "list", "--json", "--db", db)
    assert json.loads(listed.stdout) == []  # nothing made

    made = cli(
        "schedule", "create", "nightly", "double", "--arg", "21", "--cron", "0 3 * * *",
        "--timezone", "Europe/Paris", "--db", db,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "Created schedule nightly: double cron 0 3 * * * (Europe/Paris)" in made.stdout
    again = cli("schedule", "create", "nightly", "double", "--cron", "@daily", "--db", db)
    assert again.returncode == 5 and "'nightly' already exists" in again.stderr
    kept = cli(
        "schedule", "create", "nightly", "double", "--cron", "@daily", "--if-exists", "keep",
        "--db", db,
    )  # fmt: skip
    assert kept.returncode == 0 and "Schedule nightly is in place" in kept.stdout
    assert shown(db, "nightly")["cron"] == "0 3 * * *"
    missing = cli("schedule", "show", "nope", "--db", db)
    assert missing.returncode == 3 and "no schedule 'nope'" in missing.stderr
    made = cli("schedule", "create", "often", "double", "--arg", "2", "--every", "1s", "--db", db)
    assert made.returncode == 0, made.stderr

    worker = spawn(
        ["worker", wf.__file__, "--db", db, "--poll-interval", "0.05", "--log-level", "ERROR"],
        tmp_path / "worker.log",
    )
    sync = perdure.SyncClient.connect(db)
    try:
        wait_for(lambda: watched(sync, "often")["runs_started"] >= 2, 20, "two runs of 'often'")
        paused = cli("schedule", "pause", "often", "--note", "db upgrade", "--db", db)
        assert paused.returncode == 0 and "Paused schedule often" in paused.stdout
        wait_for(lambda: watched(sync, "often")["paused"], 20, "the pause")
        text = cli("schedule", "show", "often", "--db", db).stdout
        assert "running (paused: db upgrade)" in text and "so far" in text
        count = shown(db, "often")["runs_started"]
        assert cli("schedule", "trigger", "often", "--db", db).returncode == 0
        wait_for(
            lambda: watched(sync, "often")["runs_started"] == count + 1, 20, "the triggered run"
        )
        last = shown(db, "often")["recent"][-1]
        assert last["trigger"] is True and last["workflow_id"].endswith("~trigger1")
        result = cli("result", last["workflow_id"], "--wait", "--db", db)
        assert result.returncode == 0 and "4" in result.stdout
        assert cli("schedule", "unpause", "often", "--db", db).returncode == 0
        wait_for(lambda: not watched(sync, "often")["paused"], 20, "the unpause")
        moved = cli("schedule", "update", "often", "--every", "2s", "--arg", "5", "--db", db)
        assert moved.returncode == 0 and "Update sent to schedule often" in moved.stdout
        wait_for(lambda: watched(sync, "often")["every_seconds"] == 2.0, 20, "the update")
        bad = cli("schedule", "update", "often", "--cron", "61 * * * *", "--db", db)
        assert bad.returncode == 2 and "61 is out of range" in bad.stderr
        gone = cli("schedule", "update", "nope", "--every", "1m", "--db", db)
        assert gone.returncode == 3 and "no schedule 'nope'" in gone.stderr
        assert shown(db, "often")["every_seconds"] == 2.0  # (the command says so too)
    finally:
        sync.close()
        worker.stop()
    filled = cli(
        "schedule", "backfill", "nightly", "--from", "2026-11-01T00:00:00+00:00",
        "--to", "2026-11-03T12:00:00+00:00", "--json", "--db", db,
    )  # fmt: skip
    assert filled.returncode == 0, filled.stderr
    assert [r["workflow_id"] for r in json.loads(filled.stdout)] == [
        f"nightly@2026-11-0{d}T02:00:00Z"
        for d in (1, 2, 3)  # 03:00 in Paris
    ]
    again = cli("schedule", "backfill", "nightly", "--from", "2026-11-02T00:00:00Z",
                "--to", "2026-11-02T23:00:00Z", "--db", db)  # fmt: skip
    assert "0 runs started, 1 times already had theirs" in again.stdout, again.stderr
    bad = cli("schedule", "backfill", "nightly", "--from", "yesterday", "--db", db)
    assert bad.returncode == 2 and "--from" in bad.stderr
    table = cli("schedule", "list", "--db", db).stdout
    assert "nightly" in table and "often" in table and "Europe/Paris" in table
    assert "every 2s" in table  # (as --every takes it)
    deleted = cli("schedule", "delete", "nightly", "--db", db)
    assert deleted.returncode == 0 and "Deleted schedule nightly" in deleted.stdout
    assert [
        s["schedule_id"] for s in json.loads(cli("schedule", "list", "--json", "--db", db).stdout)
    ] == ["often"]
    assert shown(db, "nightly")["status"] == "terminated"


def test_spans_read_and_print_as_every_takes_them() -> None:
    from datetime import timedelta

    from perdure.cli._schedule_cmd import parse_span, span_text

    for text, span in (("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1.5", 1.5)):
        assert parse_span(text, "--every") == timedelta(seconds=span)
    assert [span_text(timedelta(seconds=s)) for s in (90, 900, 7200, 86400, 1.5, 3600 * 25)] == [
        "90s",
        "15m",
        "2h",
        "1d",
        "1.5s",
        "25h",
    ]


def test_a_schedules_jitter_through_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jitter.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    wide = cli("schedule", "create", "x", "double", "--every", "1h", "--jitter", "1h", "--db", db)
    assert wide.returncode == 2 and "shorter than the gap" in wide.stderr, wide.stderr
    made = cli(
        "schedule", "create", "hourly", "double", "--every", "1h", "--jitter", "10m", "--db", db
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert shown(db, "hourly")["jitter_seconds"] == 600.0
    text = cli("schedule", "show", "hourly", "--db", db).stdout
    assert "every 1h; overlap skip; each run up to 10m late" in text, text
    assert cli("schedule", "create", "plain", "double", "--every", "1h", "--db", db).returncode == 0
    assert shown(db, "plain")["jitter_seconds"] == 0.0
    assert "late" not in cli("schedule", "show", "plain", "--db", db).stdout
    wide = cli("schedule", "update", "plain", "--jitter", "2h", "--db", db)
    assert wide.returncode == 2 and "shorter than the gap" in wide.stderr, wide.stderr


def test_a_schedules_priority_through_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'priority.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    bad = cli("schedule", "create", "x", "double", "--every", "1h", "--priority", "0", "--db", db)
    assert bad.returncode == 2 and "must be from 1 (first) to 5 (last)" in bad.stderr, bad.stderr
    assert "x" not in cli("schedule", "list", "--db", db).stdout
    made = cli(
        "schedule", "create", "nightly", "double", "--every", "1h", "--priority", "5", "--db", db
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert shown(db, "nightly")["priority"] == 5
    text = cli("schedule", "show", "nightly", "--db", db).stdout
    assert "on task queue default at priority 5" in text, text
    assert cli("schedule", "create", "plain", "double", "--every", "1h", "--db", db).returncode == 0
    assert shown(db, "plain")["priority"] == 3
    bad = cli("schedule", "update", "plain", "--priority", "6", "--db", db)
    assert bad.returncode == 2 and "must be from 1 (first) to 5 (last)" in bad.stderr, bad.stderr
