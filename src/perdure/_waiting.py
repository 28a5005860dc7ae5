"""What result() waiters share: an ear for one run's end (EndWatch), their
looks at their runs, taken together (OpenRuns), and one check of every run
waited on when another process may have ended some (ResultWatch).

A waiter reads its run once before it waits (the run may have ended before
anyone listened), and again each time it is woken. A program that starts
many workflows and then awaits all their results (a fan-out) used to pay
one read each, and another each time they were woken: 5,000 queries for
5,000 waiters. Waiters that look in the same pass of the event loop now ask
one question together ("which of these runs are still open?", one query per
500 runs), and the records of those that ended come with the answer (one
more query per 500 of them), kept for their waiters by the store
(``Store.keep_ended``). Talks to a Store only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Collection

from perdure._store.base import RunRecord, Store, loop_waker
from perdure.errors import StoreError

__all__ = [
    "MAX_RESULT_POLL",
    "EndWatch",
    "OpenRuns",
    "ResultWatch",
    "StreamWatch",
    "awaited_ended",
]

log = logging.getLogger("perdure.client")

# The longest the result watch backs off to, and the longest a result waiter
# goes without re-reading its run itself.
MAX_RESULT_POLL = 30.0


_per_thread = threading.local()


def no_variables() -> contextvars.Context:
    """An empty context for callbacks that read no context variable, one per
    thread: a context cannot be entered by two threads at once, and two
    loops in two threads (a SyncClient's and the program's) may run such
    callbacks at the same moment."""
    try:
        return _per_thread.context  # type: ignore[no-any-return]
    except AttributeError:
        _per_thread.context = contextvars.Context()
        return _per_thread.context  # type: ignore[no-any-return]


class EndWatch:
    """One waiter's ear for the end of one run (it moves along a
    continue-as-new chain): ``changed`` is set when that run may have ended."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.changed = asyncio.Event()
        self._listener = loop_waker(asyncio.get_running_loop(), self.changed)
        self.run_id: str | None = None

    def listen(self, run_id: str) -> None:
        self.close()
        self.store.add_run_listener(run_id, self._listener)
        self.run_id = run_id

    def close(self) -> None:
        if self.run_id is not None:
            self.store.remove_run_listener(self.run_id, self._listener)
            self.run_id = None

    async def wait(self, timeout: float) -> None:
        """Until ``changed`` is set, or set it after ``timeout`` seconds (the
        waiter then reads its run again either way). Awaited in the waiter's
        own task: ``asyncio.wait_for`` would make a task per wait."""
        changed = self.changed
        if changed.is_set():
            return
        # (In the thread's shared empty context: the timer of a waiter is one
        # object, not two, for as long as it waits; setting an event reads no
        # variable.)
        timer = asyncio.get_running_loop().call_later(timeout, changed.set, context=no_variables())
        try:
            await changed.wait()
        finally:
            timer.cancel()


class StreamWatch(EndWatch):
    """A stream reader's ear for one run: ``changed`` is set when the run's
    streams may hold new values, or when it may have ended."""

    def listen(self, run_id: str) -> None:
        super().listen(run_id)
        self.store.add_stream_listener(run_id, self._listener)

    def close(self) -> None:
        if self.run_id is not None:
            self.store.remove_stream_listener(self.run_id, self._listener)
        super().close()


class OpenRuns:
    """``await is_open(run_id)``: whether the run is open now, asked together
    with every other question of the same pass of the loop. The record of a
    run found ended is then ``store.ended_here(run_id)`` for its listeners."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._asked: dict[asyncio.AbstractEventLoop, list[tuple[str, asyncio.Future[bool]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def is_open(self, run_id: str) -> asyncio.Future[bool]:
        """True if the run is open; False if it ended, does not exist, or the
        store could not say (the caller then reads the run itself, and meets
        the error there)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        asked = self._asked.get(loop)
        if asked is None:
            asked = self._asked[loop] = []
            # The task's first step runs after the loop's ready callbacks:
            # the waiters that start in this pass join its question.
            task = loop.create_task(self._ask(loop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        asked.append((run_id, answer))
        return answer

    async def _ask(self, loop: asyncio.AbstractEventLoop) -> None:
        asked = self._asked.pop(loop)
        ended: Collection[str] = {run_id for run_id, _ in asked}  # unless the store answers
        try:
            records = await self.store.ended_runs(list(ended))
        except Exception:
            pass  # each waiter reads its run itself, and meets the error there
        else:
            ended = records
            self.store.keep_ended(records)  # their waiters need no read of their own
        finally:
            for run_id, answer in asked:
                if not answer.done():  # (its waiter may have been cancelled)
                    answer.set_result(run_id not in ended)


async def awaited_ended(
    store: Store, position: int | None, everything: bool
) -> tuple[int | None, dict[str, RunRecord | None]]:
    """For a client's result watch: the runs waited on in this process that
    have ended, with their records (see Store.ended_runs), and the position
    to give next time in the store's feed of ended runs. Unless
    ``everything`` is asked for (the watch's timed safety net), only the
    runs the feed says ended since ``position`` are asked about: on SQLite,
    which says only that another process committed something, 5,000
    waiters then cost a look at the latest ends, not 5,000 index probes per
    commit. With no feed to go by (none kept, none reaching back that far),
    every run waited on is asked about.

    The runs waited on are taken after the feed's answer: a waiter that
    began listening later took its first look later too, so an end before
    that look is what the look saw, and an end after it is beyond the
    position returned."""
    now, since = await store.runs_ended_after(position)
    listened = store.listened_runs()
    if since is not None and not everything:
        # The feed's few ids, each looked up among the waited ones: not a
        # pass over every waiter at each commit of another process.
        waited = [run_id for run_id in dict.fromkeys(since) if run_id in listened]
    else:
        waited = list(listened)
    return now, (await store.ended_runs(waited) if waited else {})


class ResultWatch:
    """A client's one check, for every result() waiter at once, of the runs
    they wait on.

    Waiters listen on their run: a commit of this process that ends it wakes
    exactly its waiters. For the rest (a commit by another process, which the
    store's watch or NOTIFY reports only as "something changed", or a wake-up
    lost to a crash between a commit and its NOTIFY) one task asks about the
    runs waited on (awaited_ended) and wakes the ended ones; it backs off from
    the client's poll interval while nothing changes. So 5,000 waiters cost
    one query per check, not 5,000 re-reads."""

    def __init__(self, store: Store, poll_interval: Callable[[], float]) -> None:
        self.store = store
        self._poll_interval = poll_interval  # the client's, which may change
        self._task: asyncio.Task[None] | None = None
        self._poke: asyncio.Event | None = None
        self._interval = 0.0
        self._foreign = False  # another process committed since the last check

    def ensure(self) -> None:
        """Make sure the watch runs (on the caller's event loop), and checks
        again within the poll interval: a new waiter gets a prompt safety
        net, as the first check of a backing-off series."""
        poll = self._poll_interval()
        if self._task is None or self._task.done():
            self._interval = poll
            self._poke = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._poke))
        elif self._interval > poll and self._poke is not None:
            self._interval = poll
            self._poke.set()  # it sleeps for longer: restart its backoff

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, poked: asyncio.Event) -> None:
        store = self.store
        wake = loop_waker(asyncio.get_running_loop(), poked)

        def other_process_committed() -> None:  # from any thread
            self._foreign = True
            wake()

        store.add_run_watcher(other_process_committed)
        position: int | None = None  # in the store's feed of ended runs
        try:
            while store.listened_runs():
                interval = self._interval
                try:
                    await asyncio.wait_for(poked.wait(), interval)
                    woken = True
                except TimeoutError:
                    woken = False
                poked.clear()
                if woken and not self._foreign:
                    continue  # a new waiter restarted the backoff: sleep again
                self._foreign = False
                self._interval = (
                    self._poll_interval() if woken else min(interval * 2, MAX_RESULT_POLL)
                )
                try:
                    position, ended = await awaited_ended(store, position, not woken)
                except StoreError as exc:
                    log.warning("checking the awaited runs failed: %s", exc)
                    continue
                store.keep_ended(ended)  # their waiters need no read of their own
                for run_id in ended:
                    store.wake_run(run_id)
        finally:
            store.remove_run_watcher(other_process_committed)
