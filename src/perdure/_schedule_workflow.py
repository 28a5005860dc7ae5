"""The workflow behind every schedule (``perdure.schedule``) and the activity
that starts its runs (``perdure.schedule.start``), which every Worker
registers. The workflow sleeps until its next time, starts that time's run
through the activity, and obeys the pause, unpause, trigger and update
signals; it continues as new after ``spec.max_history`` events. Its commands
must keep replaying across perdure versions (tests/golden holds a recorded
history). See perdure.schedules and docs/schedules.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure import activity, workflow
from perdure._checks import check_name
from perdure._retention import add_retention, delete_closed_workflow
from perdure._schedule_spec import (
    MAX_EVERY,
    MIN_CATCHUP_WINDOW,
    OVERLAPS,
    RECENT,
    SCHEDULE_WORKFLOW,
    SIGNAL,
    START_ACTIVITY,
    STATE_KEY,
    ScheduledRun,
    ScheduleSpec,
    ScheduleState,
    check_jitter,
    count_times,
    iso,
    latest_time,
    next_time,
    start_time,
)
from perdure.activity import ActivityFunction
from perdure.errors import WorkflowNotFoundError
from perdure.retry import RetryPolicy
from perdure.workflow import definition_of

if TYPE_CHECKING:
    from perdure.client import Client


@dataclass
class _StartRequest:
    workflow: str
    args: list[Any]
    task_queue: str
    workflow_id: str
    previous: list[str] | None  # overlap "skip": the run that must have ended first


@dataclass
class _Started:
    run_id: str | None
    skipped: str | None = None


@activity.defn(
    name=START_ACTIVITY,
    start_to_close_timeout=timedelta(seconds=60),
    retry=RetryPolicy(max_interval=timedelta(seconds=30)),
)
async def _start_run(request: _StartRequest) -> _Started:
    """Stands for the activity each worker registers under this name, bound
    to its client (``_starter``); never run itself."""
    raise RuntimeError("perdure.schedule.start runs only in a worker")


class _Starter:
    """The start activity of one worker: starts a schedule's run with the
    worker's client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def start(self, request: _StartRequest) -> _Started:
        client = self.client
        if request.previous is not None:
            # Its id's latest run: a run that continued as new runs on in it.
            # (Gone, deleted by a retention job: not running either.)
            previous = client.get_handle(request.previous[0])
            try:
                running = (await previous._run()).is_open
            except WorkflowNotFoundError:
                running = False
            if running:
                return _Started(None, f"{request.previous[0]} was still running")
        # The schedule's priority and key are this attempt's own (see _run_once).
        handle = await client.start(
            request.workflow,
            *request.args,
            id=request.workflow_id,
            task_queue=request.task_queue,
            id_conflict="use_existing",
            priority=activity.info().priority,
            fairness_key=activity.info().fairness_key,
        )
        return _Started(handle.run_id)


def builtin_workflows() -> dict[str, Callable[..., Any]]:
    """The workflows every worker (and every Replayer) knows: schedules',
    and the retention job's (perdure._retention)."""
    found = {}
    for fn in (schedule_workflow, delete_closed_workflow):
        definition = definition_of(fn)
        assert definition is not None
        found[definition.name] = definition.fn
    return found


def add_builtins(
    workflows: dict[str, Callable[..., Any]],
    activities: dict[str, ActivityFunction[Any, Any]],
    client: Client,
) -> None:
    """Register schedules' workflow, and their start activity bound to
    ``client``, and the retention job's (perdure._retention), beside a
    worker's own (which keep their names if they clash)."""
    for name, fn in builtin_workflows().items():
        workflows.setdefault(name, fn)
    starter = _Starter(client)
    activities.setdefault(
        START_ACTIVITY, ActivityFunction(starter.start, START_ACTIVITY, _start_run.opts)
    )
    add_retention(workflows, activities, client)


async def _run_once(
    spec: ScheduleSpec, state: ScheduleState, due: float, *, trigger: bool = False
) -> None:
    suffix = f"~trigger{state.triggers}" if trigger else ""
    run = ScheduledRun(due, f"{spec.schedule_id}@{iso(due)}{suffix}", trigger=trigger)
    previous = state.last if spec.overlap == "skip" else None
    request = _StartRequest(spec.workflow, spec.args, spec.task_queue, run.workflow_id, previous)
    # The schedule's priority and fairness key travel as its start's own (in
    # the activity's options, which replay does not compare: a schedule made
    # before them replays as it ran), and the start gives them to the run.
    start = _start_run
    if spec.priority != h.DEFAULT_PRIORITY:
        start = start.options(priority=spec.priority)
    if spec.fairness_key is not None:
        start = start.options(fairness_key=spec.fairness_key)
    started = await start(request)
    run.run_id, run.skipped = started.run_id, started.skipped
    if started.run_id is not None:
        state.started += 1
        state.last = [run.workflow_id, started.run_id]
    else:
        state.skipped += 1
    state.recent = [*state.recent, run][-RECENT:]


async def _catch_up(spec: ScheduleSpec, state: ScheduleState, now: float) -> None:
    """Every time up to ``now`` has come: start one run, for the latest,
    if it is within the catch-up window; count the others as missed."""
    latest = latest_time(spec, state.cursor, now)
    passed = count_times(spec, state.cursor, now)
    state.cursor = now if latest is None else latest
    # (Late by more than the window after its start, jitter included: missed.)
    if latest is not None and now - start_time(spec, latest) <= spec.catchup_window:
        state.missed += max(0, passed - 1)
        await _run_once(spec, state, latest)
    else:
        state.missed += passed


# (A change of the commands every schedule's workflow issues: histories
# recorded before it replay without it.)
PUBLISH_BEFORE_CATCH_UP = "perdure.schedule.publish-before-catch-up"


def _publish(spec: ScheduleSpec, state: ScheduleState, due: float | None) -> None:
    workflow.set_state(STATE_KEY, {"state": asdict(state), "next_run_at": due})


# (Auto-upgrade: its runs follow the current worker build, and its changes
# are patched; pinned, a long-lived run would keep an old build running.)
@workflow.defn(name=SCHEDULE_WORKFLOW, versioning="auto_upgrade")
async def schedule_workflow(spec: ScheduleSpec, state: ScheduleState | None = None) -> None:
    """The workflow behind every schedule: sleep until the next time, start
    its run, repeat; obey the ``pause``, ``unpause``, ``trigger`` and
    ``update`` signals."""
    if state is None:
        state = ScheduleState(cursor=workflow.now().timestamp())
    behind = False  # (the state changed since it was last published)
    while True:
        now = workflow.now().timestamp()
        due = None if state.paused else next_time(spec, state.cursor)
        starts = None if due is None else start_time(spec, due)  # (due, without jitter)
        if starts is not None and starts <= now:
            if behind and workflow.patched(PUBLISH_BEFORE_CATCH_UP):
                # A schedule that stays behind (its runs take longer to start
                # than its interval) comes straight back here: publish what it
                # has started so far, or describe() shows counts of long ago.
                _publish(spec, state, due)
            await _catch_up(spec, state, now)
            behind = True
        else:
            _publish(spec, state, due)
            behind = False
            wait = None if starts is None else starts - now
            try:
                command = await workflow.wait_signal(SIGNAL, timeout=wait)
            except TimeoutError:
                continue  # (the time has come: the loop's next pass starts its run)
            await _obey(spec, state, command)
            behind = True
        if workflow.info().history_length >= spec.max_history:
            _publish(spec, state, None if state.paused else next_time(spec, state.cursor))
            workflow.continue_as_new(spec, state)


async def _obey(spec: ScheduleSpec, state: ScheduleState, command: Any) -> None:
    op = command.get("op") if isinstance(command, dict) else None
    if op == "pause":
        state.paused, state.note = True, command.get("note")
    elif op == "unpause":
        # Times that passed while paused are not caught up.
        state.paused, state.note = False, command.get("note")
        state.cursor = max(state.cursor, workflow.now().timestamp())
    elif op == "trigger":
        state.triggers += 1
        await _run_once(spec, state, workflow.now().timestamp(), trigger=True)
    elif op == "update":
        new = _updated(spec, command.get("changes"))
        if new is not None:
            # From now on (not caught up from the last time), and in a new run,
            # whose input is the new spec (what describe() shows).
            state.cursor = max(state.cursor, workflow.now().timestamp())
            _publish(new, state, None if state.paused else next_time(new, state.cursor))
            workflow.continue_as_new(new, state)
    else:
        workflow.logger.warning("schedule %s: unknown command %r", spec.schedule_id, command)


UPDATABLE = {
    "workflow",
    "args",
    "cron",
    "every",
    "timezone",
    "overlap",
    "catchup_window",
    "jitter",
    "priority",
    "fairness_key",
}


def _updated(spec: ScheduleSpec, raw: Any) -> ScheduleSpec | None:
    """``spec`` with the changes an update signal carries, if this schedule
    can take them (ScheduleHandle.update checked them; a signal sent by hand
    may not be): bad ones are logged and ignored, never the schedule's end."""
    try:
        if not isinstance(raw, dict) or not set(raw) <= UPDATABLE:
            raise ValueError(f"an update changes only {', '.join(sorted(UPDATABLE))}")
        new = ScheduleSpec(**{**asdict(spec), **raw})
        if (new.cron is None) == (new.every is None) or new.overlap not in OVERLAPS:
            raise ValueError("it needs one of cron and every, and overlap skip or allow")
        if new.every is not None and not 1 <= new.every <= MAX_EVERY.total_seconds():
            raise ValueError(f"an interval of {new.every!r} seconds")
        if not new.catchup_window >= MIN_CATCHUP_WINDOW.total_seconds():
            raise ValueError(f"a catch-up window of {new.catchup_window!r} seconds")
        check_jitter(new, workflow.now().timestamp())
        h.check_priority("priority", new.priority)
        check_name("fairness_key", new.fairness_key, none_means="none")
        next_time(new, workflow.now().timestamp())  # (a bad cron or time zone)
    except (TypeError, ValueError, ArithmeticError) as error:
        workflow.logger.warning(
            "schedule %s: update ignored: %r (%s)", spec.schedule_id, raw, error
        )
        return None
    return new
