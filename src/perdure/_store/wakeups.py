"""A store's wake-ups within its process (``Wakeups``, a base of Store):
the topics a commit announces, the listeners that wait on them (workers,
result and stream waiters), and the in-process workers that take the runs
this process creates. No I/O: a backend calls ``notify`` after its commits,
and ``notify_elsewhere`` when another process's reach it.
Imports only the store's records.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from perdure._store.records import RunRecord, RunTaker

__all__ = [
    "CLOSED",
    "LIMITS",
    "STREAMED",
    "WORK",
    "Wakeups",
    "closed_topic",
    "loop_waker",
    "streamed_topic",
]

# Wake-up topics (see Store.add_listener).
WORK = "work"
CLOSED = "closed"
LIMITS = "limits"  # a task queue's limits were set or removed
STREAMED = "streamed"  # (as "streamed:<run id>") a run's streams were written to


def closed_topic(run_id: str) -> str:
    """The topic of one run's end; a plain CLOSED means "any run may have ended"."""
    return f"{CLOSED}:{run_id}"


def streamed_topic(run_id: str) -> str:
    """The topic of new values in one run's streams (their readers look)."""
    return f"{STREAMED}:{run_id}"


def loop_waker(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    """A listener that sets ``event`` on ``loop``, from whatever thread calls it
    (directly when that is the loop's own thread: no self-pipe write). A
    partial, not a closure: one object, not three, for each waiter's life."""
    return functools.partial(_wake, loop, event)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    if asyncio._get_running_loop() is loop:
        event.set()
        return
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        pass  # the loop is closed: nobody waits any more


class Wakeups:
    """Listeners and run takers, and the calls that wake them."""

    def __init__(self) -> None:
        self._listeners: dict[Callable[[], None], frozenset[str]] = {}
        self._run_listeners: dict[str, set[Callable[[], None]]] = {}
        self._stream_listeners: dict[str, set[Callable[[], None]]] = {}
        self._ended_here: dict[str, RunRecord] = {}  # see ended_here
        self._run_watchers: set[Callable[[], None]] = set()
        self._run_takers: dict[str, RunTaker] = {}

    # -- new runs straight to an in-process worker -------------------------

    def take_new_runs(self, task_queue: str, taker: RunTaker) -> None:
        """Offer runs that this process creates on ``task_queue`` to ``taker``
        first (the latest registered worker of the queue)."""
        self._run_takers[task_queue] = taker

    def stop_taking_new_runs(self, task_queue: str, taker: RunTaker) -> None:
        if self._run_takers.get(task_queue) is taker:
            del self._run_takers[task_queue]

    # -- wake-ups within this process -------------------------------------
    #
    # A commit announces what it may have changed, by topic: WORK (a task or a
    # timer became runnable or due: workers poll again) and the end of a given
    # run (its result waiters read it again). A worker's own commit that only
    # hands an activity to itself wakes nobody, and a run's end wakes only the
    # waiters of that run, so neither a sequential workflow nor thousands of
    # concurrent waiters pay for wake-ups they do not need.

    def add_listener(
        self, callback: Callable[[], None], topics: Iterable[str] = (WORK, CLOSED)
    ) -> None:
        """``callback`` is called (from any thread) after a commit that may have
        changed one of ``topics`` (CLOSED: the end of any run)."""
        self._listeners[callback] = frozenset(topics)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.pop(callback, None)

    def add_run_listener(self, run_id: str, callback: Callable[[], None]) -> None:
        """``callback`` is called (from any thread) when run ``run_id`` may have ended."""
        self._run_listeners.setdefault(run_id, set()).add(callback)

    def remove_run_listener(self, run_id: str, callback: Callable[[], None]) -> None:
        waiting = self._run_listeners.get(run_id)
        if waiting is not None:
            waiting.discard(callback)
            if not waiting:
                del self._run_listeners[run_id]
                self._ended_here.pop(run_id, None)

    def add_stream_listener(self, run_id: str, callback: Callable[[], None]) -> None:
        """``callback`` is called (from any thread) when run ``run_id``'s
        streams may hold new values (not when it ends: see add_run_listener)."""
        self._stream_listeners.setdefault(run_id, set()).add(callback)

    def remove_stream_listener(self, run_id: str, callback: Callable[[], None]) -> None:
        listening = self._stream_listeners.get(run_id)
        if listening is not None:
            listening.discard(callback)
            if not listening:
                del self._stream_listeners[run_id]

    def ended_here(self, run_id: str) -> RunRecord | None:
        """Run ``run_id`` as this process last saw it end, kept while anyone
        here listens for that run: a waiter's answer without a read of its
        own. Seen by the commit that ended it here, or by a check of the runs
        waited on (``keep_ended``). None: not seen ended, or nobody listened."""
        return self._ended_here.get(run_id)

    def keep_ended(self, ended: Mapping[str, RunRecord | None]) -> None:
        """Keep the records of ended runs (as ``ended_runs`` returns them) for
        their waiters, if any (see ended_here). An ended run never changes again."""
        for run_id, record in ended.items():
            if record is not None and run_id in self._run_listeners:
                self._ended_here[run_id] = record

    def add_run_watcher(self, callback: Callable[[], None]) -> None:
        """``callback`` is called (from any thread) when another process may
        have ended runs, *instead of* every run listener: it checks the runs
        listened to (``listened_runs``) in one query and wakes the ended ones
        (``wake_run``). Without a watcher, every run listener is woken and
        re-reads its run: one query per waiter per change."""
        self._run_watchers.add(callback)

    def remove_run_watcher(self, callback: Callable[[], None]) -> None:
        self._run_watchers.discard(callback)

    def listened_runs(self) -> Collection[str]:
        """The runs someone in this process waits on (see add_run_listener): a
        live view (copy it before awaiting anything), so that asking whether
        anyone waits, or on a given run, costs the same for 20,000 waiters as
        for one."""
        return self._run_listeners.keys()

    def run_changed(self, run_id: str) -> None:
        """A commit of this process changed run ``run_id`` in a way its
        waiters look for (an update's answer): wake them here and, where the
        backend can, in other processes (as a possible end of the run: they
        read it again)."""
        self.wake_run(run_id)

    def wake_run(self, run_id: str) -> None:
        """Call the listeners of run ``run_id`` (a watcher found it ended)."""
        for callback in list(self._run_listeners.get(run_id, ())):
            callback()

    def wake_waiters(self) -> None:
        """Call every run's listeners: the store was closed, and a result
        waiter must look now (and be told so), not at its next poll (30 s)."""
        for waiting in [*self._run_listeners.values(), *self._stream_listeners.values()]:
            for callback in list(waiting):
                callback()

    def notify(self, *topics: str) -> None:
        """Call the listeners of ``topics`` (of every topic when none is given:
        what a wake-up from another process means)."""
        wanted = set(topics or (WORK, CLOSED))
        prefix = CLOSED + ":"
        ended = [topic[len(prefix) :] for topic in wanted if topic.startswith(prefix)]
        callbacks: list[Callable[[], None]] = []
        if CLOSED in wanted and not topics and self._run_watchers:
            callbacks += self._run_watchers  # they check the listened runs themselves
        elif CLOSED in wanted:
            for waiting in list(self._run_listeners.values()):
                callbacks += waiting
        else:
            for run_id in ended:
                callbacks += self._run_listeners.get(run_id, ())
        if self._stream_listeners:
            if not topics:  # (from another process: anything may have changed)
                for listening in list(self._stream_listeners.values()):  # (any thread)
                    callbacks += listening
            else:
                streamed = STREAMED + ":"
                for topic in wanted:
                    if topic.startswith(streamed):
                        callbacks += self._stream_listeners.get(topic[len(streamed) :], ())
        if ended:
            wanted.add(CLOSED)  # for listeners of any run's end
        for callback, interests in list(self._listeners.items()):
            if interests & wanted:
                callbacks.append(callback)
        for callback in callbacks:
            callback()

    def wake_workers(self) -> None:
        """Wake every worker, in this process and (where the backend can)
        in others: a slot of a limited queue is free (see queue limits)."""
        self.notify(WORK)

    def notify_elsewhere(self, topics: Sequence[str]) -> None:
        """Another process committed changes to ``topics``. None named means
        anything may have changed; so does a bare CLOSED (too many runs ended
        to name them): watchers then check the runs waited for in one query.
        Named ends wake only their own waiters."""
        if not topics or CLOSED in topics:
            self.notify()
        else:
            self.notify(*topics)
