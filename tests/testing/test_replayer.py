"""Replayer: recorded histories (JSON lists or a database) checked against code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from toolkit_support import THREE_DAYS, greet, wait_until, waits_for_approval

import perdure
from perdure import DataConverter, NonDeterminismError, StoreError, workflow
from perdure._history import HistoryFormatError
from perdure.codecs import AesGcmCodec
from perdure.testing import Replayer, WorkflowEnvironment


@workflow.defn(name="waits_for_approval")
async def approval_that_greets_first(order: str) -> str:
    """An incompatible change: an activity now comes before the signal wait."""
    await greet("manager")
    try:
        decision = await workflow.wait_signal("approval", timeout=THREE_DAYS)
    except TimeoutError:
        return f"{order}: escalated"
    return f"{order}: {decision}"


@workflow.defn(name="waits_for_approval")
async def approval_with_new_wording(order: str) -> str:
    """A compatible change: same commands, different result text."""
    try:
        decision = await workflow.wait_signal("approval", timeout=THREE_DAYS)
    except TimeoutError:
        return f"{order} was escalated"
    return f"{order} was {decision}"


async def recorded_history(signal: bool) -> list[dict[str, object]]:
    async with WorkflowEnvironment([waits_for_approval]) as env:
        handle = await env.start(waits_for_approval, "o-1", id="o-1")
        if signal:
            await handle.signal("approval", "approved")
        await handle.result()
        history = await handle.history()
    decoded: list[dict[str, object]] = json.loads(json.dumps(history))
    return decoded  # exactly what a JSON file holds


async def test_a_history_replays_against_the_code_that_wrote_it() -> None:
    for signal in (True, False):
        result = Replayer([waits_for_approval]).replay(await recorded_history(signal))
        assert result.ok and result.error is None
        assert (result.workflow_id, result.workflow_type) == ("o-1", "waits_for_approval")
        result.raise_for_error()  # does nothing


async def test_an_incompatible_change_is_reported_with_the_first_mismatch() -> None:
    history = await recorded_history(signal=True)
    result = Replayer([approval_that_greets_first]).replay(history)
    assert not result.ok
    assert result.error_type == "NonDeterminismError"
    assert result.error is not None
    assert "history recorded" in result.error
    assert "the workflow code issued ScheduleActivity 'greet' (ref 1)" in result.error
    assert "test_replayer.py" in result.error  # the line of code that diverged
    with pytest.raises(NonDeterminismError):
        result.raise_for_error()


async def test_a_compatible_change_replays() -> None:
    for signal in (True, False):
        result = Replayer([approval_with_new_wording]).replay(await recorded_history(signal))
        assert result.ok, result.error


ORDER = {"skus": ["a", "b"]}  # what the code below iterates over: a set's order stands in


@workflow.defn(name="reserves")
async def reserves() -> list[str]:
    return [await greet(sku) for sku in ORDER["skus"]]


async def test_activities_replayed_with_other_arguments_are_warned_about() -> None:
    """Code may change what it passes to an activity, so the replay passes;
    but each such activity gets the result recorded for the old arguments,
    silently wrong if the change was not meant (a set's order differs from
    one process to the next). The result says so."""
    async with WorkflowEnvironment([reserves], [greet]) as env:
        handle = await env.start(reserves, id="r-1")
        assert await handle.result() == ["hello a", "hello b"]
        history = json.loads(json.dumps(await handle.history()))
    assert Replayer([reserves]).replay(history).warnings == ()
    ORDER["skus"] = ["b", "a"]
    try:
        result = Replayer([reserves]).replay(history)
    finally:
        ORDER["skus"] = ["a", "b"]
    assert result.ok, result.error
    assert len(result.warnings) == 2
    first = result.warnings[0]
    assert "ScheduleActivity 'greet' (ref 1)" in first and "test_replayer.py" in first
    assert "recorded with ('a',), replayed with ('b',)" in first


async def test_arguments_sealed_by_a_codec_are_compared_by_what_they_hold() -> None:
    """An encrypting codec seals the same arguments differently each time (a
    new nonce): that is not other arguments."""
    sealed = DataConverter([AesGcmCodec({"k1": bytes(range(32))}, active="k1")])
    async with WorkflowEnvironment([reserves], [greet], converter=sealed) as env:
        handle = await env.start(reserves, id="r-2")
        assert await handle.result() == ["hello a", "hello b"]
        history = await handle.history()
    assert "__perdure_codec__" in json.dumps(history)
    assert Replayer([reserves], converter=sealed).replay(history).warnings == ()
    ORDER["skus"] = ["b", "a"]
    try:
        result = Replayer([reserves], converter=sealed).replay(history)
    finally:
        ORDER["skus"] = ["a", "b"]
    assert len(result.warnings) == 2


async def test_replay_file_reads_the_json_a_history_export_writes(tmp_path: Path) -> None:
    path = tmp_path / "o-1.json"
    path.write_text(json.dumps(await recorded_history(signal=False)))
    assert Replayer([waits_for_approval]).replay_file(path).ok
    path.write_text("[{")
    with pytest.raises(HistoryFormatError, match=r"o-1\.json"):
        Replayer([waits_for_approval]).replay_file(path)
    with pytest.raises(ValueError, match="cannot read history file"):
        Replayer([waits_for_approval]).replay_file(tmp_path / "missing.json")


async def test_input_that_is_not_a_replayable_history_is_refused() -> None:
    replayer = Replayer([waits_for_approval])
    history = await recorded_history(signal=False)
    with pytest.raises(HistoryFormatError, match="list of event objects"):
        replayer.replay({"events": history})  # type: ignore[arg-type]
    with pytest.raises(HistoryFormatError, match="empty"):
        replayer.replay([])
    with pytest.raises(HistoryFormatError, match=r"event \[1\].*unknown event type 'Nope'"):
        replayer.replay([history[0], {"v": 1, "type": "Nope"}])
    with pytest.raises(HistoryFormatError, match="no WorkflowStarted"):
        replayer.replay([e for e in history if e["type"] != "WorkflowStarted"])
    with pytest.raises(ValueError, match="'waits_for_approval', which is not among"):
        Replayer([greet_workflow]).replay(history)
    with pytest.raises(ValueError, match="at least one workflow"):
        Replayer([])
    with pytest.raises(TypeError, match="not a workflow"):
        Replayer([greet])


@workflow.defn
async def greet_workflow(name: str) -> str:
    return await greet(name)


async def test_replay_db_checks_every_run_of_the_registered_workflows(
    perdure_client: perdure.Client, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'perdure.db'}"
    async with perdure.Worker(
        perdure_client, [waits_for_approval, greet_workflow], [greet], poll_interval=0.02
    ):
        done = await perdure_client.start(waits_for_approval, "o-1", id="done")
        await done.signal("approval", "approved")
        assert await done.result(timeout=10) == "o-1: approved"
        waiting = await perdure_client.start(waits_for_approval, "o-2", id="waiting")

        async def is_waiting() -> bool:
            return (await waiting.describe()).waiting_signals == ["approval"]

        await wait_until(is_waiting, what="the open run's signal wait")
        assert await perdure_client.execute(greet_workflow, "ada", id="greet") == "hello ada"

    results = await Replayer([waits_for_approval, greet_workflow]).replay_db(url)
    assert [(r.workflow_id, r.ok) for r in results] == [
        ("done", True),
        ("waiting", True),  # open runs are replayed too: they will replay on the new code
        ("greet", True),
    ]
    changed = await Replayer([approval_that_greets_first, greet_workflow]).replay_db(
        url, workflow="waits_for_approval"
    )
    assert [(r.workflow_id, r.ok) for r in changed] == [("done", False), ("waiting", False)]
    assert all("ScheduleActivity 'greet'" in (r.error or "") for r in changed)

    future = datetime.now(UTC) + timedelta(hours=1)
    assert await Replayer([waits_for_approval]).replay_db(url, since=future) == []
    with pytest.raises(ValueError, match="not among"):
        await Replayer([waits_for_approval]).replay_db(url, workflow="greet_workflow")
    with pytest.raises(StoreError, match="no SQLite database"):
        await Replayer([waits_for_approval]).replay_db(f"sqlite:///{tmp_path / 'nope.db'}")


@workflow.defn(name="waits_for_approval")
async def approval_that_spins(order: str) -> str:
    """Code that never awaits (a busy loop) where the history has a wait."""
    while order:
        pass
    return order


@workflow.defn(name="waits_for_approval")
async def approval_that_exits(order: str) -> str:
    import sys

    sys.exit(f"bad arguments for {order}")


async def test_code_that_never_awaits_is_reported_not_hung() -> None:
    """A busy loop on the replayed path had hung the replay (and `perdure
    replay` in a deploy check) for ever; it is interrupted as a worker
    interrupts it, and reported."""
    history = await recorded_history(signal=True)
    result = Replayer([approval_that_spins], deadlock_timeout=0.2).replay(history)
    assert not result.ok
    assert result.error_type == "TurnBlocked"
    assert result.error is not None and "without awaiting" in result.error
    assert "test_replayer.py" in result.error and "in approval_that_spins" in result.error


async def test_code_that_exits_is_reported_and_the_replay_goes_on() -> None:
    history = await recorded_history(signal=True)
    result = Replayer([approval_that_exits]).replay(history)
    assert not result.ok
    assert result.error_type == "ExitInWorkflow"
    assert result.error is not None and "SystemExit('bad arguments for o-1')" in result.error


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), "1"])
def test_a_replayer_refuses_a_deadlock_timeout_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="deadlock_timeout must be a positive number"):
        Replayer([waits_for_approval], deadlock_timeout=bad)  # type: ignore[arg-type]
