"""A recorded payload that the worker's converter cannot open (stored through
codecs it lacks: a key added by a deploy that has not reached it) fails the
turn, never the run, wherever workflow code would receive it: the workflow's
arguments, an activity's or a child's result, a signal, a side effect. Code
that catches every Exception does not take it for the value's own failure.
A converter with the codecs then runs the same turn to its end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from runtime_driver import LIVE, T0

from perdure import DataConverter, activity, workflow
from perdure import _history as h
from perdure._converter import default_converter
from perdure._runtime import WorkflowInstance
from perdure._runtime.endings import UnreadablePayload
from perdure.codecs import ZlibCodec

SEALED = DataConverter([ZlibCodec(min_size=0)])


def sealed(value: Any) -> Any:
    """``value`` as a writer with a codec stores it: an envelope."""
    return SEALED.to_json(value)


@activity.defn
async def fetch() -> str:
    return "fetched"


@workflow.defn
async def takes(word: str) -> str:
    return word.upper()


@workflow.defn
async def awaits_activity() -> str:
    try:
        return await fetch()
    except Exception as exc:  # must not see the unreadable result as the activity's failure
        return f"caught {exc!r}"


@workflow.defn
async def awaits_signal() -> str:
    try:
        return str(await workflow.wait_signal("word"))
    except Exception as exc:
        return f"caught {exc!r}"


@workflow.defn
async def kid() -> str:
    return "kid"


@workflow.defn
async def awaits_child() -> str:
    try:
        return await workflow.execute_child(kid, id="k")
    except Exception as exc:
        return f"caught {exc!r}"


@workflow.defn
async def side() -> str:
    try:
        value = workflow.side_effect(lambda: "drawn")
    except Exception as exc:
        return f"caught {exc!r}"
    await workflow.sleep(1)
    return value


def start(fn: Callable[..., Any], *args: Any) -> h.WorkflowStarted:
    return h.WorkflowStarted(
        workflow_type=fn.__name__, workflow_id="wf", run_id="r", args=list(args), seed=7
    )


def turns(fn: Callable[..., Any], converter: DataConverter, *inputs: list[h.Event]) -> Any:
    """Run one turn per list of ``inputs`` on a new instance; the last turn's commands."""
    instance = WorkflowInstance(fn, converter)
    LIVE.append(instance)
    commands: list[h.Command] = []
    for time, batch in enumerate(inputs):
        commands = instance.activate(T0 + time, batch)
    return commands


def unreadable(fn: Callable[..., Any], *inputs: list[h.Event]) -> str:
    """The message of the turn failure the converter without codecs meets."""
    with pytest.raises(UnreadablePayload) as caught:
        turns(fn, default_converter, *inputs)
    message = str(caught.value)
    assert "the turn is tried again" in message
    return message


def completed(commands: list[h.Command]) -> Any:
    """The result of the one CompleteWorkflow in ``commands`` (as SEALED wrote it)."""
    [command] = commands
    assert isinstance(command, h.CompleteWorkflow), command
    return SEALED.from_json(command.result)


def test_arguments() -> None:
    inputs = [start(takes, sealed("word"))]
    assert "argument 'word' of takes" in unreadable(takes, inputs)
    assert completed(turns(takes, SEALED, inputs)) == "WORD"


def test_an_activitys_result() -> None:
    done = h.activity_completed(1, sealed("fetched"), 1, [])
    inputs = [[start(awaits_activity)], [done]]
    assert "result of fetch" in unreadable(awaits_activity, *inputs)
    assert completed(turns(awaits_activity, SEALED, *inputs)) == "fetched"


def test_a_signal() -> None:
    inputs = [[start(awaits_signal)], [h.SignalReceived(name="word", payload=sealed("hi"))]]
    assert "signal 'word'" in unreadable(awaits_signal, *inputs)
    assert completed(turns(awaits_signal, SEALED, *inputs)) == "hi"


def test_a_childs_result() -> None:
    inputs = [
        [start(awaits_child)],
        [h.ChildWorkflowStarted(ref=1, workflow_id="k", run_id="kr")],
        [h.ChildWorkflowCompleted(ref=1, result=sealed("kid"))],
    ]
    assert "result of kid" in unreadable(awaits_child, *inputs)
    assert completed(turns(awaits_child, SEALED, *inputs)) == "kid"


def test_a_side_effect_replayed() -> None:
    recorder = WorkflowInstance(side, SEALED)
    LIVE.append(recorder)
    commands = recorder.activate(T0, [start(side)])
    recorded = [c for c in commands if isinstance(c, h.RecordSideEffect)]
    assert len(recorded) == 1 and recorded[0].value != "drawn"  # an envelope
    history = h.turn_events(0, T0, [start(side)], commands, False)
    [turn] = h.split_turns(history)
    replayer = WorkflowInstance(side, default_converter)
    LIVE.append(replayer)
    with pytest.raises(UnreadablePayload, match="side effect"):
        replayer.activate(turn.time, turn.inputs, turn.commands, turn.events_before)
