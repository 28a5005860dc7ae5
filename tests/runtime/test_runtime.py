"""Pure tests of the replay runtime: no database, virtual time."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from runtime_driver import T0, Driver, kinds

from perdure import _history as h
from perdure import activity, workflow
from perdure._runtime.endings import ForbiddenInWorkflow
from perdure.errors import NonDeterminismError


@activity.defn
async def add(a: int, b: int) -> int:
    return a + b


@activity.defn
async def refund(order: str) -> str:
    return f"refunded {order}"


@workflow.defn
async def adder(x: int) -> int:
    y = await add(x, 1)
    return await add(y, 10)


def test_activity_results_flow_through_turns() -> None:
    d = Driver(adder, 5)
    cmds = d.turn()
    assert kinds(cmds) == ["ScheduleActivity"]
    assert cmds[0].name == "add" and cmds[0].args == [5, 1] and cmds[0].ref == 1
    cmds = d.turn(h.ActivityCompleted(ref=1, result=6))
    assert kinds(cmds) == ["ScheduleActivity"] and cmds[0].args == [6, 10]
    cmds = d.turn(h.ActivityCompleted(ref=2, result=16))
    assert cmds == [h.CompleteWorkflow(16)]
    assert d.instance.closed


def test_replay_reproduces_commands_without_emitting_them() -> None:
    d = Driver(adder, 5)
    d.turn()
    d.turn(h.ActivityCompleted(ref=1, result=6))
    replayed = d.replay()
    # Replayed turns produce nothing new; the instance stands where the original did.
    cmds = replayed.activate(T0 + 1, [h.ActivityCompleted(ref=2, result=16)])
    assert cmds == [h.CompleteWorkflow(16)]


@workflow.defn
async def sleeper() -> float:
    start = workflow.now()
    await workflow.sleep(timedelta(hours=1))
    await asyncio.sleep(30)
    return (workflow.now() - start).total_seconds()


def test_sleep_is_a_durable_timer_on_workflow_time() -> None:
    d = Driver(sleeper)
    cmds = d.turn()
    assert cmds == [h.StartTimer(ref=1, fire_at=T0 + 3600)]
    cmds = d.turn(h.TimerFired(ref=1), advance=3600)
    assert cmds == [h.StartTimer(ref=2, fire_at=T0 + 3630)]
    cmds = d.turn(h.TimerFired(ref=2), advance=31)
    assert cmds == [h.CompleteWorkflow(3631.0)]


@workflow.defn
async def with_deadline() -> str:
    try:
        return str(await asyncio.wait_for(add(1, 2), timeout=60))
    except TimeoutError:
        return "too slow"


def test_wait_for_cancels_its_timer_when_the_activity_wins() -> None:
    d = Driver(with_deadline)
    assert kinds(d.turn()) == ["ScheduleActivity", "StartTimer"]
    cmds = d.turn(h.ActivityCompleted(ref=1, result=3))
    assert cmds == [h.CancelTimer(ref=2), h.CompleteWorkflow("3")]


def test_wait_for_timeout_cancels_the_activity() -> None:
    d = Driver(with_deadline)
    d.turn()
    cmds = d.turn(h.TimerFired(ref=2), advance=60)
    assert cmds == [h.CancelActivity(ref=1), h.CompleteWorkflow("too slow")]
    # A late result for the cancelled activity is ignored.
    d.replay()


@workflow.defn
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(add(i, 100) for i in range(n))))


def test_gather_schedules_in_call_order_and_collects_in_any_order() -> None:
    d = Driver(fan_out, 3)
    cmds = d.turn()
    assert [c.args for c in cmds] == [[0, 100], [1, 100], [2, 100]]
    assert d.turn(h.ActivityCompleted(ref=3, result=102)) == []
    cmds = d.turn(h.ActivityCompleted(ref=1, result=100), h.ActivityCompleted(ref=2, result=101))
    assert cmds == [h.CompleteWorkflow([100, 101, 102])]
    d.replay()


@workflow.defn
async def approver() -> list[str]:
    got = []
    for _ in range(2):
        try:
            got.append(await workflow.wait_signal("approve", timeout=timedelta(days=3)))
        except TimeoutError:
            got.append("timeout")
    return got


def test_signal_before_timeout_wins() -> None:
    d = Driver(approver)
    assert d.turn() == [h.StartTimer(ref=1, fire_at=T0 + 3 * 86400)]
    cmds = d.turn(h.SignalReceived(name="approve", payload="yes"))
    assert cmds == [h.CancelTimer(ref=1), h.StartTimer(ref=2, fire_at=T0 + 3 * 86400)]


def test_timeout_raises_timeout_error() -> None:
    d = Driver(approver)
    d.turn()
    cmds = d.turn(h.TimerFired(ref=1), advance=3 * 86400)
    assert kinds(cmds) == ["StartTimer"]
    cmds = d.turn(h.TimerFired(ref=2), advance=3 * 86400)
    assert cmds == [h.CompleteWorkflow(["timeout", "timeout"])]


@pytest.mark.parametrize("signal_first", [True, False])
def test_a_signal_in_the_same_turn_as_its_timeout_wins(signal_first: bool) -> None:
    # All inputs of a turn are applied before workflow code runs, so a signal
    # that arrived with the timeout is delivered, whatever the order in the batch.
    d = Driver(approver)
    d.turn()
    sig, fired = h.SignalReceived(name="approve", payload="yes"), h.TimerFired(ref=1)
    cmds = d.turn(*((sig, fired) if signal_first else (fired, sig)))
    assert kinds(cmds) == ["StartTimer"]  # the second wait; timer 1 already fired
    cmds = d.turn(h.TimerFired(ref=2))
    assert cmds == [h.CompleteWorkflow(["yes", "timeout"])]
    d.replay()


@workflow.defn
async def impatient(timeout: float) -> list[str]:
    """A wait with a timeout already over: a signal kept from before is
    returned, else it times out in this very turn (no durable timer)."""
    got = []
    for _ in range(2):
        try:
            got.append(await workflow.wait_signal("approve", timeout=timeout))
        except TimeoutError:
            got.append("timeout")
    try:
        async with asyncio.timeout(timeout):
            await workflow.sleep(60)
        got.append("slept")
    except TimeoutError:
        got.append("deadline")
    return got


@pytest.mark.parametrize("timeout", [0.0, -5.0])
def test_a_timeout_already_over_times_out_at_once(timeout: float) -> None:
    """Such a wait had raised AttributeError from the runtime: its due-now
    timer handle, never a durable timer, was cancelled as if it were one."""
    d = Driver(impatient, timeout)
    cmds = d.turn(h.SignalReceived(name="approve", payload="yes"))
    # (The sleep's timer starts before the deadline, due at once, cancels it.)
    assert cmds == [
        h.StartTimer(ref=1, fire_at=T0 + 60),
        h.CancelTimer(ref=1),
        h.CompleteWorkflow(["yes", "timeout", "deadline"]),
    ]
    d.replay()


@workflow.defn
async def nap_of(seconds: str) -> str:
    try:
        await workflow.sleep(float(seconds))  # (a float's text: NaN is no JSON argument)
    except ValueError as exc:
        return str(exc)
    return "woke"


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (float("nan"), "a workflow's timer needs a finite number of seconds, not nan"),
        (float("inf"), "a workflow's timer needs a finite number of seconds, not inf"),
        (1e300, "a workflow's timer must fall due by the end of the year 9999, not in 1e+300"),
    ],
)
def test_a_timer_that_cannot_be_kept_is_refused_in_workflow_code(
    seconds: float, message: str
) -> None:
    """Such a timer had reached the store as a time it could not keep (NaN:
    SQLite's NOT NULL refused the whole commit, so the run's start failed
    with a database error; past the year 9999, describe() raised
    OverflowError for the run's pending timer)."""
    d = Driver(nap_of, repr(seconds))
    [done] = d.turn()
    assert isinstance(done, h.CompleteWorkflow)
    assert done.result.startswith(message)
    d.replay()


def test_a_timer_at_the_latest_second_is_kept() -> None:
    latest = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    d = Driver(nap_of, repr(latest - T0))
    assert d.turn() == [h.StartTimer(ref=1, fire_at=latest)]


@workflow.defn
async def parent_of(option: str) -> str:
    try:
        await workflow.start_child(nap_of, "1", **{option: ""})
    except ValueError as exc:
        return str(exc)
    return "started"


@pytest.mark.parametrize("option", ["id", "task_queue"])
def test_a_child_with_an_empty_id_or_queue_is_refused(option: str) -> None:
    """An empty string had quietly meant the default id or the parent's queue."""
    d = Driver(parent_of, option)
    [done] = d.turn()
    assert isinstance(done, h.CompleteWorkflow)
    assert done.result.startswith(f"{option} must be a non-empty string")
    d.replay()


def test_signals_are_buffered_in_arrival_order() -> None:
    @workflow.defn
    async def collector() -> list[int]:
        await workflow.sleep(10)
        return [await workflow.wait_signal("n") for _ in range(3)]

    d = Driver(collector)
    d.turn(h.SignalReceived(name="n", payload=1))
    d.turn(h.SignalReceived(name="n", payload=2), h.SignalReceived(name="n", payload=3))
    assert d.turn(h.TimerFired(ref=1)) == [h.CompleteWorkflow([1, 2, 3])]


@workflow.defn
async def saga(order: str) -> str:
    try:
        await workflow.wait_signal("ship")
        return "shipped"
    except asyncio.CancelledError:
        await refund(order)
        raise


def test_cancel_reaches_workflow_code_and_compensation_is_recorded() -> None:
    d = Driver(saga, "o-1")
    assert d.turn() == []
    assert d.instance.waiting() == {"signals": ["ship"]}
    cmds = d.turn(h.CancelRequested(reason="customer changed mind"))
    assert kinds(cmds) == ["ScheduleActivity"] and cmds[0].name == "refund"
    cmds = d.turn(h.ActivityCompleted(ref=1, result="refunded o-1"))
    assert cmds == [h.CancelWorkflow()]
    d.replay()


def test_except_exception_does_not_swallow_cancellation() -> None:
    @workflow.defn
    async def stubborn() -> str:
        try:
            await workflow.sleep(100)
        except Exception:
            return "swallowed"
        return "done"

    d = Driver(stubborn)
    d.turn()
    assert d.turn(h.CancelRequested()) == [h.CancelTimer(ref=1), h.CancelWorkflow()]


@workflow.defn
async def failing() -> None:
    await add(1, 1)


def test_activity_failure_surfaces_as_activity_error_and_fails_the_run() -> None:
    d = Driver(failing)
    d.turn()
    failure = {"type": "ValueError", "message": "bad card", "traceback": "", "details": None}
    cmds = d.turn(h.ActivityFailed(ref=1, failure=failure, attempt=3))
    assert kinds(cmds) == ["FailWorkflow"]
    assert cmds[0].failure["type"] == "ActivityError"
    assert "bad card" in cmds[0].failure["message"]


@workflow.defn
async def lucky() -> dict[str, object]:
    r = workflow.random().randint(0, 10**9)
    u = str(workflow.uuid4())
    await workflow.sleep(1)
    return {"r": r, "u": u, "r2": workflow.random().random(), "now": workflow.now().isoformat()}


def test_random_uuid_and_now_replay_identically() -> None:
    d = Driver(lucky)
    d.turn()
    d.turn(h.TimerFired(ref=1), advance=5)
    original = d.result()
    replayed = d.replay()
    assert replayed.closed
    # A second, independent run with another seed differs.
    other = Driver(lucky)
    other.pending[0] = h.WorkflowStarted(workflow_type="lucky", workflow_id="x", run_id="r", seed=7)
    other.turn()
    other.turn(h.TimerFired(ref=1), advance=5)
    assert other.result()["u"] != original["u"]
    # Same seed, same values.
    again = Driver(lucky)
    again.turn()
    again.turn(h.TimerFired(ref=1), advance=5)
    assert again.result() == original


def test_changed_code_raises_non_determinism_naming_both_commands() -> None:
    d = Driver(adder, 5)
    d.turn()
    d.turn(h.ActivityCompleted(ref=1, result=6))

    @workflow.defn(name="adder")
    async def adder_v2(x: int) -> int:
        await workflow.sleep(5)  # a new step inserted before the activity
        return await add(x, 1)

    with pytest.raises(NonDeterminismError) as err:
        d.replay(adder_v2)
    msg = str(err.value)
    assert "ScheduleActivity 'add'" in msg and "StartTimer" in msg
    assert "test_runtime.py" in msg  # the line of workflow code that diverged


def test_removed_step_is_non_determinism() -> None:
    d = Driver(adder, 5)
    d.turn()

    @workflow.defn(name="adder")
    async def adder_v3(x: int) -> int:
        return x

    with pytest.raises(NonDeterminismError) as err:
        d.replay(adder_v3)
    assert "recorded ScheduleActivity 'add'" in str(err.value)
    assert "issued CompleteWorkflow when the workflow function ended" in str(err.value)


def test_missing_command_at_end_of_turn_is_non_determinism() -> None:
    d = Driver(fan_out, 2)
    d.turn()

    @workflow.defn(name="fan_out")
    async def fan_out_v2(n: int) -> list[int]:
        return [await add(0, 100), await workflow.wait_signal("never")]

    with pytest.raises(NonDeterminismError, match="no longer issues it"):
        d.replay(fan_out_v2)


def test_changed_arguments_are_not_non_determinism() -> None:
    d = Driver(adder, 5)
    d.turn()

    @workflow.defn(name="adder")
    async def adder_v4(x: int) -> int:
        y = await add(x, 2)  # a different argument is a legitimate change
        return await add(y, 10)

    d.replay(adder_v4)


def test_eviction_runs_finally_blocks_without_inventing_commands() -> None:
    d = Driver(saga, "o-2")
    d.turn()
    instance = d.instance
    instance.evict()
    assert instance._commands == []
    assert not instance.loop.tasks


def test_io_in_workflow_code_fails_the_turn_with_a_clear_message() -> None:
    """A bug a deploy fixes: the turn fails and is retried, the run kept (it
    had failed the run for good), even when the code catches the error."""

    @workflow.defn
    async def naughty() -> None:
        await asyncio.get_running_loop().run_in_executor(None, print)

    @workflow.defn
    async def swallows() -> str:
        try:
            await asyncio.get_running_loop().run_in_executor(None, print)
        except Exception:
            return "fell back"
        return "ran"

    for fn in (naughty, swallows):
        d = Driver(fn)
        with pytest.raises(ForbiddenInWorkflow) as failed:
            d.turn()
        message = str(failed.value)
        assert "loop.run_in_executor()" in message and "do that work in an activity" in message
        assert "test_runtime.py:" in message and f"in {fn.__name__}" in message
        assert d.history == []  # nothing of the turn is recorded


@pytest.mark.parametrize(
    "method",
    ["sock_recv", "sock_recvfrom", "sock_recvfrom_into", "sock_sendto", "create_connection"],
)
def test_every_io_method_of_the_workflow_loop_fails_clearly(method: str) -> None:
    @workflow.defn
    async def naughty() -> None:
        await getattr(asyncio.get_running_loop(), method)(None, None, None)

    with pytest.raises(ForbiddenInWorkflow, match=rf"loop\.{method}\(\)"):
        Driver(naughty).turn()


def test_logger_is_silent_during_replay(caplog: pytest.LogCaptureFixture) -> None:
    @workflow.defn
    async def chatty() -> None:
        workflow.logger.info("step one")
        await workflow.sleep(1)
        workflow.logger.info("step two")

    caplog.set_level(logging.INFO, logger="perdure.workflow")
    d = Driver(chatty)
    d.turn()
    d.turn(h.TimerFired(ref=1))
    assert [r.getMessage().split("] ")[-1] for r in caplog.records] == ["step one", "step two"]
    caplog.clear()
    d.replay()
    assert caplog.records == []


def test_workflow_api_outside_a_workflow_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="only be called inside workflow code"):
        workflow.now()


def test_activity_outside_a_workflow_just_runs() -> None:
    assert asyncio.run(add(2, 3)) == 5


def test_state_is_published_and_rebuilt_on_replay() -> None:
    @workflow.defn
    async def stages() -> None:
        workflow.set_state("stage", "charging")
        await workflow.sleep(1)
        workflow.set_state("stage", "done")

    d = Driver(stages)
    assert d.turn()[0] == h.SetState("stage", "charging")
    d.turn(h.TimerFired(ref=1))
    assert d.replay().state == {"stage": "done"}


def test_bad_input_payload_fails_the_run_not_the_turn() -> None:
    d = Driver(adder, "not-an-int")
    cmds = d.turn()
    assert kinds(cmds) == ["FailWorkflow"]
    assert cmds[0].failure["type"] == "PayloadError"


@workflow.defn
async def waits_on_everything() -> None:
    async def nap() -> None:
        await asyncio.sleep(3600)

    await asyncio.gather(
        add(1, 2),
        nap(),
        workflow.wait_signal("go", timeout=timedelta(days=1)),
        asyncio.shield(add(3, 4)),
    )


def test_an_evicted_instance_is_freed_without_the_cyclic_collector() -> None:
    """Eviction breaks the instance's reference cycles (its loop, its dead tasks and
    the futures they awaited): a worker evicting thousands of idle runs must not
    leave them all for a full collection (see perdure/_gcpolicy.py)."""
    import gc
    import weakref

    from perdure._converter import default_converter
    from perdure._runtime import WorkflowInstance

    def evicted() -> tuple[weakref.ref[WorkflowInstance], weakref.ref[object]]:
        instance = WorkflowInstance(waits_on_everything, default_converter)
        start = h.WorkflowStarted(workflow_type="waits_on_everything", run_id="r", seed=1)
        commands = instance.activate(T0, [start])
        assert (
            sorted(kinds(commands)) == ["ScheduleActivity", "ScheduleActivity"] + ["StartTimer"] * 2
        )
        instance.evict()
        return weakref.ref(instance), weakref.ref(instance.loop)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        refs = [evicted() for _ in range(3)]
        assert [(a() is None, b() is None) for a, b in refs] == [(True, True)] * 3
    finally:
        if was_enabled:
            gc.enable()
