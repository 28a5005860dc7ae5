"""A worker's poll loop (Poller, a base of Worker): each poll starts the turns
of inline timers, fires due timers and claims tasks up to its free slots, in
one group commit; an idle worker waits for a wake-up, the next due time, or
its safety-net poll (Worker._idle_wait). Imports the store interface and the
worker's parts; Worker sets the state this class declares.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from perdure._store.base import ActivityTask, Store, TurnLease
from perdure._worker.crashpoints import crash_point
from perdure.errors import StoreError

if TYPE_CHECKING:
    from perdure._worker.limits import LimitsWatch
    from perdure._worker.turns import TurnRunner

log = logging.getLogger("perdure.worker")

CLAIM_BATCH = 50  # tasks of each kind one poll claims at most
FIRE_BATCH = 100  # due timers one poll fires at most
EARLY_WAKE = 0.002  # seconds: see Poller._fire_inline

__all__ = ["CLAIM_BATCH", "EARLY_WAKE", "FIRE_BATCH", "Poller"]


class Poller:
    """The poll loop of a Worker, which sets up the attributes below (see
    Worker.__init__ and Worker.run) and defines the methods declared here
    for the type checker only."""

    store: Store
    identity: str
    task_queue: str
    # The queues of the workflow tasks it claims: its task queue's, unless
    # another build is current; and its build's own (Worker._follow_builds).
    turn_queues: list[str]
    lease_timeout: float
    max_turns: int
    max_activities: int
    turns: TurnRunner
    limits: LimitsWatch
    polls: int
    _turns_inflight: dict[asyncio.Task[None], tuple[int, str]]
    _activities_inflight: dict[asyncio.Task[None], tuple[int, str]]
    _timer_turns: dict[asyncio.Task[None], tuple[int, str]]
    _stopping: asyncio.Event | None
    _wake: asyncio.Event | None
    _sleeping: bool
    _quiet: int
    _saturated: bool
    _inline_reserved: int
    _turns_reserved: int

    if TYPE_CHECKING:  # Worker's

        def _idle_wait(self) -> float: ...

        def _spawn(
            self,
            registry: dict[asyncio.Task[None], tuple[int, str]],
            coro: Any,
            task_id: int,
            token: str,
        ) -> None: ...

        async def _turn(self, task: Any) -> None: ...

        async def _activity(self, task: ActivityTask) -> None: ...

    async def _poll(self) -> None:
        assert self._stopping is not None and self._wake is not None
        errors = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if await self._poll_once():
                    self._quiet = 0
                else:
                    await self._idle()  # it reads the store too (next_due)
                errors = 0
            except StoreError as exc:
                errors += 1
                delay = min(5.0, 0.1 * 2**errors)
                log.warning(
                    "worker %s: store error (%s); retrying in %.1fs", self.identity, exc, delay
                )
                await self._sleep_or_wake(delay)

    async def _poll_once(self) -> bool:
        self.polls += 1
        turn_queues, queues = self.turn_queues, [self.task_queue]
        checked = await self._fire_inline()
        # Issued together, the three writes share one group commit.
        free_turns = self._free_turns()
        free_acts = self.max_activities - len(self._activities_inflight) - self._inline_reserved
        want_acts = max(0, min(free_acts, CLAIM_BATCH))
        want_turns = max(0, min(free_turns, CLAIM_BATCH))
        # With a kind's slots all busy this poll may leave due work behind: a
        # task that ends must then poll again (see _spawn).
        self._saturated = free_turns <= 0 or want_acts <= 0
        # The slots this claim may fill are reserved while it waits for its
        # commit, so inline activities cannot take them meanwhile.
        self._inline_reserved += want_acts
        # The turns of runs a firing wakes are leased to this worker by the
        # firing's own commit, up to the slots the claim leaves free: no claim,
        # and no read for a run whose instance is cached here (see TurnLease).
        wake = free_turns - want_turns
        lease = TurnLease(self.identity, self.lease_timeout, frozenset(turn_queues), wake)
        try:
            fired, turns, acts = await asyncio.gather(
                self.store.fire_due_timers(
                    FIRE_BATCH, lease if wake > 0 else None, checked, self.identity
                ),
                self.store.claim_workflow_tasks(
                    turn_queues, self.identity, self.lease_timeout, want_turns
                )
                if want_turns > 0
                else _nothing(),
                self.store.claim_activity_tasks(
                    queues, self.identity, self.lease_timeout, want_acts, self.limits.limited
                )
                if want_acts > 0
                else _nothing(),
            )
            for task in [*lease.taken, *turns]:
                self._spawn(self._turns_inflight, self._turn(task), task.task_id, task.token)
            for act in acts:
                self._spawn(self._activities_inflight, self._activity(act), act.task_id, act.token)
        finally:
            self._inline_reserved -= want_acts
        crash_point("timers.after_fire", fired > 0)
        # Poll again at once only if there may be more: a full batch, or fired
        # timers. Otherwise the next poll waits for a wake-up (new work) or the
        # next due time, so a quiet worker does not poll twice per task.
        full = (want_turns > 0 and len(turns) == want_turns) or (
            want_acts > 0 and len(acts) == want_acts
        )
        return bool(fired or full)

    def _free_turns(self) -> int:
        busy = len(self._turns_inflight) + len(self._timer_turns) + self._turns_reserved
        return self.max_turns - busy

    async def _fire_inline(self) -> float:
        """Start the turns of the due timers of instances cached here, as
        many as free turn slots allow (TurnRunner.fire_inline), each queueing
        its commit before this poll's firing; return the bound of that
        firing (see _worker/timers.py). A timer due within EARLY_WAKE is
        waited for: the loop's sleep may end that much before it is due."""
        soon = self.turns.timers.next()
        now = self.store.clock()
        if soon is not None and now < soon <= now + EARLY_WAKE:
            await asyncio.sleep(soon - now)
            now = self.store.clock()
        free = self._free_turns()
        due = self.turns.due_timers(now, free) if free > 0 else []
        for run_id, ref in due:
            self._spawn(self._timer_turns, self.turns.fire_inline(run_id, ref), 0, "")
        if due:
            await asyncio.sleep(0)  # (each turn runs to its commit's queueing)
        return self.turns.timers.bound(now)

    async def _idle(self) -> None:
        # Only work we have room for counts: with every slot busy, a due task
        # must not make us spin; a finishing task sets _wake instead.
        kinds = tuple(
            kind
            for kind, free in (
                ("workflow", self.max_turns - len(self._turns_inflight) - len(self._timer_turns)),
                ("activity", self.max_activities - len(self._activities_inflight)),
            )
            if free > 0
        )
        self._saturated = self._saturated or len(kinds) < 2
        due = await self._next_due(kinds)
        delay = self._idle_wait()
        if due is not None:
            delay = max(0.0, min(delay, due - self.store.clock()))
        if delay > 0:
            woken = await self._sleep_or_wake(delay)
            self._quiet = 0 if woken else min(self._quiet + 1, 16)

    async def _next_due(self, kinds: tuple[str, ...]) -> float | None:
        """When the first task of ``kinds`` this worker claims falls due:
        one read, unless its workflow tasks' queues leave out its task
        queue's (another build is current), which its activities' are."""
        turn_queues = self.turn_queues
        if "activity" not in kinds or self.task_queue in turn_queues:
            return await self.store.next_due(turn_queues, kinds, self.identity)
        dues = [await self.store.next_due([self.task_queue], ("activity",), self.identity)]
        if "workflow" in kinds:
            dues.append(await self.store.next_due(turn_queues, ("workflow",), self.identity))
        return min((due for due in dues if due is not None), default=None)

    async def _sleep_or_wake(self, delay: float) -> bool:
        """Sleep ``delay`` seconds or until woken; True if woken."""
        assert self._wake is not None
        self._sleeping = True
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
            return True
        except TimeoutError:
            return False
        finally:
            self._sleeping = False


async def _nothing() -> list[Any]:
    return []
