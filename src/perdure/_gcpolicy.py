"""The garbage-collection policy of a running worker and of a connected client.

A busy worker keeps thousands of workflow instances alive in its cache, and
allocates a few dozen objects per step; a client awaiting thousands of
results keeps as many waiters alive. With CPython's default thresholds
(a young collection every 700 allocations, a full one whenever the long-lived
objects grew by a quarter) the cyclic collector keeps re-walking them: 5,000
concurrent workflows spent a third of a worker's CPU in it, and a client
awaiting 20,000 results 44% of its own. While a worker runs, and while a
client is connected, the young threshold is raised to 20,000 and the middle
one to 100 (never lowered: a program that set its own higher values keeps
them); the last of them to stop puts back what it found, unless somebody
changed the thresholds meanwhile. The middle threshold is high because a
middle collection walks every object that survived a young one and is still
alive (a workflow in flight keeps about 70): with 20, a burst of 20,000
workflows ran seven or eight of them and then a full collection of up to
1.5 s; with 100, one of about 0.9 s and no full one. ``Worker(tune_gc=False)`` and
``Client.connect(..., tune_gc=False)`` leave them alone. This costs no memory
for evicted instances because eviction breaks their reference cycles
(WorkflowInstance.evict): reference counting frees them at once. See
docs/decisions.md.
Imports only the standard library.
"""

from __future__ import annotations

import gc
import threading

YOUNG = 20_000
MIDDLE = 100

_lock = threading.Lock()
_users = 0
_found: tuple[int, ...] | None = None  # the thresholds before the first worker
_ours: tuple[int, ...] | None = None  # the thresholds we set


def acquire() -> None:
    global _users, _found, _ours
    with _lock:
        _users += 1
        if _users > 1:
            return
        current = gc.get_threshold()
        wanted = (max(current[0], YOUNG), max(current[1], MIDDLE), *current[2:])
        if wanted != current:
            _found, _ours = current, wanted
            gc.set_threshold(*wanted)


def release() -> None:
    global _users, _found, _ours
    with _lock:
        _users -= 1
        if _users > 0 or _found is None:
            return
        if gc.get_threshold() == _ours:
            gc.set_threshold(*_found)
        _found = _ours = None
