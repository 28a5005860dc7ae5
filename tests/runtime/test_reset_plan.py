"""Where a run may be reset (perdure._history.reset), on histories written
turn by turn as a worker writes them."""

from __future__ import annotations

import dataclasses

import pytest

from perdure import _history as h


def history(*turns: tuple[list[h.Event], list[h.Event]]) -> list[h.Event]:
    """Number the events of ``turns`` ((inputs, commands) each) as a worker
    appends them: a marker only before a turn that follows an input."""
    out: list[h.Event] = []
    for i, (inputs, commands) in enumerate(turns):
        out += h.turn_events(len(out), float(i), inputs, [], marked=h.needs_marker(out))
        for event in commands:
            out.append(_numbered(event, len(out) + 1, float(i)))
    return out


def _numbered(event: h.Event, seq: int, time: float) -> h.Event:
    return dataclasses.replace(event, seq=seq, time=time)


def started() -> h.WorkflowStarted:
    return h.WorkflowStarted(workflow_type="wf", workflow_id="w", run_id="old", seed=7)


def scheduled(ref: int, name: str = "step") -> h.ActivityScheduled:
    return h.ActivityScheduled(ref=ref, name=name)


def done(ref: int) -> h.ActivityCompleted:
    return h.ActivityCompleted(ref=ref, result=ref)


def failed(ref: int) -> h.ActivityFailed:
    return h.ActivityFailed(ref=ref, failure={"type": "RuntimeError", "message": "down"})


def sequential(steps: int, last: h.Event | None = None) -> list[h.Event]:
    """A workflow of ``steps`` activities one after another; ``last``: the
    input of its final turn (the last step's outcome), which fails it."""
    turns: list[tuple[list[h.Event], list[h.Event]]] = [([started()], [scheduled(1)])]
    for ref in range(1, steps):
        turns.append(([done(ref)], [scheduled(ref + 1)]))
    if last is not None:
        turns.append(([last], [h.WorkflowFailed(failure={"type": "ActivityError"})]))
    return history(*turns)


def test_every_turn_of_a_sequential_run_is_a_reset_point() -> None:
    events = sequential(4, failed(4))
    firsts = [t.events_before + 1 for t in h.split_turns(events)]
    assert h.reset_points(events) == firsts == [1, 3, 5, 7, 9]


def test_the_default_point_schedules_again_the_activity_that_failed() -> None:
    events = sequential(4, failed(4))
    plan = h.plan_reset(events, [], None, "new", "api back")
    # The turn that took step 3's result, and scheduled step 4, is taken again.
    assert plan.at_seq == 7
    assert [e.seq for e in plan.kept] == list(range(1, 7))
    assert [type(e) for e in plan.inputs] == [h.ActivityCompleted, h.WorkflowReset]
    assert plan.inputs[0].ref == 3
    marker = plan.inputs[-1]
    assert isinstance(marker, h.WorkflowReset)
    assert (marker.from_run_id, marker.at_seq, marker.reason) == ("old", 7, "api back")
    assert marker.idempotency_run_id == "old"
    # The new run's WorkflowStarted names it; the rest is the old run's.
    first = plan.kept[0]
    assert isinstance(first, h.WorkflowStarted)
    assert (first.run_id, first.seed, first.workflow_id) == ("new", 7, "w")
    assert plan.kept[1:] == events[1:6]


def test_a_run_that_failed_in_its_code_goes_back_to_its_last_turn() -> None:
    # The last turn took a result and failed the run itself (a bug, since fixed).
    events = sequential(3, done(3))
    assert h.plan_reset(events, [], None, "new", None).at_seq == len(events) - 1


def test_the_default_point_skips_a_cancel_request_and_a_failed_child() -> None:
    child = h.ChildWorkflowRequested(ref=2, workflow_type="c", workflow_id="c-1")
    events = history(
        ([started()], [scheduled(1)]),
        ([done(1)], [child]),
        ([h.ChildWorkflowFailed(ref=2, failure={})], [scheduled(3)]),
        ([h.CancelRequested(reason="stop")], [h.WorkflowCancelled()]),
    )
    # Turn 4 took a cancel (and activity 3 was outstanding), turn 3 a failed
    # child: turn 2, which started the child, is taken again.
    assert h.reset_points(events) == [1, 3, 5]
    assert h.plan_reset(events, [], None, "new", None).at_seq == 3


def test_a_point_inside_a_fan_out_is_refused_with_the_nearest_usable_one() -> None:
    events = history(
        ([started()], [scheduled(1, "a"), scheduled(2, "b")]),
        ([done(1)], []),
        ([done(2)], [scheduled(3)]),
    )
    assert h.reset_points(events) == [1, 5]
    with pytest.raises(h.ResetPointError) as caught:
        h.plan_reset(events, [], 4, "new", None)
    message = str(caught.value)
    assert "activity 'b' (ref 2)" in message
    assert "nearest earlier point is event 1" in message
    # Event 6 (b's result) is in a turn that can be used: b has come back.
    assert h.plan_reset(events, [], 6, "new", None).at_seq == 5


def test_a_timer_or_a_child_outstanding_blocks_a_point() -> None:
    child = h.ChildWorkflowRequested(ref=2, workflow_type="c", workflow_id="c-1")
    events = history(
        ([started()], [h.TimerStarted(ref=1, fire_at=5.0), child]),
        ([h.ChildWorkflowStarted(ref=2, workflow_id="c-1", run_id="r")], []),
        ([h.TimerFired(ref=1)], []),
        ([h.ChildWorkflowCompleted(ref=2, result=None)], [h.WorkflowCompleted()]),
    )
    with pytest.raises(h.ResetPointError, match=r"a timer \(ref 1\), child workflow 'c-1'"):
        h.plan_reset(events, [], 4, "new", None)
    with pytest.raises(h.ResetPointError, match=r"child workflow 'c-1' \(ref 2\)"):
        h.plan_reset(events, [], 5, "new", None)
    assert h.reset_points(events) == [1, 7]


def test_signals_that_came_after_the_point_are_sent_again() -> None:
    def signal(value: str) -> h.SignalReceived:
        return h.SignalReceived(name="item", payload=value)

    events = history(
        ([started()], [scheduled(1)]),
        ([done(1), signal("a")], [scheduled(2)]),
        ([signal("b")], []),
        ([failed(2)], [h.WorkflowFailed(failure={})]),
    )
    unread = [signal("d")]
    plan = h.plan_reset(events, unread, 3, "new", None)
    # Turn 2's own inputs are taken again; b (turn 3) and d (unread) are sent again.
    assert [getattr(e, "payload", None) for e in plan.inputs] == [None, "a", None]
    assert [e.payload for e in plan.signals] == ["b", "d"]  # type: ignore[attr-defined]


def test_resetting_to_the_first_turn_starts_the_run_over() -> None:
    events = sequential(2, failed(2))
    plan = h.plan_reset(events, [], 1, "new", None)
    assert plan.at_seq == 1 and plan.kept == []
    first = plan.inputs[0]
    assert isinstance(first, h.WorkflowStarted) and first.run_id == "new"


def test_a_reset_of_a_reset_keeps_the_first_runs_keys() -> None:
    marker = h.WorkflowReset(from_run_id="first", at_seq=3, idempotency_run_id="first")
    events = history(
        ([started()], [scheduled(1)]),
        ([done(1), marker], [scheduled(2)]),
        ([failed(2)], [h.WorkflowFailed(failure={})]),
    )
    plan = h.plan_reset(events, [], None, "third", None)
    new_marker = plan.inputs[-1]
    assert isinstance(new_marker, h.WorkflowReset)
    assert new_marker.idempotency_run_id == "first" and new_marker.from_run_id == "old"


@pytest.mark.parametrize("seq", [0, -1, 99])
def test_an_event_the_run_does_not_have_is_refused(seq: int) -> None:
    events = sequential(2, failed(2))
    with pytest.raises(h.ResetPointError, match=rf"no event {seq} \(its events are 1 to 6\)"):
        h.plan_reset(events, [], seq, "new", None)


def test_a_terminated_runs_end_marker_is_no_point() -> None:
    events = sequential(2)
    events.append(h.WorkflowTerminated(seq=len(events) + 1, reason="stuck"))
    assert h.plan_reset(events, [], None, "new", None).at_seq == 3
    with pytest.raises(h.ResetPointError, match="end marker"):
        h.plan_reset(events, [], len(events), "new", None)


def test_a_run_a_reset_made_needs_a_point_until_its_first_turn() -> None:
    # Run B, made by a reset at event 7, has the old run's events 1-6 and its
    # inputs still unread: its own default point would be older than 7.
    events = sequential(4, failed(4))
    made = h.plan_reset(events, [], None, "b", None)
    unread = [*made.inputs, *made.signals]
    with pytest.raises(h.ResetPointError, match="has not run its first turn yet"):
        h.plan_reset(made.kept, unread, None, "c", None)
    assert h.plan_reset(made.kept, unread, 3, "c", None).at_seq == 3


def test_a_point_inside_a_wide_fan_out_names_a_few_and_counts_the_rest() -> None:
    turns: list[tuple[list[h.Event], list[h.Event]]] = [
        ([started()], [scheduled(ref) for ref in range(1, 1001)])
    ]
    turns += [([done(ref)], []) for ref in range(1, 1001)]
    events = history(*turns)
    assert h.reset_points(events) == [1, events[-1].seq - 1]  # (the last result's turn)
    # The third turn (event 1004, b's result): refs 3 to 1000 still out.
    message = r"\(ref 3\), .*\(ref 7\) and 993 more: a new run.*nearest earlier point is event 1$"
    with pytest.raises(h.ResetPointError, match=message):
        h.plan_reset(events, [], 1004, "new", None)
