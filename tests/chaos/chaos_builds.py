"""The chaos fleet's worker builds (docs/versioning.md, "Pinning runs to a
build"): the workflows' workers run one of two builds of the same code,
each always with a live worker, and every FLIP_EVERY seconds of chaos the
driver's operator first ramps the other build (RAMP_SHARE of the new runs,
"Ramping a new build"), then makes it current, as a canary deploy and a
rollback would. So the open runs are pinned to one build or the other
(their first turns ran on whichever was current, or the current build's
workers handed them to the ramping one), new runs follow the changes,
children stay with their parents' build, and each build's runs wait for
its workers while the kills take them.

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
FLIP_EVERY = 2.0  # seconds between changes: a ramp of the other build, then it current
RAMP_SHARE = 50.0  # percent of the new runs a ramping build takes


@dataclass
class Builds:
    flips: int = 0  # changes of the current build
    ramps: int = 0  # ramps of the other build
    current: str = BUILDS[0]
    next_flip: float = 0.0
    pinned: Counter[str] = field(default_factory=Counter)  # runs pinned to each, at the end

    def for_new_worker(self, live: list[str | None]) -> str:
        """The build of the workflows' next worker: one that has no live
        worker, else the one with fewer."""
        return min(BUILDS, key=lambda b: (live.count(b), b != self.current))

    def step(self, client: perdure.SyncClient, now: float, chaotic: bool) -> None:
        """Every FLIP_EVERY seconds of chaos: ramp the other build, or make
        the ramping one current."""
        if not chaotic or now < self.next_flip:
            return
        builds = client.builds(QUEUE)
        if len(builds) < len(BUILDS):
            # (A build's first worker makes it current as it registers: the
            # changes begin once both have, so that none is undone by one.)
            return
        self.current = next(b.build_id for b in builds if b.current)
        [other] = [b for b in builds if not b.current]
        if other.ramp is None:
            client.set_ramping_build(QUEUE, other.build_id, RAMP_SHARE)
            self.ramps += 1
        else:
            client.set_current_build(QUEUE, other.build_id)  # (which ends its ramp)
            self.current = other.build_id
            self.flips += 1
        self.next_flip = now + FLIP_EVERY

    def count(self, client: perdure.SyncClient) -> None:
        """How many runs are pinned to each build (every run, open or not)."""
        for build in BUILDS:
            self.pinned[build] = len(client.list(build_id=build, limit=100_000))

    def summary(self) -> str:
        return (
            f"the current build changed {self.flips} times, after {self.ramps} ramps; "
            f"runs pinned to each build: "
            f"{dict(self.pinned)}"
        )
