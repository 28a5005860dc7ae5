"""The chaos fleet's worker builds (docs/versioning.md, "Pinning runs to a
build"): the workflows' workers run one of two builds of the same code,
each always with a live worker, and the driver's operator makes the other
build current every FLIP_EVERY seconds of chaos, as a deploy and a
rollback would. So the open runs are pinned to one build or the other
(their first turns ran on whichever was current), new runs follow the
flips, children stay with their parents' build, and each build's runs
wait for its workers while the kills take them.

What must hold: every guarantee checked for any run (each step completed
once, results, histories), and every run finishing, though the workers of
its build die and are replaced; at the end, runs were pinned to both
builds (``pinned``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import perdure

BUILDS = ("build-a", "build-b")
QUEUE = "default"  # the workflows' queue
FLIP_EVERY = 2.0  # seconds between changes of the current build


@dataclass
class Builds:
    flips: int = 0
    current: str = BUILDS[0]
    next_flip: float = 0.0
    pinned: Counter[str] = field(default_factory=Counter)  # runs pinned to each, at the end

    def for_new_worker(self, live: list[str | None]) -> str:
        """The build of the workflows' next worker: one that has no live
        worker, else the one with fewer."""
        return min(BUILDS, key=lambda b: (live.count(b), b != self.current))

    def step(self, client: perdure.SyncClient, now: float, chaotic: bool) -> None:
        """Make the other build current, every FLIP_EVERY seconds of chaos."""
        if not chaotic or now < self.next_flip:
            return
        if self.next_flip:  # (the first build is current by its first worker)
            self.current = BUILDS[1 - BUILDS.index(self.current)]
            client.set_current_build(QUEUE, self.current)
            self.flips += 1
        self.next_flip = now + FLIP_EVERY

    def count(self, client: perdure.SyncClient) -> None:
        """How many runs are pinned to each build (every run, open or not)."""
        for build in BUILDS:
            self.pinned[build] = len(client.list(build_id=build, limit=100_000))

    def summary(self) -> str:
        return (
            f"the current build changed {self.flips} times; runs pinned to each build: "
            f"{dict(self.pinned)}"
        )
