"""Worker: polls the store for workflow tasks, activity tasks and due timers,
runs them, and keeps the leases it holds alive.

Crash recovery is not a mode here: a dead worker's leases expire and any
worker claims those tasks again. SIGTERM (or leaving ``async with``) stops
claiming, lets in-flight work finish for ``drain_timeout`` seconds, then exits.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import signal
import socket
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from perdure import _gcpolicy as gcpolicy
from perdure import _history as h
from perdure._schedule_workflow import add_builtins
from perdure._store.base import (
    WORK,
    ActivityTask,
    FirstTurn,
    Store,
    TurnInput,
    TurnLease,
    WorkflowTask,
    loop_waker,
)
from perdure._worker.activities import ActivityRunner
from perdure._worker.crashpoints import crash_point
from perdure._worker.drain import drain
from perdure._worker.leases import keep_leases
from perdure._worker.limits import LimitsWatch
from perdure._worker.options import check_worker_options, collect_activities, collect_workflows
from perdure._worker.registry import Registration
from perdure._worker.turns import TurnRunner
from perdure._worker.watchdog import DEFAULT_DEADLOCK_TIMEOUT, Watchdog
from perdure.errors import StoreError

if TYPE_CHECKING:
    from perdure.client import Client

log = logging.getLogger("perdure.worker")

CLAIM_BATCH = 50  # tasks of each kind one poll claims at most
FIRE_BATCH = 100  # due timers one poll fires at most
EARLY_WAKE = 0.002  # seconds: see Worker._fire_inline
# The longest an idle worker's safety-net poll backs off to on a store that
# hears every other process's commit (Store.hears_every_commit; see _idle_wait).
IDLE_POLL_MAX = 2.0

__all__ = ["Worker"]


class Worker:
    """Runs the given workflows and activities for one task queue.

    ``lease_timeout`` is how long a claimed task stays ours without renewal: a
    crashed worker's work is picked up by others after at most this long (an
    inline step's next activity may keep its predecessor's lease expiry while
    five sixths of it are left: inline.LEASE_KEPT_WHILE).
    ``inline_activities``: an activity a turn schedules on this worker's queue
    runs here at once, claimed in the turn's own commit, and its result feeds
    the next turn directly (one commit per step); off, every activity goes
    through the queue. An inline attempt that ends hands its slot (of
    ``max_concurrent_activities``) to the activity its workflow schedules
    next, so a run that holds a slot keeps it from step to step.
    ``max_concurrent_workflow_tasks`` bounds the turns in flight; a first turn
    computed within ``start()`` (a run started in this process) holds a slot
    only while it is computed.
    ``poll_interval`` bounds how long an idle worker takes to notice work
    written by another process (work from this process wakes it at once).
    On SQLite, where every other process's commit wakes the worker within
    50 ms anyway, the poll is a safety net: while it keeps finding nothing,
    its wait doubles, up to 2 seconds (IDLE_POLL_MAX).
    ``tune_gc``: while it runs, raise the cyclic garbage collector's thresholds
    (young 20,000, middle 100; never lowered); the last worker to stop restores
    them. A quarter more throughput with thousands of workflows in flight
    (see docs/operations.md); ``False`` leaves them alone.
    ``deadlock_timeout``: workflow code that runs this many seconds without
    awaiting (a busy loop, a blocking call) is interrupted, and its turn fails
    and is tried again with backoff (see docs/workflows.md); None: never.
    A numeric option out of its range raises ValueError, naming it.
    """

    def __init__(
        self,
        client: Client,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        task_queue: str = "default",
        max_concurrent_activities: int = 100,
        max_concurrent_workflow_tasks: int = 100,
        *,
        identity: str | None = None,
        lease_timeout: float = 30.0,
        poll_interval: float = 0.2,
        cache_size: int = 10_000,
        drain_timeout: float = 30.0,
        inline_activities: bool = True,
        tune_gc: bool = True,
        deadlock_timeout: float | None = DEFAULT_DEADLOCK_TIMEOUT,
    ) -> None:
        if not isinstance(getattr(client, "store", None), Store):
            raise TypeError(
                f"a Worker needs a perdure.Client (await Client.connect(url)), "
                f"not {type(client).__name__} {client!r}"
            )
        check_worker_options(
            max_concurrent_activities=max_concurrent_activities,
            max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
            lease_timeout=lease_timeout,
            poll_interval=poll_interval,
            cache_size=cache_size,
            drain_timeout=drain_timeout,
            task_queue=task_queue,
            identity=identity or None,
            deadlock_timeout=deadlock_timeout,
        )
        self.client = client
        self.store = client.store
        self.task_queue = task_queue
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_timeout = lease_timeout
        self.poll_interval = poll_interval
        self.drain_timeout = drain_timeout
        self.tune_gc = tune_gc
        self.max_activities = max_concurrent_activities
        self.max_turns = max_concurrent_workflow_tasks
        self.workflows = collect_workflows(workflows)
        self.activities = collect_activities(activities)
        add_builtins(self.workflows, self.activities, client)  # (schedules run on any worker)
        self._registration = Registration(
            self.store, self.identity, task_queue, self.workflows, self.activities, lease_timeout
        )
        self.turns = TurnRunner(
            self.store,
            client.converter,
            self.workflows,
            cache_size,
            inline=self._inline_here if inline_activities else None,
            on_inline=self._run_inline,
            on_settled=self._inline_settled,
            identity=self.identity,
            watchdog=Watchdog(deadlock_timeout, name=f"perdure-watchdog {self.identity}"),
        )
        self.activity_runner = ActivityRunner(
            self.store, client.converter, self.activities, max_concurrent_activities, lease_timeout
        )
        self.activity_runner.deliver = self._deliver
        delay = self._registration.hand_back_delay
        self.activity_runner.hand_back_delay = self.turns.hand_back_delay = delay
        self._turns_inflight: dict[asyncio.Task[None], tuple[int, str]] = {}
        self._activities_inflight: dict[asyncio.Task[None], tuple[int, str]] = {}
        # The turns of inline timers (TurnRunner.fire_inline): turn slots
        # taken, but no task lease to renew (their values are placeholders).
        self._timer_turns: dict[asyncio.Task[None], tuple[int, str]] = {}
        # Attempt tasks whose attempt is ending (in _deliver), and the
        # successor each was handed to run next (see _run_inline).
        self._ending: set[asyncio.Task[Any]] = set()
        self._successors: dict[asyncio.Task[Any], ActivityTask] = {}
        self._stopping: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._background: asyncio.Task[None] | None = None
        self._serving: asyncio.Future[None] | None = None  # done once run() serves
        self._listener: Any = None
        self._sleeping = False  # the poller found nothing to do and waits
        self._quiet = 0  # idle polls in a row that slept their wait out (see _idle_wait)
        self.polls = 0  # how many times it looked for or was handed work (see testing)
        self._saturated = False  # the last poll had no free slot for some kind of task
        self._stop_requested = False  # stop() may come before run() has started
        self._inline_reserved = 0  # activity slots promised to turns not yet committed
        # Whether the queue has limits: its activities then start through
        # claims only, which obey them.
        self.limits = LimitsWatch(self.store, task_queue, self.identity)
        self._turns_reserved = 0  # turn slots promised to new runs not yet committed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context = contextvars.Context()  # set by run(): the context it was started in
        self._ran = False  # run() was called: a Worker serves once

    # ------------------------------------------------------------ running

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until cancelled or until SIGTERM/SIGINT asks for a graceful drain.
        With ``handle_signals=False`` (what ``async with worker`` uses) the
        embedding program keeps its own signal handling; call :meth:`stop`.
        A Worker runs once: a second run() raises RuntimeError."""
        if self._ran:  # (a second run had reset the first one's state, and hung)
            raise RuntimeError("this Worker has been run already: make a new Worker to run again")
        self._ran = True
        loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()  # a second SIGTERM/SIGINT: end the drain now
        self._wake = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        listener = loop_waker(loop, self._wake)
        self._listener = listener
        self.store.add_listener(listener, (WORK,))
        installed = self._install_signal_handlers(loop) if handle_signals else []
        gone = await self._registration.predecessor_gone()
        await self._registration.register()
        if gone:
            await self._registration.reclaim()
        await self.limits.start(loop)
        lease_task = asyncio.create_task(
            keep_leases(
                self.store,
                self.identity,
                self.lease_timeout,
                self._turns_inflight,
                self.activity_runner,
                self._registration.heartbeat,
            )
        )
        log.info("worker %s serving task queue %r", self.identity, self.task_queue)
        if self.tune_gc:
            gcpolicy.acquire()
        self._loop = self.activity_runner.loop = loop
        self.turns.watchdog.watch_loop(loop, lambda: bool(self.activity_runner.running))
        self.turns.watchdog.start()
        self.store.take_new_runs(self.task_queue, self)
        if self._serving is not None and not self._serving.done():
            self._serving.set_result(None)
        try:
            await self._poll()
        finally:
            self.store.stop_taking_new_runs(self.task_queue, self)
            if self.tune_gc:
                gcpolicy.release()
            try:
                await drain(
                    self.identity,
                    [*self._turns_inflight, *self._timer_turns, *self._activities_inflight],
                    self.drain_timeout,
                    self._hurry,
                    self.activity_runner,
                )
            finally:
                # (After the drain: a second SIGTERM during it had met the
                # default handler and killed the process, leases held.)
                for sig in installed:
                    loop.remove_signal_handler(sig)
            lease_task.cancel()
            await asyncio.gather(lease_task, return_exceptions=True)
            await self.limits.stop()
            await self._registration.unregister()
            self.store.remove_listener(listener)
            self.turns.evict_all()
            self.turns.watchdog.stop()
            self.activity_runner.shutdown()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal)
                installed.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):
                pass  # not the main thread: the embedding program handles signals
        return installed

    def _on_signal(self) -> None:
        """SIGTERM/SIGINT: the first stops the worker, which drains; a second
        one (an operator's second Ctrl-C) ends the drain at once: the attempts
        still running are stopped and recorded, as when drain_timeout passes."""
        if not self._stop_requested:
            self.stop()
        elif self._hurry is not None and not self._hurry.is_set():
            log.warning("worker %s: stopped again; not waiting for the drain", self.identity)
            self._hurry.set()

    @property
    def idle(self) -> bool:
        """True while nothing runs here and the last poll found nothing due
        (a time-skipping test environment may then move its clock forward)."""
        return (
            self._sleeping
            and not self._turns_inflight
            and not self._timer_turns
            and not self._activities_inflight
            and not self._turns_reserved
        )

    def wake(self) -> None:
        """Poll now (the clock moved, or work was written by other means)."""
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        """Ask the worker to stop claiming work and drain."""
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()
        if self._wake is not None:
            self._wake.set()

    async def __aenter__(self) -> Worker:
        """Start the worker in the background; return once it serves its
        queue (registered, and taking the runs this process starts), so that
        the block's first starts already get the fast path."""
        self._serving = asyncio.get_running_loop().create_future()
        background = self._background = asyncio.create_task(self.run(handle_signals=False))
        try:
            await asyncio.wait((self._serving, background), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while starting: stop the worker
            self.stop()
            await asyncio.gather(background, return_exceptions=True)
            raise
        if background.done():
            background.result()  # it ended before serving: its error, if any
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._background is not None:
            await self._background

    async def _poll(self) -> None:
        assert self._stopping is not None and self._wake is not None
        queues = [self.task_queue]
        errors = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if await self._poll_once(queues):
                    self._quiet = 0
                else:
                    await self._idle(queues)  # it reads the store too (next_due)
                errors = 0
            except StoreError as exc:
                errors += 1
                delay = min(5.0, 0.1 * 2**errors)
                log.warning(
                    "worker %s: store error (%s); retrying in %.1fs", self.identity, exc, delay
                )
                await self._sleep_or_wake(delay)

    async def _poll_once(self, queues: list[str]) -> bool:
        self.polls += 1
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
        lease = TurnLease(self.identity, self.lease_timeout, frozenset(queues), wake)
        try:
            fired, turns, acts = await asyncio.gather(
                self.store.fire_due_timers(
                    FIRE_BATCH, lease if wake > 0 else None, checked, self.identity
                ),
                self.store.claim_workflow_tasks(
                    queues, self.identity, self.lease_timeout, want_turns
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

    async def _idle(self, queues: list[str]) -> None:
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
        due = await self.store.next_due(queues, kinds, self.identity)
        delay = self._idle_wait()
        if due is not None:
            delay = max(0.0, min(delay, due - self.store.clock()))
        if delay > 0:
            woken = await self._sleep_or_wake(delay)
            self._quiet = 0 if woken else min(self._quiet + 1, 16)

    def _idle_wait(self) -> float:
        """How long an idle poll sleeps unless woken or something falls due:
        ``poll_interval``; on a store that hears every other process's commit
        (SQLite), the poll is only a safety net, and each poll in a row that
        slept it out and found nothing doubles it, up to IDLE_POLL_MAX."""
        wait = self.poll_interval
        if self._quiet and self.store.hears_every_commit:
            wait = min(wait * 2**self._quiet, max(wait, IDLE_POLL_MAX))
        return wait

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

    def _spawn(
        self,
        registry: dict[asyncio.Task[None], tuple[int, str]],
        coro: Any,
        task_id: int,
        token: str,
    ) -> None:
        # Each task starts from the context the worker was started in (not
        # from its spawner's, which may be an activity attempt's own task).
        task: asyncio.Task[None] = self._context.run(asyncio.create_task, coro)
        registry[task] = (task_id, token)
        task.add_done_callback(functools.partial(self._task_done, registry))

    def _task_done(
        self, registry: dict[asyncio.Task[None], tuple[int, str]], t: asyncio.Task[None]
    ) -> None:
        registry.pop(t, None)
        if self.limits.limited and registry is self._activities_inflight:
            # An attempt of a limited queue ended: its slot is free for any
            # worker of the queue, here or elsewhere, whose claim it held back.
            self.store.wake_workers()
        elif self._saturated and self._wake is not None:
            self._wake.set()  # a slot is free for work the last poll had to leave
        if not t.cancelled() and t.exception() is not None:
            log.error("worker task failed", exc_info=t.exception())

    async def _turn(self, task: Any) -> None:
        await self.turns.run_turn(task)

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


async def _nothing() -> list[Any]:
    return []
