"""Worker: polls the store for workflow tasks, activity tasks and due timers,
runs them, and keeps the leases it holds alive. Its bases hold its poll loop
(polling.Poller) and the work it takes on without a poll: new runs' first
turns and inline activities (handoffs.Handoffs). Imports the store interface
and the worker's parts.

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
from perdure._schedule_workflow import add_builtins
from perdure._store.base import WORK, ActivityTask, Store, loop_waker, turn_queue
from perdure._worker.activities import ActivityRunner
from perdure._worker.drain import drain
from perdure._worker.handoffs import Handoffs
from perdure._worker.leases import keep_leases
from perdure._worker.limits import LimitsWatch
from perdure._worker.options import (
    check_worker_options,
    collect_activities,
    collect_workflows,
    pinned_types,
)
from perdure._worker.polling import Poller
from perdure._worker.registry import Registration
from perdure._worker.repairs import Repairs
from perdure._worker.streams import finish_flushes
from perdure._worker.turns import TurnRunner
from perdure._worker.watchdog import DEFAULT_DEADLOCK_TIMEOUT, Watchdog
from perdure.interceptors import activity_interceptors

if TYPE_CHECKING:
    from perdure.client import Client

log = logging.getLogger("perdure.worker")

# The longest an idle worker's safety-net poll backs off to on a store that
# hears every other process's commit (Store.hears_every_commit; see _idle_wait).
IDLE_POLL_MAX = 2.0
FLUSH_AT_STOP = 5.0  # seconds a stopping worker waits for its activities' stream values

__all__ = ["Worker"]


class Worker(Poller, Handoffs):
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
    ``build_id``: this worker's build (a release of the code, such as a git
    commit or a version). A run of a "pinned" workflow type (the default of
    ``@workflow.defn``) is pinned to the build of the first such worker that
    runs a turn of it, and its turns go to that build's workers only. Of a
    queue's builds, the one whose first worker with workflows of its own
    started last, or that
    ``Client.set_current_build`` named since, is current: its workers (and
    workers without a build) take the queue's new runs; another build's
    workers only finish the runs pinned to it (docs/versioning.md). None:
    no build, no pinning.
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
        build_id: str | None = None,
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
            build_id=build_id,
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
        # (Only a worker of workflows of its own makes its build its queue's
        # current one: an activity worker takes none of the queue's runs.)
        promotes = bool(self.workflows)
        self.activities = collect_activities(activities)
        add_builtins(self.workflows, self.activities, client)  # (schedules run on any worker)
        self.build_id = build_id
        self._registration = Registration(
            self.store,
            self.identity,
            task_queue,
            self.workflows,
            self.activities,
            lease_timeout,
            build_id,
            promotes,
        )
        self._registration.on_change = self._follow_builds
        # (A worker of workflows looks for runs a bug stranded: repairs.py.)
        self.repairs = Repairs(self.store, self.identity) if promotes else None
        self.turn_queues = [task_queue]
        if build_id is not None:
            self.turn_queues.append(turn_queue(task_queue, build_id))
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
            build_id=build_id,
            pinned=pinned_types(self.workflows) if build_id is not None else frozenset(),
        )
        self.activity_runner = ActivityRunner(
            self.store, client.converter, self.activities, max_concurrent_activities, lease_timeout
        )
        self.activity_runner.deliver = self._deliver
        self.activity_runner.interceptors = activity_interceptors(client.interceptors)
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
        await self._registration.look()
        self._tell_turns()
        self._follow_builds(running=False)
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
                self._heartbeat,
            )
        )
        log.info("worker %s serving task queue %r", self.identity, self.task_queue)
        if self.tune_gc:
            gcpolicy.acquire()
        self._loop = self.activity_runner.loop = loop
        self.turns.watchdog.watch_loop(loop, lambda: bool(self.activity_runner.running))
        self.turns.watchdog.start()
        if self._registration.current:
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
                    self._in_flight,
                    self.drain_timeout,
                    self._hurry,
                    self.activity_runner,
                )
            finally:
                # (After the drain: a second SIGTERM during it had met the
                # default handler and killed the process, leases held.)
                for sig in installed:
                    loop.remove_signal_handler(sig)
            # The stream values of attempts the drain cut short, before the
            # worker lets go of its loop (bounded: the database may be gone).
            await finish_flushes(self.activity_runner.stream_flushes, FLUSH_AT_STOP)
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

    def _in_flight(self) -> list[asyncio.Task[None]]:
        """The turns and activity attempts running in this worker now."""
        return [*self._turns_inflight, *self._timer_turns, *self._activities_inflight]

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

    async def _heartbeat(self) -> None:
        """After each renewal of the leases (keep_leases): the registry's
        row, then, now and then, the look for stranded runs."""
        await self._registration.heartbeat()
        self._tell_turns()  # (its look reads the builds)
        if self.repairs is not None:
            await self.repairs.look()

    def _tell_turns(self) -> None:
        """Give the turn runner what the registration's look read: the
        queue's ramping build and its current one."""
        self.turns.ramp = self._registration.ramp
        self.turns.current_build = self._registration.named

    def _follow_builds(self, running: bool = True) -> None:
        """This worker's build became, or stopped being, its queue's current
        build (Registration.look): it claims the queue's unpinned workflow
        tasks, and takes the new runs this process starts, while it is.
        ``running``: the worker serves already (else run() starts taking)."""
        current = self._registration.current
        own = turn_queue(self.task_queue, self.build_id) if self.build_id is not None else None
        self.turn_queues = [q for q in (self.task_queue if current else None, own) if q]
        if not running:
            return
        if current:
            self.store.take_new_runs(self.task_queue, self)
        else:
            self.store.stop_taking_new_runs(self.task_queue, self)
        self.wake()

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

    # ------------------------------------------------------------ idle polls (the loop: Poller)

    def _idle_wait(self) -> float:
        """How long an idle poll sleeps unless woken or something falls due:
        ``poll_interval``; on a store that hears every other process's commit
        (SQLite), the poll is only a safety net, and each poll in a row that
        slept it out and found nothing doubles it, up to IDLE_POLL_MAX."""
        wait = self.poll_interval
        if self._quiet and self.store.hears_every_commit:
            wait = min(wait * 2**self._quiet, max(wait, IDLE_POLL_MAX))
        return wait

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
