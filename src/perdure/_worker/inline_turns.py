"""Inline turns: a run's instance, cached here, takes in the outcome of an
activity this worker ran inline (``continue_inline``), or its own due timer
(``fire_inline``), and the next turn is committed at once: no inbox row,
workflow task, claim or read. Outcomes that end while the run's inline turn
is being committed wait for it (``Parked``), then go into its next turn
together. Every fallback (the instance gone, the commit fenced) is the run's
inbox, the ordinary way.

``InlineTurns`` is the base of ``TurnRunner`` (turns.py), which owns the
cache and builds and commits the turns. Imports the runtime, the history
model and the Store interface.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from perdure import _history as h
from perdure._runtime import TurnNeverEnds, WorkflowInstance
from perdure._store.base import ActivityTask, Store, TurnCommit
from perdure._worker.inline import ended_at, kept_lease
from perdure._worker.timers import InlineTimers
from perdure._worker.watchdog import TurnBlocked

log = logging.getLogger("perdure.worker")


@dataclass(slots=True)
class Parked:
    """An inline outcome waiting for its run's turn in flight (continue_inline)."""

    task: ActivityTask
    outcome: h.Event
    # Its fate (True: committed by the next turn; False: take the inbox), or
    # the run's instance and the outcomes to commit with it: it leads that turn.
    answer: asyncio.Future[bool | tuple[CachedRun, list[Parked]]]


@dataclass(slots=True)
class CachedRun:
    instance: WorkflowInstance
    version: int  # the run's version right after this instance's last commit
    last_seq: int
    marked: bool  # whether the next turn needs its TurnStarted (h.needs_marker)
    build: str | None = None  # the build the run is pinned to (TurnCommit.pin)


class InlineTurns:
    """The inline turns of a TurnRunner's cached instances."""

    store: Store
    _cache: OrderedDict[str, CachedRun]  # run id -> its instance, not in use
    # Runs whose inline turn is being committed -> the outcomes waiting for it.
    _parked: dict[str, list[Parked]]
    timers: InlineTimers  # the cached instances' timers (see fire_inline)
    # TurnRunner's: a turn's commit built from its instance and inputs, and
    # that commit written (the instance cached again if it was).
    _build_commit: Callable[..., TurnCommit]
    _commit: Callable[..., Awaitable[bool]]

    async def continue_inline(
        self, activity: ActivityTask, outcome: h.Event, own_slot: bool = False
    ) -> bool:
        """Apply an inline activity's outcome to the cached instance and commit
        the next turn at once. False if that cannot be done here (the instance
        is gone, or the commit was fenced): the caller then delivers the
        outcome through the run's inbox, the ordinary way. ``own_slot``: the
        finishing attempt's slot goes to the first activity the turn
        schedules (see InlinePolicy).

        An outcome that ends while the run's previous inline turn is being
        committed waits for that commit, and the outcomes that waited go into
        the run's next turn together (a workflow's parallel activities end
        about at once): no inbox row, claim or load each."""
        run_id = activity.run_id
        cached = self._cache.pop(run_id, None)
        waited: list[Parked] = []
        if cached is None:
            waiting = self._parked.get(run_id)
            if waiting is None:
                return False
            parked = Parked(activity, outcome, asyncio.get_running_loop().create_future())
            waiting.append(parked)
            try:
                answer = await parked.answer
            except BaseException:
                self._abdicate(run_id, parked)
                raise
            if isinstance(answer, bool):
                return answer
            cached, waited = answer  # this outcome leads the next turn
        else:
            self._parked[run_id] = []  # (outcomes that end meanwhile wait for this turn)
        instance = cached.instance
        committed = False
        try:
            commit = self._next_commit(
                "inline turn",
                run_id,
                cached,
                [outcome, *(other.outcome for other in waited)] if waited else [outcome],
                own_slot,
                None if waited else ended_at(outcome),
            )
            if commit is None:
                return False
            commit.activity_done = (activity.task_id, activity.token)
            commit.done_priority = activity.priority
            commit.done_fairness_key = activity.fairness_key
            if activity.lease_until and commit.activities:
                commit.lease_kept = kept_lease(activity, commit)
            if waited:
                commit.also_done = tuple((p.task.task_id, p.task.token) for p in waited)
            committed = await self._commit(
                instance, commit, cached.last_seq, cached.marked, cached.build
            )
            return committed
        finally:
            for other in waited:
                if not other.answer.done():
                    other.answer.set_result(committed)
            self._pass_on(run_id)

    def _abdicate(self, run_id: str, parked: Parked) -> None:
        """A waiting outcome's task was cancelled: if it had just been made
        the next turn's leader, that turn is not taken (its instance is
        dropped, and the outcomes it was to carry take the inbox), and the
        run's later outcomes are not left waiting for it."""
        answer = parked.answer
        if not answer.done() or answer.cancelled() or isinstance(answer.result(), bool):
            return
        cached, waited = answer.result()  # type: ignore[misc]
        cached.instance.evict()
        for other in waited:
            if not other.answer.done():
                other.answer.set_result(False)
        self._pass_on(run_id)

    def _pass_on(self, run_id: str) -> None:
        """After a run's inline turn: the outcomes that waited for it go into
        its next turn, led by the first of them, with the instance the turn
        cached (and later outcomes wait for that turn in turn); with no
        instance (the turn was fenced or ended the run), each takes the inbox."""
        waiting = self._parked.pop(run_id, None)
        if waiting:  # (the commonest case, a sequential step's, has none)
            waiting = [p for p in waiting if not p.answer.done()]
        if not waiting:
            return
        cached = self._cache.pop(run_id, None)
        if cached is None:
            for parked in waiting:
                parked.answer.set_result(False)
            return
        self._parked[run_id] = []
        waiting[0].answer.set_result((cached, waiting[1:]))

    def due_timers(self, now: float, limit: int) -> list[tuple[str, int]]:
        """The remembered timers due by ``now`` (at most ``limit``) whose
        instances are cached here and still wait for them (see InlineTimers)."""
        return self.timers.due(now, limit, self._waits)

    def _waits(self, run_id: str, ref: int) -> bool:
        cached = self._cache.get(run_id)
        return cached is not None and cached.instance.waits_for_timer(ref)

    async def fire_inline(self, run_id: str, ref: int) -> bool:
        """Take in the run's due timer ``ref`` from its cached instance and
        commit the turn it wakes at once, the timer's row deleted as its
        fence: no inbox row, workflow task, claim or read (as an inline
        activity's outcome). False if that cannot be done here (the instance
        is busy or gone, or a firer took the timer first: the commit is
        fenced and the instance dropped); the timer then reaches the run
        the ordinary way."""
        cached = self._cache.pop(run_id, None)
        if cached is None:
            self.timers.done(run_id, ref)
            return False
        self._parked[run_id] = []  # (outcomes that end meanwhile wait for this turn)
        instance = cached.instance
        try:
            now = max(self.store.clock(), instance.now_ts)
            commit = self._next_commit(
                "inline timer", run_id, cached, [h.TimerFired(ref=ref, time=now)], at=now
            )
            if commit is None:
                return False
            commit.fired_timer = ref
            return await self._commit(
                instance, commit, cached.last_seq, cached.marked, cached.build
            )
        finally:
            self.timers.done(run_id, ref)
            self._pass_on(run_id)

    def _next_commit(
        self,
        what: str,
        run_id: str,
        cached: CachedRun,
        inputs: list[h.Event],
        own_slot: bool = False,
        at: float | None = None,
    ) -> TurnCommit | None:
        """The turn of a cached instance that takes in ``inputs`` here, with
        no workflow task (``what``: an inline outcome's, or an inline
        timer's). None if its code could not run here: the instance is
        dropped and the inputs take the inbox, whose turn says why on the run."""
        try:
            return self._build_commit(
                None, run_id, cached.version, cached.instance, cached.last_seq, cached.marked,
                inputs, own_slot, at, cached.build,
            )  # fmt: skip
        except (TurnBlocked, TurnNeverEnds):
            pass
        except Exception:
            log.exception("%s for run %s failed; using the inbox", what, run_id)
        cached.instance.evict()
        return None
