"""``perdure queue``: limit, show, list, unlimit and weight through the real
entry point; bad input refused with exit code 2 and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from surface_helpers import cli


def shown(db: str, queue: str) -> dict[str, Any]:
    done = cli("queue", "show", queue, "--json", "--db", db)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_queue_commands_end_to_end(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'queues.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    refused = {
        (): "give max_running, or max_starts and per",
        ("--max-starts", "5"): "a rate limit needs both max_starts and per",
        ("--max-starts", "5", "--per", "5x"): "'5x' is not a duration",
        ("--max-running", "-1"): "max_running must be between 0 and 1,000,000, not -1",
        ("--max-starts", "0", "--per", "1m"): "max_starts must be between 1 and 1,000,000",
        ("--max-starts", "5", "--per", "40d"): "per must be between",
    }
    for options, says in refused.items():
        done = cli("queue", "limit", "llm", *options, "--db", db)
        assert (done.returncode, says in done.stderr) == (2, True), (options, done.stderr)
    assert json.loads(cli("queue", "list", "--json", "--db", db).stdout) == []

    made = cli(
        "queue", "limit", "llm", "--max-running", "8", "--max-starts", "50", "--per", "1m",
        "--db", db,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "Task queue llm: at most 8 running, at most 50 started per 1m" in made.stdout
    assert shown(db, "llm") == {
        "task_queue": "llm",
        "limits": {
            "max_running": 8,
            "max_starts": 50,
            "per_seconds": 60.0,
            "max_running_per_key": None,
            "max_starts_per_key": None,
        },
        "running": 0,
        "waiting": 0,
        "backing_off": 0,
        "started": 0,
        "held_until": None,
        "waiting_by_priority": {},
        "paused": 0,
        "paused_activities": [],
        "waiting_keys": 0,
        "waiting_by_key": {},
        "running_by_key": {},
        "keys_at_limit": 0,
        "fairness_weights": {},
        "started_by_key": {},
    }
    text = cli("queue", "show", "llm", "--db", db).stdout
    assert "at most 8 running" in text and "0 in the rate limit's window" in text
    listed = json.loads(cli("queue", "list", "--json", "--db", db).stdout)
    assert [q["task_queue"] for q in listed] == ["llm"]
    # A new limit replaces the old ones.
    assert cli("queue", "limit", "llm", "--max-running", "2", "--db", db).returncode == 0
    assert shown(db, "llm")["limits"] == {
        "max_running": 2,
        "max_starts": None,
        "per_seconds": None,
        "max_running_per_key": None,
        "max_starts_per_key": None,
    }

    lifted = cli("queue", "unlimit", "llm", "--db", db)
    assert lifted.returncode == 0 and "limits lifted" in lifted.stdout
    again = cli("queue", "unlimit", "llm", "--db", db)
    assert again.returncode == 0 and "had no limits" in again.stdout
    assert shown(db, "llm")["limits"] is None
    assert cli("queue", "show", "", "--db", db).returncode == 2


def test_fairness_weights_end_to_end(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'weights.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    refused = {
        ("acme", "0"): "weight must be between 1 and 1,000 (1: the default), not 0",
        ("acme", "1001"): "weight must be between 1 and 1,000",
        ("", "3"): "fairness_key must be a non-empty string",
        ("acme", "x"): "Invalid value for 'WEIGHT'",
    }
    for args, says in refused.items():
        done = cli("queue", "weight", "llm", *args, "--db", db)
        assert (done.returncode, says in done.stderr) == (2, True), (args, done.stderr)
    assert json.loads(cli("queue", "list", "--json", "--db", db).stdout) == []

    made = cli("queue", "weight", "llm", "acme", "3", "--db", db)
    assert made.returncode == 0, made.stderr
    assert "Task queue llm: key acme weighs 3 (it weighed 1)" in made.stdout
    assert cli("queue", "weight", "llm", "globex", "2", "--db", db).returncode == 0
    assert shown(db, "llm")["fairness_weights"] == {"acme": 3, "globex": 2}
    text = cli("queue", "show", "llm", "--db", db).stdout
    assert "weights      acme: 3, globex: 2   (the other keys: 1)" in text
    back = cli("queue", "weight", "llm", "acme", "1", "--db", db)
    assert "weighs 1 (it weighed 3)" in back.stdout
    assert shown(db, "llm")["fairness_weights"] == {"globex": 2}
