"""Work a worker takes on without a poll (Handoffs, a base of Worker): the
first turns of runs this process starts (the RunTaker protocol the store
calls), and activities run inline, each attempt that ends handing its slot,
and if it can its task, to the activity its workflow schedules next. Imports
the store interface and the worker's parts; Worker sets the state declared.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure._store.base import ActivityTask, FirstTurn, Store, TurnInput, WorkflowTask
from perdure.errors import StoreError

if TYPE_CHECKING:
    from perdure._worker.activities import ActivityRunner
    from perdure._worker.limits import LimitsWatch
    from perdure._worker.turns import TurnRunner
    from perdure.activity import ActivityFunction

log = logging.getLogger("perdure.worker")

__all__ = ["Handoffs"]


class Handoffs:
    """New runs' first turns and inline activities, for a Worker, which sets
    up the attributes below (see Worker.__init__ and Worker.run) and defines
    the methods declared here for the type checker only."""

    store: Store
    identity: str
    task_queue: str
    lease_timeout: float
    max_activities: int
    activities: dict[str, ActivityFunction[Any, Any]]
    turns: TurnRunner
    activity_runner: ActivityRunner
    limits: LimitsWatch
    polls: int
    _turns_inflight: dict[asyncio.Task[None], tuple[int, str]]
    _activities_inflight: dict[asyncio.Task[None], tuple[int, str]]
    _ending: set[asyncio.Task[Any]]
    _successors: dict[asyncio.Task[Any], ActivityTask]
    _stopping: asyncio.Event | None
    _inline_reserved: int
    _turns_reserved: int
    _loop: asyncio.AbstractEventLoop | None
    _context: contextvars.Context

    if TYPE_CHECKING:  # Worker's and Poller's

        def _free_turns(self) -> int: ...

        def _spawn(
            self,
            registry: dict[asyncio.Task[None], tuple[int, str]],
            coro: Any,
            task_id: int,
            token: str,
        ) -> None: ...

        async def _turn(self, task: Any) -> None: ...

    # ------------------------------------------------------------ new runs (RunTaker)

    def reserve(self) -> tuple[str, float] | None:
        """A run created in this process asks for its first turn (see
        Store.take_new_runs). Only a creator on this worker's own event loop
        is served; any other goes the ordinary way (a poll claims the task)."""
        if self._stopping is None or self._stopping.is_set() or not self._on_own_loop():
            return None
        if self._free_turns() <= 0:
            return None
        self._turns_reserved += 1
        self.polls += 1  # it takes on work as a poll would (see idle and testing)
        return self.identity, self.lease_timeout

    def prepare(self, first: TurnInput) -> FirstTurn | None:
        """The new run's first turn, for its creating commit to write (with
        the slot reserve() held, on this loop)."""
        return self.turns.first_turn(first)

    def take(self, task: WorkflowTask | None) -> None:
        """After the creating commit (on this loop, as reserve() was)."""
        self._turns_reserved -= 1
        if task is not None:
            self._spawn(self._turns_inflight, self._turn(task), task.task_id, task.token)

    def _on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    # ------------------------------------------------------------ inline activities

    def _inline_here(
        self, name: str, queue: str, own_slot: bool = False
    ) -> tuple[str, float] | None:
        """Run this freshly scheduled activity in this process, right away?
        ``own_slot``: it succeeds an inline attempt that is finishing, whose
        slot it takes (see _deliver), so the slots' count does not stop it."""
        if queue != self.task_queue or name not in self.activities or self.limits.limited:
            return None
        if self._stopping is None or self._stopping.is_set():
            return None
        # Slots promised to turns being committed count too, or a burst of
        # concurrent turns would run more activities than max_concurrent_activities.
        if (
            not own_slot
            and len(self._activities_inflight) + self._inline_reserved >= self.max_activities
        ):
            return None
        self._inline_reserved += 1
        return self.identity, self.lease_timeout

    def _inline_settled(self, count: int) -> None:
        self._inline_reserved -= count

    def _run_inline(self, task: ActivityTask) -> None:
        current = asyncio.current_task(self._loop)
        if (
            current in self._ending
            and current not in self._successors
            and contextvars.copy_context() == self._context
        ):
            # The attempt ending in this task hands the task on: the successor
            # runs in it next (see _activity), in the same slot, without a
            # task of its own. Only if the task's context is still the one the
            # worker started it with: whatever an attempt set in it must not
            # reach the next one. (Its task row is the one the successor took
            # over: same id, new token.)
            assert current is not None
            self._successors[current] = task
            self._activities_inflight[current] = (task.task_id, task.token)
            return
        self._spawn(self._activities_inflight, self._activity(task), task.task_id, task.token)

    async def _deliver(self, task: ActivityTask, event: h.Event) -> bool:
        # An attempt that ends here (in its task, one of this worker's
        # activities in flight) hands its slot to the activity its workflow
        # schedules next: at full load that activity still runs at once, in
        # place of the one that ended, rather than waiting in the queue for a
        # later poll. It runs in the same task if it can (see _run_inline);
        # else its task starts before the ending one's is counted out: the
        # count is one over for that moment, the attempts running never.
        current = asyncio.current_task(self._loop)
        own = current in self._activities_inflight
        if own:
            assert current is not None
            self._ending.add(current)
        try:
            if await self.turns.continue_inline(task, event, own):
                return True
        except StoreError as exc:
            # The next turn's commit failed, not the attempt: its outcome is
            # recorded the ordinary way (fenced, should that commit have
            # landed after all), so that the activity does not run again.
            log.warning(
                "inline turn for run %s not committed (%s); using the inbox", task.run_id, exc
            )
        finally:
            self._ending.discard(current)
        return await self.store.complete_activity(task, event)

    async def _activity(self, task: ActivityTask) -> None:
        # The attempt, then each successor handed this task as its
        # predecessor ended (see _run_inline): a loop, so that a long chain
        # of steps does not deepen the stack.
        current = asyncio.current_task(self._loop)
        try:
            while True:
                await self.activity_runner.run(task)
                successor = self._successors.pop(current, None)  # type: ignore[arg-type]
                if successor is None:
                    return
                task = successor
        finally:
            self._successors.pop(current, None)  # type: ignore[arg-type]
