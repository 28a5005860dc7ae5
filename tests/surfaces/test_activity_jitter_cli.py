"""``perdure activity unpause`` and ``reset`` with ``--jitter SPAN``, through
the real entry point, on SQLite and PostgreSQL: the next attempt of each
activity they unpause or reset is due at a random moment within SPAN of the
command, a moment of its own (not all now): by id, whose line says when,
and in the batch form (``--activity-type``, the run filters, ``--yes``). A
``--jitter`` that is not a span from 0 to 100 years is a usage error (exit
2) before any database is opened, and changes nothing; ``pause`` has no
``--jitter``.

The activities are ``keeps_retrying``'s (tests/surfaces/async_workflows.py),
moved to a task queue no worker serves before they are paused or reset:
what ``describe()`` shows of their next attempt is then what the command
made of it, not that of an attempt run since. Random moments are checked
against their bounds only, and, of several activities, against all being
due by the time they were read (as without a jitter: a chance of about
(2s / SPAN) to the power of their number). Fixtures and helpers:
test_activity_batch_cli.py's, as test_activity_reset_cli.py has them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import test_activity_batch_cli as batch_cli
from surface_helpers import RETRIED, cli_all, said
from surface_helpers import first_activity as the_activity
from surface_helpers import started_activities as started
from test_activity_batch_cli import ended, on

import perdure
from perdure.client import PendingActivityInfo

# The batch form's module fixtures: a database of each backend, a client, a worker.
db, sync, worker = batch_cli.db, batch_cli.sync, batch_cli.worker
pytestmark = pytest.mark.usefixtures("worker")

IDLE = "served-by-no-worker"
DAY = timedelta(days=1)
# The line a jittered unpause or reset prints ends with when its next attempt is due.
DUE_AT = re.compile(r"its next attempt is due at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$")

Handles = dict[str, perdure.SyncWorkflowHandle[Any]]


def parked(sync: perdure.SyncClient, idents: list[str], *, pause: bool) -> Handles:
    """A ``keeps_retrying`` run of each id, its activity moved to a task
    queue no worker serves, its backoff made a day; paused too (``pause``);
    each once no attempt of it runs."""
    handles = started(sync, {ident: RETRIED for ident in idents})
    for ident in idents:
        by_id = sync.get_async_activity_handle(workflow_id=ident, activity_id=1)
        by_id.update_options(task_queue=IDLE, retry_initial_interval=DAY, retry_max_interval=DAY)
        if pause:
            by_id.pause()
    for ident in idents:
        the_activity(
            sync,
            ident,
            lambda a: not a.running and (a.paused if pause else a.next_attempt_at is not None),
            "paused, or waiting out its backoff",
        )
    return handles


def due(sync: perdure.SyncClient, idents: list[str]) -> dict[str, PendingActivityInfo]:
    """Each run's activity as describe() shows it now."""
    return {ident: sync.get_handle(ident).describe().pending_activities[0] for ident in idents}


def printed_due(line: str) -> datetime:
    """The local time a jittered command's line says the next attempt is due at."""
    found = DUE_AT.search(line.strip())
    assert found, line
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").astimezone()  # (naive: local)


def assert_jittered(
    now: dict[str, PendingActivityInfo], start: datetime, end: datetime, span: timedelta
) -> None:
    """Each activity unpaused, its next attempt due within ``span`` of the
    command (from ``start``, before it, to ``end``, after it), at moments
    of their own; not all due by the time they were read."""
    read = datetime.now(UTC)
    nexts = [a.next_attempt_at for a in now.values()]
    assert not any(a.paused for a in now.values()), now
    assert all(n is not None and start <= n <= end + span for n in nexts), (start, end, nexts)
    assert len(set(nexts)) == len(nexts), nexts
    assert any(n is not None and n > read for n in nexts), (read, nexts)  # (not all now)


def test_unpause_by_id_makes_the_next_attempt_due_within_the_jitter(
    db: str, sync: perdure.SyncClient
) -> None:
    idents = [f"ju-{n}" for n in range(1, 6)]
    handles = parked(sync, idents, pause=True)

    start = datetime.now(UTC)
    results = cli_all(*(on(db, "unpause", "-w", i, "-a", "1", "--jitter", "1h") for i in idents))
    end = datetime.now(UTC)
    hour = timedelta(hours=1)
    for ident, done in zip(idents, results, strict=True):
        assert done.returncode == 0, said(done)
        assert done.stdout.startswith(
            f"Unpaused activity 1 of workflow '{ident}': its next attempt is due at "
        ), done.stdout
        assert start.replace(microsecond=0) <= printed_due(done.stdout) <= end + hour
    now = due(sync, idents)
    assert_jittered(now, start, end, hour)
    assert all(a.attempt >= 1 for a in now.values())  # (not counted from 1 again)
    ended(handles)


def test_reset_by_id_makes_the_next_attempt_due_within_the_jitter(
    db: str, sync: perdure.SyncClient
) -> None:
    idents = [f"jr-{n}" for n in range(1, 6)]
    handles = parked(sync, idents, pause=False)  # (not paused: waiting for its next attempt)

    start = datetime.now(UTC)
    results = cli_all(*(on(db, "reset", "-w", i, "-a", "1", "--jitter", "10m") for i in idents))
    end = datetime.now(UTC)
    ten = timedelta(minutes=10)
    for ident, done in zip(idents, results, strict=True):
        assert done.returncode == 0, said(done)
        assert done.stdout.startswith(
            f"Reset activity 1 of workflow '{ident}': attempts count from 1 again; its next "
            "attempt is due at "
        ), done.stdout
        assert start.replace(microsecond=0) <= printed_due(done.stdout) <= end + ten
    now = due(sync, idents)
    assert_jittered(now, start, end, ten)
    assert all(a.attempt == 0 for a in now.values())  # (counted from 1 again)
    ended(handles)


def test_the_batch_unpause_gives_each_activity_a_moment_of_its_own(
    db: str, sync: perdure.SyncClient
) -> None:
    idents = [f"jb-{n:02}" for n in range(1, 21)]
    handles = parked(sync, idents, pause=True)

    start = datetime.now(UTC)
    only = ("--activity-type", "down_for_ever", "--search", "jb-")
    (done,) = cli_all(on(db, "unpause", *only, "--jitter", "1h", "--yes"))
    end = datetime.now(UTC)
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == "Unpaused 20 of 20 activities matched: 0 skipped, 0 failed."
    assert_jittered(due(sync, idents), start, end, timedelta(hours=1))
    ended(handles)


def test_the_batch_reset_gives_each_activity_a_moment_of_its_own(
    db: str, sync: perdure.SyncClient
) -> None:
    waiting, held = ["jt-1", "jt-2", "jt-3"], ["jt-p1", "jt-p2"]
    handles = parked(sync, waiting, pause=False) | parked(sync, held, pause=True)

    start = datetime.now(UTC)
    (done,) = cli_all(on(db, "reset", "--search", "jt-", "--jitter", "10m", "--yes"))
    end = datetime.now(UTC)
    assert done.returncode == 0, said(done)
    assert done.stdout.strip() == "Reset 5 of 5 activities matched: 0 skipped, 0 failed."
    now = due(sync, waiting + held)
    assert_jittered(now, start, end, timedelta(minutes=10))  # (the paused ones unpaused too)
    assert all(a.attempt == 0 for a in now.values())
    ended(handles)


def test_a_jitter_that_is_no_span_is_a_usage_error_that_changes_nothing(
    db: str, sync: perdure.SyncClient
) -> None:
    handles = parked(sync, ["jx-1"], pause=True)
    [before] = due(sync, ["jx-1"]).values()
    by_id = ("-w", "jx-1", "-a", "1")
    batch = ("--search", "jx-", "--yes")
    usage: dict[tuple[str, ...], str] = {
        ("unpause", *by_id, "--jitter", "-5s"): "Invalid value for '--jitter': '-5s': must be 0",
        ("unpause", *by_id, "--jitter", "soon"): "'--jitter': 'soon' is not a duration",
        ("reset", *by_id, "--jitter", "40000d"): "'--jitter': '40000d': must be at most 36525d",
        ("unpause", *batch, "--jitter", "40000d"): "'--jitter': '40000d': must be at most",
        ("reset", *batch, "--jitter=-5s"): "'--jitter': '-5s': must be 0 or more",
        ("reset", *batch, "--jitter", "soon"): "'--jitter': 'soon' is not a duration",
        ("pause", *by_id, "--jitter", "5m"): "No such option: --jitter",
    }
    # A database that is not there (a usage error exits 2 before one is
    # opened), then the real one: nothing is unpaused, nor reset.
    missing = f"sqlite:///{'/nowhere' * 3}/perdure.db"
    cases = [(args, message, url) for url in (missing, db) for args, message in usage.items()]
    results = cli_all(*(on(url, *args) for args, _, url in cases))
    for (args, message, _), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, said(done))
        assert message in said(done), (args, said(done))
    [after] = due(sync, ["jx-1"]).values()
    assert (after.paused, after.attempt, after.next_attempt_at) == (True, before.attempt, None)
    ended(handles)
