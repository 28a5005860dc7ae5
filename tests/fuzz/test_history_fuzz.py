"""Corrupted and truncated history rows: a clear error that names the run and the row,
never a crash, and never a crash loop.

Unit level, fuzzed: any text in an event row decodes to an event or raises
HistoryFormatError naming the run and the event. Through the store and a worker: a
run whose history or inbox row is damaged is parked with ``describe().last_error``
saying which row, its task backs off, the same worker keeps serving other runs, and
repairing the row lets the run finish — nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))

from fuzz_workflows import child, echo, interpret
from runtime_driver import LIVE, Driver

import perdure
from perdure import _history as h
from perdure._store import sqlrows


def sample_rows() -> list[str]:
    """The stored rows of a real history that uses most event types."""
    program = [["act", 1], ["sleep", 1.0], ["signal", "a"], ["child", 3], ["side", "x"]]
    driver = Driver(interpret, program)
    try:
        driver.turn()
        driver.turn(h.ActivityCompleted(ref=1, result=1))
        driver.turn(h.TimerFired(ref=2), advance=1.0)
        driver.turn(h.SignalReceived(name="a", payload="p"))
        driver.turn(h.ChildWorkflowStarted(ref=3, workflow_id="c", run_id="r"))
        driver.turn(h.ChildWorkflowCompleted(ref=3, result=4))
        return [sqlrows.event_row("run-1", e)[4] for e in driver.history]
    finally:
        while LIVE:
            LIVE.pop().evict()


ROWS = sample_rows()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def damaged_rows(draw: st.DrawFn) -> str:
    row = draw(st.sampled_from(ROWS))
    how = draw(st.sampled_from(["truncate", "flip", "field", "drop", "anything", "nest"]))
    if how == "truncate":
        return row[: draw(st.integers(0, len(row) - 1))]
    if how == "flip":
        i = draw(st.integers(0, len(row) - 1))
        return row[:i] + draw(st.characters()) + row[i + 1 :]
    if how == "anything":
        return draw(st.text(max_size=40))
    if how == "nest":
        return "[" * draw(st.integers(1, 100_000))
    data = json.loads(row)
    key = draw(st.sampled_from(sorted(data)))
    if how == "drop":
        del data[key]
    else:
        data[key] = draw(json_values)
    return json.dumps(data)


@settings(max_examples=400, deadline=None)
@given(damaged_rows())
def test_a_damaged_row_decodes_or_fails_naming_run_and_row(text: str) -> None:
    try:
        event = sqlrows.event_from_row(text, "run-7", "event #12")
    except h.HistoryFormatError as error:
        assert "run run-7" in str(error) and "event #12" in str(error), error
    else:
        assert isinstance(event, h.Event)


def test_a_field_of_the_wrong_type_is_a_history_format_error() -> None:
    data = json.loads(ROWS[0])  # TurnStarted
    data["seq"] = [1]
    with pytest.raises(h.HistoryFormatError, match=r"run run-1: unreadable event #1"):
        sqlrows.event_from_row(json.dumps(data), "run-1", "event #1")


# ---------------------------------------------------------------- through a worker


@perdure.workflow.defn
async def two_steps(x: int) -> int:
    first = await echo(x)
    second = await perdure.workflow.wait_signal("go")
    return int(first) + int(second)


def replace_row(path: Path, table: str, where: str, params: tuple[Any, ...], data: str) -> str:
    """Overwrite one row's ``data`` from another connection; returns what it held."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        (old,) = conn.execute(f"SELECT data FROM {table} WHERE {where}", params).fetchone()
        conn.execute(f"UPDATE {table} SET data = ? WHERE {where}", (data, *params))
        return str(old)
    finally:
        conn.close()


async def last_error(handle: perdure.WorkflowHandle[Any]) -> str | None:
    return (await handle.describe()).last_error


async def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def worker(client: perdure.Client) -> perdure.Worker:
    return perdure.Worker(
        client, [two_steps, interpret, child], [echo], poll_interval=0.02, lease_timeout=5.0
    )


async def test_damaged_rows_park_their_run_and_the_worker_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    client = await perdure.Client.connect(f"sqlite:///{path}")
    client.poll_interval = 0.02
    try:
        hist = await client.start(two_steps, 1, id="bad-history")
        inbox = await client.start(two_steps, 2, id="bad-inbox")
        async with worker(client):
            for handle in (hist, inbox):
                await wait_for(lambda handle=handle: _waiting(handle), 10, f"{handle.id} to wait")
        # No worker runs: damage a history row of one run and a signal of the other.
        seq3 = ("events", "run_id = ? AND seq = ?", (hist.run_id, 3))
        truncated = json.dumps({"v": 1, "type": "ActivityCompleted", "seq": 3})[:25]
        old_event = replace_row(path, *seq3, truncated)
        await inbox.signal("go", 5)
        await hist.signal("go", 10)
        conn = sqlite3.connect(path)
        (inbox_id,) = conn.execute(
            "SELECT id FROM inbox WHERE run_id = ?", (inbox.run_id,)
        ).fetchone()
        conn.close()
        signal_row = ("inbox", "id = ?", (inbox_id,))
        old_signal = replace_row(path, *signal_row, '{"type": "Signal')
        async with worker(client) as serving:
            # Each damaged run is parked with an error naming the run and the row ...
            error = await wait_for(lambda: last_error(hist), 10, "the history error")
            assert f"run {hist.run_id}: unreadable event #3" in error, error
            error = await wait_for(lambda: last_error(inbox), 10, "the inbox error")
            assert f"run {inbox.run_id}: unreadable inbox row {inbox_id}" in error, error
            # ... while the same worker serves everyone else.
            healthy = await client.start(interpret, [["act", 1], ["sleep", 0.1], ["child", 2]])
            assert await healthy.result(timeout=10) == [1, "slept", 3]
            assert (await hist.describe()).status == "running"
            assert serving.turns.turns_committed > 0
            # Repairing the rows (a backup, a manual fix) lets both runs finish.
            replace_row(path, *seq3, old_event)
            replace_row(path, *signal_row, old_signal)
            assert await hist.result(timeout=80) == 11
            assert await inbox.result(timeout=80) == 7
    finally:
        await client.close()


async def _waiting(handle: perdure.WorkflowHandle[Any]) -> bool:
    return (await handle.describe()).waiting_signals == ["go"]
