"""The chaos driver's operator who pauses activities: now and then it pauses a
pending activity of an open run (``AsyncActivityHandle.pause``, by id) and
unpauses it a moment later, having changed the retry policy of half of
them meanwhile (``update_options``); once the chaos ends, it unpauses every
one still paused at once (``Client.batch_activities``), so that the runs can
finish: the batch must find exactly those it paused, no other activity
(a new step that took over a paused one's task row, say, must not be).
Workers die meanwhile, at random and at crash points, so a paused
activity's attempt is lost with its worker, its retry parked by a claim,
its task taken over by a next step.

What must hold (``check``): while an activity is paused, at most one of its
executions begins, the attempt that held its task when the pause landed
(claimed just before, it may log just after: its history's attempt record
says when it took the task); none after it, whatever the retries, kills
and claims. The window is the driver's wall clock from the
return of ``pause()`` to the call of ``unpause()``; an execution's time is
its worker's, logged before it runs (chaos_workloads). Every other
guarantee (each step completed once, results, histories) is checked as for
any run, so a pause must not lose, repeat or strand a step either.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import chaos_checks as checks

import perdure

# Tries at pausing one, a second: each pass of the driver's loop tries with
# the chance of its time since the last pass (about 50 passes a second on an
# idle machine, a few on a loaded one), so that a slow hour pauses as many.
PAUSE_RATE = 2.5
MAX_PAUSED = 4  # activities paused at once
PAUSED_FOR = (0.05, 1.5)  # seconds, drawn for each
LOOKS = 4  # open runs described, at most, to find a pending activity to pause
UPDATE_CHANCE = 0.5  # that a paused activity's options are changed too


@dataclass
class Window:
    """One activity paused, from ``start`` to ``end`` (wall clock)."""

    wf: str
    run: str
    ref: int
    start: float
    end: float | None = None


@dataclass
class Pauses:
    windows: list[Window] = field(default_factory=list)
    held: list[tuple[Window, float]] = field(default_factory=list)  # with when to unpause
    paused: int = 0
    refused: int = 0  # the activity ended (or its run did) before the pause
    updated: int = 0  # of those paused, how many had their retry policy changed
    batch_unpaused: int = 0  # still paused when the chaos ended: unpaused by one batch
    last_pass: float | None = None  # (monotonic)

    def step(
        self, client: perdure.SyncClient, rng: random.Random, flows: list[Any], chaotic: bool
    ) -> None:
        """Unpause those whose time came (every one, once not ``chaotic``),
        and now and then pause another."""
        now = time.monotonic()
        since = 0.02 if self.last_pass is None else now - self.last_pass
        self.last_pass = now
        if not chaotic and self.held:
            self._unpause_all(client)
        keep = []
        for window, due in self.held:
            if chaotic and now < due:
                keep.append((window, due))
                continue
            window.end = time.time()
            try:
                self._handle(client, window).unpause()
            except perdure.AsyncActivityNotFoundError:
                pass  # (it ended meanwhile: settled, completed by its attempt, or its run ended)
        self.held = keep
        if not chaotic or not flows or len(self.held) >= MAX_PAUSED:
            return
        if rng.random() >= 1 - math.exp(-PAUSE_RATE * since):
            return
        # (Most steps take milliseconds: a few runs are looked at for one.)
        for flow in rng.sample(flows, min(len(flows), LOOKS)):
            described = client.get_handle(flow.id).describe()
            candidates = [a for a in described.pending_activities if not a.paused]
            if candidates and described.run_id is not None:
                break
        else:
            return
        chosen = rng.choice(candidates)
        window = Window(flow.id, described.run_id, chosen.activity_id, 0.0)
        try:
            self._handle(client, window).pause()
        except perdure.AsyncActivityNotFoundError:
            self.refused += 1
            return
        window.start = time.time()
        self.paused += 1
        if rng.random() < UPDATE_CHANCE:
            # Its retry policy changed while paused (update_options): the
            # new one is the task's for the attempts after the unpause.
            interval = timedelta(milliseconds=rng.choice((20, 80)))
            try:
                self._handle(client, window).update_options(retry_initial_interval=interval)
                self.updated += 1
            except perdure.AsyncActivityNotFoundError:
                pass  # (it ended meanwhile)
        self.windows.append(window)
        self.held.append((window, now + rng.uniform(*PAUSED_FOR)))

    def _unpause_all(self, client: perdure.SyncClient) -> None:
        """Unpause every activity still paused with one batch (the chaos is
        over: no worker is killed now), which must find those and no other."""
        held = {(w.wf, w.ref): w for w, _ in self.held}
        for window in held.values():
            window.end = time.time()  # (before the batch: the window only shrinks)
        result = client.batch_activities("unpause", since=datetime(2000, 1, 1, tzinfo=UTC))
        strangers = [key for key in result.done if key not in held]
        if strangers or result.failed:
            raise checks.InvariantError(
                f"the batch unpause found activities nobody paused ({strangers}) or "
                f"failed ({result.failed}); paused were {sorted(held)}"
            )
        for key, window in held.items():  # (and none it should have found is left paused)
            described = client.get_handle(window.wf, window.run).describe()
            if any(a.activity_id == window.ref and a.paused for a in described.pending_activities):
                raise checks.InvariantError(
                    f"the batch unpause left {key} (run {window.run}) paused; it found "
                    f"{result.done}"
                )
        self.batch_unpaused = len(result.done)
        self.held = []

    @staticmethod
    def _handle(client: perdure.SyncClient, window: Window) -> Any:
        return client.get_async_activity_handle(
            workflow_id=window.wf, activity_id=window.ref, run_id=window.run
        )

    def check(
        self, executions: list[checks.Execution], starts: dict[tuple[str, int, int], float]
    ) -> int:
        """At most one execution of a paused activity began while it was
        paused, and that one is an attempt that had taken the activity's
        task before the pause (``starts``: when each attempt took it, from
        the histories' attempt records); returns how many did."""
        if self.held:
            raise checks.InvariantError(f"activities still paused at the end: {self.held}")
        began: dict[tuple[str, int], list[checks.Execution]] = defaultdict(list)
        for e in executions:
            began[(e.run, e.ref)].append(e)
        in_flight = 0
        for window in self.windows:
            assert window.end is not None
            inside = [
                e for e in began[(window.run, window.ref)] if window.start < e.at < window.end
            ]
            if len(inside) > 1:
                raise checks.InvariantError(
                    f"{window.wf} (run {window.run}): activity {window.ref} began "
                    f"{len(inside)} executions while paused (from {window.start:.3f} to "
                    f"{window.end:.3f}): {inside}"
                )
            for e in inside:
                took = starts.get((e.run, e.ref, e.attempt))
                if took is None or took >= window.start:
                    raise checks.InvariantError(
                        f"{window.wf} (run {window.run}): activity {window.ref}'s attempt "
                        f"{e.attempt} began while it was paused (from {window.start:.3f}), "
                        f"its task taken at {took}: after the pause"
                    )
            in_flight += len(inside)
        return in_flight
