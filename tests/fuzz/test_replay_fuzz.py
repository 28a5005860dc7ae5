"""Replay fuzzing: random workflow shapes replay to identical commands.

Hypothesis writes a program for the interpreter workflow (``fuzz_workflows``) and plays
the outside world: which activity results, timer firings, child events and signals
arrive, in which batches and in which order, and which activities fail. The pure
runtime driver (``tests/runtime/runtime_driver.py``) records the history. Then:

- ``replay_history`` replays the whole history without a NonDeterminismError and ends
  in the same state (closed, with the same result);
- after *every* turn boundary, a fresh instance that replayed the turns before it and
  then runs the next turn live issues exactly the commands that turn recorded — which
  is what a worker does after it lost its cached instance (a crash, an eviction).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))

from fuzz_workflows import interpret
from runtime_driver import LIVE, Driver

from perdure import _history as h
from perdure._converter import default_converter
from perdure._runtime import WorkflowInstance, replay_history

MAX_TURNS = 400
seconds = st.integers(1, 40).map(lambda n: n / 10)
small_json = st.none() | st.booleans() | st.integers(-5, 5) | st.text("ab", max_size=3)
leaf = st.one_of(
    st.tuples(st.just("act"), small_json),
    st.tuples(st.just("try_act"), small_json),
    st.tuples(st.just("sleep"), seconds),
    st.tuples(st.just("gather"), st.lists(small_json, min_size=1, max_size=3)),
    st.tuples(st.just("signal"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("signal_or_timeout"), st.sampled_from(["a", "b"]), seconds),
    st.tuples(st.just("child"), st.integers(0, 9)),
    st.tuples(st.just("side"), small_json),
    st.tuples(st.just("state"), st.sampled_from(["k1", "k2"]), small_json),
    st.tuples(st.just("random")),
    st.tuples(st.just("now")),
    st.tuples(st.just("uuid")),
    st.tuples(st.just("patched"), st.sampled_from(["p1", "p2"])),
    st.tuples(st.just("race"), small_json, seconds),
).map(list)
programs = st.recursive(
    st.lists(leaf, min_size=1, max_size=8),
    lambda inner: st.lists(
        leaf | st.tuples(st.just("spawn"), inner).map(list), min_size=2, max_size=8
    ),
    max_leaves=30,
)


def signals_needed(program: list[Any]) -> Counter[str]:
    needed: Counter[str] = Counter()
    for step in program:
        if step[0] in ("signal", "signal_or_timeout"):
            needed[step[1]] += 1
        elif step[0] == "spawn":
            needed += signals_needed(step[1])
    return needed


class World:
    """The outside world of one run: answers the commands, in an order hypothesis picks."""

    def __init__(self, data: st.DataObject, program: list[Any]) -> None:
        self.data = data
        self.driver = Driver(interpret, program)
        self.activities: dict[int, Any] = {}
        self.timers: dict[int, float] = {}
        self.children: dict[int, tuple[str, int]] = {}  # ref -> (stage, n)
        self.signals = [name for name, n in signals_needed(program).items() for _ in range(n)]

    def absorb(self, commands: list[h.Command]) -> None:
        for c in commands:
            if isinstance(c, h.ScheduleActivity):
                self.activities[c.ref] = c.args[0]
            elif isinstance(c, h.CancelActivity):
                self.activities.pop(c.ref, None)
            elif isinstance(c, h.StartTimer):
                self.timers[c.ref] = c.fire_at
            elif isinstance(c, h.CancelTimer):
                self.timers.pop(c.ref, None)
            elif isinstance(c, h.StartChild):
                self.children[c.ref] = ("requested", default_converter.from_json(c.args[0]))
            elif isinstance(c, h.CancelChild):
                self.children.pop(c.ref, None)

    def candidates(self) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = [("activity", ref) for ref in sorted(self.activities)]
        found += [("timer", ref) for ref in sorted(self.timers)]
        found += [("child", ref) for ref in sorted(self.children)]
        found += [("signal", i) for i in range(len(self.signals))]
        return found

    def event(self, kind: str, key: Any) -> h.Event:
        if kind == "activity":
            value = self.activities.pop(key)
            if self.data.draw(st.integers(0, 11), label="fail?") == 0:
                failure = {"type": "Boom", "message": "planned", "traceback": ""}
                return h.ActivityFailed(ref=key, failure=failure, attempt=3)
            return h.ActivityCompleted(ref=key, result=value)
        if kind == "timer":
            self.timers.pop(key)
            return h.TimerFired(ref=key)
        if kind == "child":
            stage, n = self.children[key]
            if stage == "requested":
                self.children[key] = ("started", n)
                return h.ChildWorkflowStarted(ref=key, workflow_id=f"c{key}", run_id=f"r{key}")
            del self.children[key]
            return h.ChildWorkflowCompleted(ref=key, result=default_converter.to_json(n + 1))
        name = self.signals.pop(key)
        return h.SignalReceived(name=name, payload=f"{name}!")

    def run(self) -> None:
        self.absorb(self.driver.turn())
        for _ in range(MAX_TURNS):
            if self.driver.instance.closed:
                return
            options = self.candidates()
            assert options, f"the workflow waits for nothing the world can give: {self}"
            picked = self.data.draw(
                st.lists(st.sampled_from(options), min_size=1, max_size=4, unique=True),
                label="batch",
            )
            # Signals and child events are taken by position: resolve the highest first.
            inputs = [
                self.event(kind, key)
                for kind, key in sorted(picked, key=lambda p: (p[0] == "signal", -p[1]))
            ]
            order = self.data.draw(st.permutations(inputs), label="order")
            due = [self.driver.time]
            advance = self.data.draw(st.sampled_from([0.0, 0.05, 1.0]), label="advance")
            for event in order:
                if isinstance(event, h.TimerFired):
                    due.append(self._fired_at(event.ref))
            self.absorb(self.driver.turn(*order, advance=max(advance, max(due) - self.driver.time)))
        pytest.fail(f"the run did not close within {MAX_TURNS} turns")

    def _fired_at(self, ref: int) -> float:
        for event in self.driver.history:
            if isinstance(event, h.TimerStarted) and event.ref == ref:
                return event.fire_at
        raise AssertionError(f"timer {ref} fired but never started")


def plain(events: list[h.Event]) -> list[h.Event]:
    return [dataclasses.replace(e, seq=0, time=0.0) for e in events]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs, st.data())
def test_random_workflow_shapes_replay_to_identical_commands(
    program: list[Any], data: st.DataObject
) -> None:
    world = World(data, program)
    try:
        world.run()
        history = world.driver.history
        assert isinstance(history[-1], h.CLOSING_EVENTS), history[-1]

        replayed = replay_history(interpret, history, default_converter)
        LIVE.append(replayed)
        assert replayed.closed

        turns = h.split_turns(history)
        hypothesis.event(f"turns: {min(len(turns) // 5 * 5, 30)}+")
        closing = history[-1]
        why = f" ({closing.failure.get('type')})" if isinstance(closing, h.WorkflowFailed) else ""
        hypothesis.event(f"closed by: {closing.TYPE}{why}")
        for k, turn in enumerate(turns):
            fresh = WorkflowInstance(interpret, default_converter)
            LIVE.append(fresh)
            for earlier in turns[:k]:
                fresh.activate(
                    earlier.time, earlier.inputs, earlier.commands, earlier.events_before
                )
            live = fresh.activate(turn.time, turn.inputs, history_length=turn.events_before)
            assert plain([c.to_event() for c in live]) == plain(turn.commands), (
                f"turn {k + 1} of {len(turns)} issued different commands after a replay"
            )
    finally:
        while LIVE:
            LIVE.pop().evict()
