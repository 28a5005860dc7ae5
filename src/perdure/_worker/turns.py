"""Workflow turns: load a run, replay or reuse its cached instance, apply the
new inbox events, and commit the result in one fenced transaction.

The fast path: a turn that schedules an activity this worker can run inserts
it already claimed (attempt 1) and hands it to the worker at once; when the
activity ends, its outcome is applied to the still-cached instance and the next
turn is committed directly (``continue_inline``, inline_turns.py), fenced by the
attempt's lease and the run's version. A sequential workflow thus costs one
commit per step and never waits for a poll. Every fallback is the ordinary inbox path.

Imports the runtime, the history model and the Store interface.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._runtime import TurnNeverEnds, WorkflowInstance, replay_history
from perdure._store.base import (
    ActivityTask,
    FirstTurn,
    RunRecord,
    Store,
    TurnCommit,
    TurnInput,
    WorkflowTask,
)
from perdure._store.records import in_ramp
from perdure._worker.commands import InlinePolicy, add_build, add_commands
from perdure._worker.crashpoints import crash_point
from perdure._worker.inline_turns import CachedRun, InlineTurns, Parked
from perdure._worker.timers import InlineTimers
from perdure._worker.watchdog import TurnBlocked, Watchdog
from perdure.errors import (
    NonDeterminismError,
    StoreError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)

log = logging.getLogger("perdure.worker")

# Workflow code that runs this long in one turn blocked the worker's loop (time.sleep,
# blocking I/O): every other run stood still. Logged; past the worker's
# deadlock_timeout the watchdog interrupts it (watchdog.py).
BLOCKED_TURN_SECONDS = 1.0


def _warn_blocked(instance: WorkflowInstance, took: float) -> None:
    what = (instance.info.run_id, instance.info.workflow_type) if instance.info else ("?", "?")
    log.warning(
        "workflow code of run %s (%s) ran %.1f s without awaiting, blocking the worker's "
        "event loop: do blocking work (I/O, time.sleep) in activities",
        *what,
        took,
    )


InlineSink = Callable[[ActivityTask], None]


class TurnFailed(Exception):
    """A turn could not run; the message is what ``describe()`` shows."""


class UnknownWorkflowType(TurnFailed):
    """The run's workflow type is not registered on this worker."""

    def __init__(self, message: str, workflow_type: str) -> None:
        super().__init__(message)
        self.workflow_type = workflow_type


def turn_retry_delay(attempt: int) -> float:
    """Backoff for a failing workflow task: 1 s, 2 s, 4 s ... capped at 60 s."""
    return float(min(60, 2 ** max(0, attempt - 1)))


# A turn's last_error while it waits because the attempts before it were
# lost (see lost_turn_wait); the attempt is how the next claim tells its
# own wait from a loss.
_LOST_TURNS = re.compile(r"turn attempt (\d+) waits ")


def lost_turn_wait(attempt: int, last_error: str | None) -> tuple[float, str] | None:
    """For a claimed workflow task whose earlier attempts were lost in a
    row (their workers died while computing the turn, no failure recorded),
    the backoff it waits and the run's last_error meanwhile; None: run it.
    Two losses in a row make a turn wait (the first is taken again when its
    lease runs out: a worker killed once resumes at once); after that wait,
    the next attempt runs, and if it is lost too the one after waits again,
    longer (turn_retry_delay). A turn that kills its worker (out of memory
    replaying a history too long, say) then takes down a worker once a
    minute at most, not one every lease timeout. A failed turn (an error
    recorded) backs off by its failure already."""
    if attempt < 3:
        return None
    waited = _LOST_TURNS.match(last_error or "")
    if last_error is not None and (waited is None or int(waited[1]) == attempt - 1):
        return None  # (failed, backing off already; or this claim follows our wait)
    delay = turn_retry_delay(attempt - 1)
    return delay, (
        f"turn attempt {attempt} waits {delay:g}s: the attempts before it were lost with "
        f"their workers (each stopped while computing this turn: out of memory, a history "
        f"too long to replay?)"
    )


class TurnRunner(InlineTurns):
    """Runs workflow turns for one worker; owns its bounded instance cache."""

    def __init__(
        self,
        store: Store,
        converter: DataConverter,
        workflows: dict[str, Callable[..., Any]],
        cache_size: int,
        inline: InlinePolicy | None = None,
        on_inline: InlineSink | None = None,
        on_settled: Callable[[int], None] | None = None,
        identity: str | None = None,
        watchdog: Watchdog | None = None,
        build_id: str | None = None,
        pinned: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        # The worker's build, and the workflow types whose runs its turns pin
        # to it (TurnCommit.pin): those of versioning "pinned".
        self.build_id = build_id
        self.pinned = pinned
        # The queue's ramping build and its share of new runs, while this
        # worker's build is current (Registration.ramp, set after each look):
        # see _ramped. None (no build, or no ramp) costs a turn one test.
        self.ramp: tuple[str, float] | None = None
        # The queue's current build (Registration.named, set with the ramp):
        # what workflow.newer_build() tells a pinned run (see _newer_build).
        self.current_build: str | None = None
        # Runs workflow code, and interrupts code that does not await.
        self.watchdog = watchdog or Watchdog(None)
        # See ActivityRunner.hand_back_delay.
        self.hand_back_delay: Callable[[str, str, int], Awaitable[float | None]] | None = None
        self.converter = converter
        self.workflows = workflows
        self.cache_size = cache_size
        self.inline = inline
        self.on_inline = on_inline
        self.on_settled = on_settled  # told how many inline slots a commit had asked for
        self._cache: OrderedDict[str, CachedRun] = OrderedDict()
        # Runs whose inline turn is being committed -> the outcomes waiting for it.
        self._parked: dict[str, list[Parked]] = {}
        self.turns_committed = 0
        self.replays = 0
        self.timers = InlineTimers()  # the cached instances' timers (see fire_inline)
        # What a turn's commit names as its run's holder (TurnCommit.holder):
        # this worker, which keeps the instance, if it keeps any.
        self.holder = identity if cache_size > 0 else None

    @property
    def cached_runs(self) -> int:
        return len(self._cache)

    def evict_all(self) -> None:
        while self._cache:
            _, cached = self._cache.popitem()
            cached.instance.evict()

    def drop(self, run_id: str) -> None:
        cached = self._cache.pop(run_id, None)
        if cached is not None:
            cached.instance.evict()

    async def run_turn(self, task: WorkflowTask) -> None:
        """Process one claimed workflow task. Never raises for workflow problems:
        they are recorded on the run (``last_error``) and the task backs off."""
        # Taking the instance out of the cache makes this turn its only user.
        cached = self._cache.pop(task.run_id, None)
        instance: WorkflowInstance | None = None
        known, task.turn_input = task.turn_input, None
        try:
            if known is not None and (
                known.run.version == cached.version if cached else known.run.last_seq == 0
            ):
                # What the commit that leased the task read or wrote, and all
                # this turn needs: the instance is at that version of the run
                # (or the run is new, with no history to replay).
                data = known
            else:
                data = await self.store.load_turn(task.run_id, cached.last_seq if cached else 0)
            if cached is not None and cached.version != data.run.version:
                # Another worker advanced this run since we cached it: start over.
                cached.instance.evict()
                cached = None
                data = await self.store.load_turn(task.run_id, 0)
            if not data.run.is_open:
                return
            if task.attempt >= 3 and (lost := lost_turn_wait(task.attempt, data.run.last_error)):
                log.warning("run %s: %s", task.run_id, lost[1])
                await self.store.fail_turn(task, lost[1], lost[0])
                return
            if self.ramp is not None and (ramped := self._ramped(data.run)) is not None:
                await self._hand_to_ramp(data.run, ramped)
                return
            if cached is not None:
                instance, last_seq = cached.instance, cached.last_seq
                marked = cached.marked
            else:
                instance, last_seq = self._replay(data), data.run.last_seq
                marked = h.needs_marker(data.events)
            # (Set after the replay of the run's past: what that past saw is
            # in its history; what this worker knows now is for what comes.)
            run = data.run
            instance.newer_build = None if run.build_id is None else self._newer_build(run)
            inputs = [event for _, event in data.inbox]
            commit = self._build_commit(
                task, data.run.run_id, data.run.version, instance, last_seq, marked, inputs,
                build=data.run.build_id,
            )  # fmt: skip
            commit.consumed_inbox = [inbox_id for inbox_id, _ in data.inbox]
        except UnknownWorkflowType as exc:
            # Another worker of the queue may serve it (a rolling deploy that
            # adds a workflow): the task goes back to the queue for it, not
            # into a backoff that grew to a minute while this worker kept
            # claiming it.
            handing = self.hand_back_delay
            delay = None
            if handing is not None:
                delay = await handing("workflow", exc.workflow_type, task.task_id)
            if delay is not None:
                await self.store.hand_back(task, delay)
            else:
                await self._fail(task, str(exc))
            return
        except (
            TurnFailed, TurnBlocked, NonDeterminismError, TurnNeverEnds, h.HistoryFormatError
        ) as exc:  # fmt: skip
            if instance is not None:
                instance.evict()
            await self._fail(task, str(exc))
            return
        except StoreError:
            if instance is not None:
                instance.evict()
            raise
        except Exception as exc:  # a bug in perdure itself: keep the run, report it
            log.exception("workflow task for run %s failed", task.run_id)
            if instance is not None:
                instance.evict()
            await self._fail(task, f"internal error in the worker: {exc!r}")
            return
        try:
            committed = await self._commit(instance, commit, last_seq, marked, data.run.build_id)
        except StoreError as exc:
            # The database refused the turn (a value it cannot hold, or it is
            # gone): said on the run, and the task backs off, where it had
            # stayed leased and the run silent until the lease ran out, again
            # and again. If even that cannot be written, the error goes on.
            await self._fail(task, f"the database refused this turn's commit: {exc}")
            return
        if not committed:
            # Fenced out (the run changed under the turn: a new priority, say):
            # free the task now rather than when its lease expires, as a claim
            # that did not count. Nothing failed: the run's last error stays,
            # and a later failure's backoff does not grow by this attempt.
            await self.store.hand_back(task, 0.0)

    def first_turn(self, data: TurnInput) -> FirstTurn | None:
        """A new run's first turn, computed before the run exists, for the
        commit that creates it to write (see RunTaker.prepare); None if it
        cannot be computed here (then the run's task is leased the ordinary
        way and its turn reports the problem)."""
        if self.ramp is not None and self._ramped(data.run) is not None:
            return None  # (its task is leased here the ordinary way, and handed on)
        instance: WorkflowInstance | None = None
        try:
            instance = self._replay(data)
            commit = self._build_commit(
                None,
                data.run.run_id,
                data.run.version,
                instance,
                0,
                False,
                [e for _, e in data.inbox],
            )
        except Exception:
            if instance is not None:
                instance.evict()
            return None
        commit.fresh = True
        ready = instance

        def settle(written: bool) -> None:
            try:
                if written:
                    crash_point("start.after_commit")
                    self._committed(ready, commit, 0, False)
                else:
                    ready.evict()
                    commit.created_tasks.clear()
            finally:
                self._settle_inline(commit)

        return FirstTurn(commit, settle)

    def _newer_build(self, run: RunRecord) -> str | None:
        """The build a new run of pinned ``run``'s workflow id would start on
        now, if not the one it is pinned to (workflow.newer_build): the
        queue's current build, or the ramping build if the id falls in its
        share. As this worker's last look at its queue's builds read them."""
        current = self.current_build
        if current is not None and current != run.build_id:
            return current
        ramp = self.ramp
        if ramp is not None and ramp[0] != run.build_id and in_ramp(run.workflow_id, ramp[1]):
            return ramp[0]
        return None

    def _ramped(self, run: RunRecord) -> str | None:
        """The queue's ramping build, if ``run`` is a new run (no history,
        pinned to no build, of a type this worker pins) whose workflow id
        falls in its share (records.in_ramp): the run goes to that build
        instead of being pinned to this one. None: it stays here."""
        ramp = self.ramp
        if ramp is None or run.build_id is not None or run.last_seq != 0:
            return None
        build, percent = ramp
        if build == self.build_id or run.workflow_type not in self.pinned:
            return None
        return build if in_ramp(run.workflow_id, percent) else None

    async def _hand_to_ramp(self, run: RunRecord, build: str) -> None:
        """Pin new run ``run``, whose task this worker holds, to the ramping
        ``build`` (Store.set_run_build): its task moves to that build's queue,
        this lease let go, and the build's workers take its first turn."""
        crash_point("turn.before_handover")
        try:
            await self.store.set_run_build(run.workflow_id, run.run_id, build)
        except (WorkflowNotFoundError, WorkflowClosedError):
            return  # (ended meanwhile: a terminate, say; its task went with it)
        log.debug("run %s goes to the ramping build %r", run.run_id, build)

    async def _commit(
        self,
        instance: WorkflowInstance,
        commit: TurnCommit,
        last_seq: int,
        marked: bool,
        build: str | None = None,
    ) -> bool:
        """Commit the turn, then cache the instance and start what it leased
        here; False (the instance dropped) if it was fenced out. Either way
        the slots the commit had asked for are settled."""
        try:
            crash_point("turn.before_commit")
            try:
                committed = await self.store.commit_turn(commit)
            except BaseException:
                instance.evict()
                raise
            if not committed:
                log.info("turn for run %s was fenced out; dropping its instance", commit.run_id)
                instance.evict()
                return False
            crash_point("turn.after_commit")
            self._committed(instance, commit, last_seq, marked, build)
            return True
        finally:
            self._settle_inline(commit)

    def _settle_inline(self, commit: TurnCommit) -> None:
        asked = sum(1 for a in commit.activities if a.lease is not None)
        if asked and self.on_settled is not None:
            self.on_settled(asked)  # after _hand_over counted the ones it started

    def _committed(
        self,
        instance: WorkflowInstance,
        commit: TurnCommit,
        last_seq: int,
        marked: bool,
        build: str | None = None,
    ) -> None:
        """After the turn's commit: cache the instance, start what it leased here.
        ``last_seq`` and ``marked``: the history before the commit; ``build``:
        the build the run was pinned to before it (the commit may pin it)."""
        self.turns_committed += 1
        if instance.replied:  # (it answered an update: its callers look now)
            instance.replied = False
            self.store.run_changed(commit.run_id)
        if instance.closed:
            instance.evict()
            return
        events = commit.events
        if events:
            last_seq, marked = events[-1].seq, h.needs_marker(events)
        self._cache[commit.run_id] = CachedRun(
            instance, commit.expected_version + 1, last_seq, marked, commit.pin or build
        )
        while len(self._cache) > self.cache_size:
            _, old = self._cache.popitem(last=False)
            old.instance.evict()
        if commit.timers:
            self.timers.remember(commit.run_id, commit.timers, self.store.clock())
        self._hand_over(instance, commit)

    def _hand_over(self, instance: WorkflowInstance, commit: TurnCommit) -> None:
        """Give the activities this commit inserted already claimed to the worker."""
        if not commit.created_tasks or self.on_inline is None:
            return
        info = instance.info
        assert info is not None
        now = commit.events[-1].time if commit.events else self.store.clock()
        for activity in commit.activities:
            task_id = commit.created_tasks.get(activity.ref)
            if task_id is None or activity.lease is None:
                continue
            # (The expiry the commit wrote is now + lease by the store's reading
            # of the clock, later than the turn's, but for a first turn's,
            # read microseconds before it; or the finished attempt's, which
            # its row kept. LEASE_KEPT_WHILE leaves margin for the former.)
            until = now + activity.lease[2]
            if commit.lease_kept and commit.activity_done and task_id == commit.activity_done[0]:
                until = commit.lease_kept
            self.on_inline(
                ActivityTask(
                    task_id=task_id,
                    token=activity.lease[1],
                    run_id=commit.run_id,
                    workflow_id=info.workflow_id,
                    workflow_type=info.workflow_type,
                    ref=activity.ref,
                    name=activity.name,
                    task_queue=info.task_queue,
                    args=activity.args,
                    kwargs=activity.kwargs,
                    options=activity.options,
                    attempt=1,
                    scheduled_at=now,
                    started_at=now,
                    lease_until=until,
                    priority=activity.priority,
                    fairness_key=activity.fairness_key,
                )
            )

    async def _fail(self, task: WorkflowTask, error: str) -> None:
        log.warning("workflow task for run %s failed: %s", task.run_id, error)
        await self.store.fail_turn(task, error, turn_retry_delay(task.attempt))

    def _replay(self, data: TurnInput) -> WorkflowInstance:
        fn = self.workflows.get(data.run.workflow_type)
        if fn is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise UnknownWorkflowType(
                f"workflow type {data.run.workflow_type!r} is not registered on this worker "
                f"(registered: {known}); start a worker that has it, and the run resumes",
                data.run.workflow_type,
            )
        self.replays += 1
        watchdog = self.watchdog
        instance = watchdog.run(
            None, replay_history, fn, data.events, self.converter, watchdog.rearm
        )
        if instance.drift:
            log.warning(
                "run %s (%s) replayed activities with other arguments than its history "
                "recorded, and they got the recorded results: %s. Fine if the code changed "
                "what it passes on purpose; else the workflow is not deterministic (a set's "
                "order, the clock, a global?)",
                data.run.run_id,
                data.run.workflow_type,
                "; ".join(instance.drift),
            )
        return instance

    def _build_commit(
        self,
        task: WorkflowTask | None,
        run_id: str,
        version: int,
        instance: WorkflowInstance,
        last_seq: int,
        marked: bool,
        inputs: list[h.Event],
        own_slot: bool = False,
        at: float | None = None,
        build: str | None = None,
    ) -> TurnCommit:
        """The turn's commit. ``last_seq`` and ``marked``: the history
        so far (see h.needs_marker). ``at``: the turn's time, if not now (an inline
        outcome's turn takes its attempt's end: the same moment, give or take
        microseconds, and one float's text written for both, not two).
        ``build``: the build the run is pinned to, if it is."""
        # Workflow time never goes backwards, even if this host's clock is behind.
        now = max(self.store.clock() if at is None else at, instance.now_ts)
        commands: list[h.Command] = []
        if inputs:
            # (Watchdog.run, written out: this is every step's path.)
            watchdog = self.watchdog
            watchdog.armed = armed = (time.monotonic(), instance)
            try:
                commands = instance.activate(now, inputs, history_length=last_seq)
            finally:
                watchdog.armed = None
                if watchdog.fired is not None:
                    watchdog.settle()
            began = armed[0]
            if time.monotonic() - began >= BLOCKED_TURN_SECONDS:
                _warn_blocked(instance, time.monotonic() - began)
        events = h.turn_events(last_seq, now, inputs, commands, marked) if inputs else []
        commit = TurnCommit(
            task=task,
            run_id=run_id,
            expected_version=version,
            events=events,
            consumed_inbox=[],
            state=dict(instance.state),
            waiting=instance.waiting(),
            holder=self.holder,
        )
        try:
            add_commands(commit, instance, commands, self.inline, own_slot)
        except BaseException:
            # Give back the slots reserved so far (each is an activity with a
            # lease in the commit): nobody will run those activities.
            self._settle_inline(commit)
            raise
        if self.build_id is not None or build is not None:
            add_build(commit, instance, build, self.build_id, self.pinned)
        return commit
