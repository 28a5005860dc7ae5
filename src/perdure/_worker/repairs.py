"""A worker's safety net for a run stranded with unread events in its inbox
and no workflow task (Store.repair_stranded, sqlrepair): a state no write of
the store leaves, so a bug's, which would keep the run waiting for ever.
A worker of workflows looks for such runs with its heartbeat, once every
REPAIR_EVERY seconds, gives each its task back and logs an error naming
it (the chaos tests fail on that line). Imports the Store interface."""

from __future__ import annotations

import logging
import time

from perdure._store.base import Store
from perdure.errors import StoreError

__all__ = ["REPAIR_AFTER", "REPAIR_EVERY", "Repairs"]

log = logging.getLogger("perdure.worker")

REPAIR_EVERY = 60.0  # seconds between a worker's looks
# How long an inbox event waits unread, with no workflow task, before its
# run counts as stranded. (None should ever: the margin is against clocks.)
REPAIR_AFTER = 30.0


class Repairs:
    """One worker's looks for stranded runs."""

    def __init__(self, store: Store, identity: str) -> None:
        self.store = store
        self.identity = identity
        self.every = REPAIR_EVERY
        self.after = REPAIR_AFTER
        self._next = time.monotonic()  # (the first heartbeat looks)
        self.repaired = 0  # runs given their task back by this worker

    async def look(self) -> None:
        """Repair the stranded runs, if this worker's time to look came."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        try:
            repaired = await self.store.repair_stranded(self.store.clock() - self.after)
        except StoreError as exc:
            log.warning("worker %s: could not look for stranded runs: %s", self.identity, exc)
            return
        self.repaired += len(repaired)
        for run_id in repaired:
            log.error(
                "run %s had events in its inbox and no workflow task to read them for %gs "
                "or more, a state perdure never leaves a run in (a bug: please report it, "
                "with the run's history); worker %s gave it its workflow task back",
                run_id,
                self.after,
                self.identity,
            )
