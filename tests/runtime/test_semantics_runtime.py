"""Pure runtime tests for children, continue-as-new, versioning, side effects
and repeated cancel requests."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from runtime_driver import Driver, kinds

from perdure import _history as h
from perdure import workflow
from perdure.errors import ChildWorkflowError, NonDeterminismError


@workflow.defn
async def kid(n: int) -> int:
    return n * 2


@workflow.defn
async def parent(n: int) -> int:
    handle = await workflow.start_child(kid, n)
    return await handle + 1


def test_child_lifecycle_through_events() -> None:
    d = Driver(parent, 5)
    [cmd] = d.turn()
    assert isinstance(cmd, h.StartChild)
    assert (cmd.workflow_type, cmd.workflow_id, cmd.args) == ("kid", "wf-1/child-1", [5])
    assert d.turn(h.ChildWorkflowStarted(ref=1, workflow_id="wf-1/child-1", run_id="r")) == []
    assert d.turn(h.ChildWorkflowCompleted(ref=1, result=10)) == [h.CompleteWorkflow(11)]
    d.replay()


def test_child_failure_is_a_child_workflow_error() -> None:
    @workflow.defn
    async def careful() -> str:
        try:
            await workflow.execute_child(kid, 1, id="k")
        except ChildWorkflowError as exc:
            return f"{exc.status}: {exc.cause.message}"
        return "no error"

    d = Driver(careful)
    d.turn()
    d.turn(h.ChildWorkflowStarted(ref=1, workflow_id="k", run_id="r"))
    failure = {"type": "ValueError", "message": "boom"}
    assert d.turn(h.ChildWorkflowFailed(ref=1, status="failed", failure=failure)) == [
        h.CompleteWorkflow("failed: boom")
    ]


def test_child_id_taken_raises_at_start() -> None:
    @workflow.defn
    async def starter() -> str:
        try:
            await workflow.start_child(kid, 1, id="taken")
        except Exception as exc:
            return type(exc).__name__
        return "started"

    d = Driver(starter)
    d.turn()
    cmds = d.turn(h.ChildWorkflowStartFailed(ref=1, failure={"message": "in use"}))
    assert cmds == [h.CompleteWorkflow("WorkflowAlreadyStartedError")]


def test_cancelling_the_parent_cancels_the_awaited_child() -> None:
    d = Driver(parent, 1)
    d.turn()
    d.turn(h.ChildWorkflowStarted(ref=1, workflow_id="wf-1/child-1", run_id="r"))
    assert d.turn(h.CancelRequested()) == [h.CancelChild(ref=1), h.CancelWorkflow()]


@workflow.defn
async def looper(i: int) -> int:
    await workflow.sleep(1)
    if i < 3:
        workflow.continue_as_new(i + 1)
    return i


def test_continue_as_new_is_a_closing_command_not_swallowed_by_except() -> None:
    @workflow.defn
    async def stubborn(i: int) -> int:
        try:
            workflow.continue_as_new(i + 1)
        except Exception:
            return -1
        return -2

    d = Driver(stubborn, 1)
    assert d.turn() == [h.ContinueAsNew(args=[2], kwargs={})]
    d = Driver(looper, 1)
    d.turn()
    assert d.turn(h.TimerFired(ref=1)) == [h.ContinueAsNew(args=[2], kwargs={})]
    d.replay()


def test_continue_as_new_hands_the_signals_no_wait_took_to_the_next_run() -> None:
    """In the order they came, across names; the one a wait took is not among
    them. (Temporal drops such signals unless the code drains them first.)"""

    @workflow.defn
    async def takes_one() -> None:
        await workflow.wait_signal("add")
        workflow.continue_as_new()

    d = Driver(takes_one)
    assert d.turn() == []
    signals = [
        h.SignalReceived(name="add", payload=1),
        h.SignalReceived(name="note", payload={"n": "x"}),
        h.SignalReceived(name="add", payload=2),
    ]
    [command] = d.turn(*signals)
    assert command == h.ContinueAsNew(
        args=[], kwargs={}, signals=(("note", {"n": "x"}), ("add", 2))
    )
    d.replay()


def test_info_reports_history_length_per_turn() -> None:
    lengths: list[int] = []

    @workflow.defn
    async def measure() -> None:
        for _ in range(3):
            lengths.append(workflow.info().history_length)
            await workflow.sleep(1)

    d = Driver(measure)
    d.turn()
    d.turn(h.TimerFired(ref=1))
    d.turn(h.TimerFired(ref=2))
    # The first turn writes WorkflowStarted and StartTimer; each later one
    # its TimerFired and StartTimer (no markers: each turn begins with its input).
    assert lengths == [0, 2, 4]
    lengths.clear()
    d.replay()
    assert lengths == [0, 2, 4]


@workflow.defn(name="versioned")
async def versioned_v1() -> str:
    await workflow.sleep(1)
    return "old"


@workflow.defn(name="versioned")
async def versioned_v2() -> str:
    if workflow.patched("faster"):
        return "new"
    await workflow.sleep(1)
    return "old"


@workflow.defn(name="versioned")
async def versioned_v3() -> str:
    workflow.patched("faster")  # deprecated: only the new branch remains
    return "new"


def test_patched_keeps_old_histories_on_the_old_branch() -> None:
    old = Driver(versioned_v1)
    old.turn()
    old.replay(versioned_v2)  # an old run replays on new code: takes the old branch
    new = Driver(versioned_v2)
    assert new.turn() == [h.RecordPatch("faster"), h.CompleteWorkflow("new")]
    assert new.replay(versioned_v2).closed
    assert new.replay(versioned_v3).closed


def test_removing_the_patch_call_entirely_still_replays_new_histories() -> None:
    @workflow.defn(name="versioned")
    async def versioned_v4() -> str:
        return "new"

    new = Driver(versioned_v2)
    new.turn()
    assert new.replay(versioned_v4).closed


def test_side_effect_is_recorded_once_and_replayed() -> None:
    draws: list[float] = []

    @workflow.defn
    async def flagged() -> float:
        value = workflow.side_effect(random.random)
        draws.append(value)
        await workflow.sleep(1)
        return value

    d = Driver(flagged)
    [record, _timer] = d.turn()
    assert isinstance(record, h.RecordSideEffect) and record.value == draws[0]
    d.turn(h.TimerFired(ref=2))
    d.replay()
    assert draws[1] == draws[0]


def test_side_effect_moved_is_non_determinism() -> None:
    @workflow.defn(name="se")
    async def se_v1() -> Any:
        return workflow.side_effect(lambda: 1)

    @workflow.defn(name="se")
    async def se_v2() -> Any:
        await workflow.sleep(1)
        return workflow.side_effect(lambda: 1)

    d = Driver(se_v1)
    d.turn()
    with pytest.raises(NonDeterminismError, match="RecordSideEffect"):
        d.replay(se_v2)


def test_a_second_cancel_request_does_not_interrupt_compensation() -> None:
    @workflow.defn
    async def saga() -> None:
        try:
            await workflow.sleep(100)
        except asyncio.CancelledError:
            await workflow.sleep(5)  # stands in for a compensating activity
            raise

    d = Driver(saga)
    d.turn()
    assert kinds(d.turn(h.CancelRequested())) == ["CancelTimer", "StartTimer"]
    assert d.turn(h.CancelRequested()) == []  # ignored: compensation goes on
    assert d.turn(h.TimerFired(ref=2)) == [h.CancelWorkflow()]


def test_a_turn_that_never_waits_for_input_fails_instead_of_running_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy loop in workflow code had held the turn, and its worker's event
    loop, for ever. The turn now fails once it has run MAX_TURN_STEPS
    callbacks; given the input it waited for, the same code completes."""
    from perdure._runtime import TurnNeverEnds
    from perdure._runtime import instance as instance_module

    monkeypatch.setattr(instance_module, "MAX_TURN_STEPS", 2_000)

    @workflow.defn
    async def spins() -> str:
        seen: list[Any] = []

        async def listen() -> None:
            seen.append(await workflow.wait_signal("go"))

        listening = asyncio.ensure_future(listen())
        while not seen:
            await asyncio.sleep(0)
        await listening
        return f"went {seen[0]}"

    with pytest.raises(TurnNeverEnds, match="ran 2,000 callbacks in turn 1 without waiting"):
        Driver(spins).turn()
    d = Driver(spins)
    assert d.turn(h.SignalReceived(name="go", payload=1)) == [h.CompleteWorkflow(result="went 1")]
