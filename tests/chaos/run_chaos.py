"""The chaos fuzzer's driver: a mixed workload on 2-4 worker processes, killed at will.

While the chaos lasts, the driver keeps a stream of workflows open (``chaos_workloads``),
sends signals, SIGKILLs a random worker at random moments, and arms workers with named
crash points (``PERDURE_CRASH_AT``, see ``perdure._worker.crashpoints``) so that they
kill themselves at exact moments of their commit path. Every dead worker is replaced at
once. Then it stops killing, lets the work drain, and checks every history and execution
side file against the guarantees (``chaos_checks``).

Run it by hand for a long session (any database URL; the default is a fresh SQLite file)::

    .venv/bin/python tests/chaos/run_chaos.py --seconds 300 [--db postgresql://...] [--seed 7]

Imports perdure (client side only) and the two sibling modules.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import chaos_builds  # noqa: E402
import chaos_checks as checks  # noqa: E402
import chaos_stops  # noqa: E402
import chaos_workloads as workloads  # noqa: E402
from chaos_builds import Builds  # noqa: E402
from chaos_ledger import Ledgers  # noqa: E402
from chaos_pauses import Pauses  # noqa: E402

sys.path.insert(0, str(HERE.parent / "crash"))
from crash_harness import attempt_spans, most_started, peak_running  # noqa: E402

import perdure  # noqa: E402
from perdure import _history as h  # noqa: E402
from perdure._worker.crashpoints import CRASH_POINTS, ENV_VAR, STARTER_POINTS  # noqa: E402

CLOSED = {"completed", "failed", "cancelled", "terminated", "timed_out"}
# The fleet's runs' fairness keys (None: none), so the workers' claims take
# the queues' keys in turn, under the chaos too.
FAIRNESS_KEYS = (None, "tenant-a", "tenant-b", "tenant-c")
# What a worker logs when it repairs a run a bug stranded (perdure._worker.repairs).
STRANDED = "no workflow task to read them"


class ChaosFailure(AssertionError):
    """The run broke a guarantee, or could not finish; the message has diagnostics."""


@dataclass
class ChaosConfig:
    root: Path  # side files and worker logs go here
    url: str | None = None  # None: a fresh SQLite file under root
    seconds: float = 20.0  # how long the killing lasts
    workers: int = 3
    seed: int = 0
    lease_timeout: float = 1.5
    poll_interval: float = 0.05
    kill_every: tuple[float, float] = (0.7, 2.0)  # seconds between random kills
    max_open: int = 8  # top-level workflows open at once
    drain_timeout: float = 45.0
    max_extension: float = 15.0  # more chaos, if a crash point has not been hit yet
    # (the chaos workers are `perdure worker` processes: they start no runs)
    crash_points: tuple[str, ...] = tuple(p for p in CRASH_POINTS if p not in STARTER_POINTS)


@dataclass
class ChaosReport:
    url: str
    seed: int
    seconds: float
    elapsed: float = 0.0
    random_kills: int = 0
    crash_point_kills: Counter[str] = field(default_factory=Counter)
    workers_started: int = 0
    workflows: Counter[str] = field(default_factory=Counter)
    signals_accepted: int = 0
    updates_answered: int = 0
    update_calls: int = 0  # (each retry of an update by its id counted)
    scheduled: int = 0  # runs the schedule started (one per time)
    limited_attempts: int = 0  # attempts on the limited queue (LIMITED_QUEUE)
    limited_peak: int = 0  # the most of them running at once, by their records
    limited_keys: int = 0  # the fairness keys among their runs (each one at a time)
    limited_rate_peak: int = 0  # the most of one key's started in any LIMITED_WINDOW
    missed: int = 0  # times it missed (no worker ran it then)
    priority_changes: int = 0  # set_priority calls that reached an open run
    key_changes: int = 0  # set_fairness_key calls that reached an open run (not a pipeline)
    handed_off: int = 0  # hand_off attempts that gave the driver their task token
    async_completed: int = 0  # of them, completed by the driver with the token
    async_failed: int = 0  # failed by the driver (then retried, with a new token)
    async_refused: int = 0  # tokens refused: a second outcome, or an attempt lost meanwhile
    async_stopped: Counter[str] = field(default_factory=Counter)  # by reason: chaos_stops
    holds_released: int = 0  # attempts of cancellers' holds released before the undoing step
    ledgers: Ledgers | None = None  # the ledgers' database, and what their checks counted
    pauses: int = 0  # activities the driver paused (and unpaused: chaos_pauses)
    options_updated: int = 0  # of those, how many had their retry policy changed
    batch_unpaused: int = 0  # of those, still paused at the chaos's end: unpaused by one batch
    paused_in_flight: int = 0  # of their executions, begun while paused (at most one each)
    builds: Builds = field(default_factory=Builds)  # the workers' builds: chaos_builds
    counts: checks.Counts = field(default_factory=checks.Counts)

    @property
    def kills(self) -> int:
        return self.random_kills + sum(self.crash_point_kills.values())

    def summary(self) -> str:
        c = self.counts
        lg = self.ledgers
        ledgers = (
            f"{lg.posts} ledger rows written once ({lg.answered} answered from the record "
            f"after a kill, {lg.rolled_back} runs rolled back); "
            if lg
            else ""
        )
        points = ", ".join(f"{p} x{n}" for p, n in sorted(self.crash_point_kills.items()))
        return (
            f"chaos on {self.url} (seed {self.seed}, {self.seconds:g}s of kills, "
            f"{self.elapsed:.1f}s in all): survived {self.kills} SIGKILLs "
            f"({self.random_kills} at random moments, {sum(self.crash_point_kills.values())} "
            f"at crash points: {points or 'none'}); {self.workers_started} worker processes; "
            f"{sum(self.workflows.values())} workflows ({dict(self.workflows)}) over "
            f"{c.runs} runs and {c.events} events; {c.executions} activity executions "
            f"({c.re_executions} re-run after a kill, {c.planned_failures} planned failures "
            f"retried); {self.signals_accepted} signals; {self.updates_answered} updates "
            f"answered ({self.update_calls} calls); {c.timers_fired} timers fired; "
            f"{c.stream_values} stream values; {self.priority_changes} priority changes; "
            f"{self.key_changes} fairness key changes; "
            f"{self.handed_off} attempts completed from outside by task token "
            f"({self.async_completed} completed, {self.async_failed} failed and retried, "
            f"{self.async_refused} tokens refused; stopped by a pause or a reset at their "
            f"heartbeat and handed back: {dict(self.async_stopped)}); "
            f"{self.holds_released} holds released by attempts their canceller waited for; "
            f"{ledgers}"
            f"{self.pauses} activities paused "
            f"and unpaused ({self.paused_in_flight} of their attempts in flight at the "
            f"pause, none begun after; {self.options_updated} given new options, "
            f"{self.batch_unpaused} unpaused by one batch at the end); "
            f"a 1 s schedule started {self.scheduled} runs, one per time "
            f"({self.missed} times missed); {self.limited_attempts} attempts on a queue "
            f"limited to {workloads.LIMITED_RUNNING} at once, at most {self.limited_peak} at once, "
            f"and to {workloads.LIMITED_PER_KEY} of each of their {self.limited_keys} keys, "
            f"{workloads.LIMITED_STARTS_PER_KEY} of a key started per "
            f"{workloads.LIMITED_WINDOW} s (at most {self.limited_rate_peak}); "
            f"{self.builds.summary()}"
        )


# ---------------------------------------------------------------- worker processes


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    crash_at: str | None
    queue: str = "default"  # the task queue it serves
    build: str | None = None  # its --build-id (the workflows' workers: chaos_builds)
    killed: bool = False  # by the driver
    reaped: bool = False  # its death has been accounted for

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Fleet:
    """The worker processes: started, killed, reaped and replaced."""

    def __init__(
        self, cfg: ChaosConfig, url: str, side: Path, report: ChaosReport, ledgers: Ledgers
    ) -> None:
        self.cfg, self.url, self.side, self.report = cfg, url, side, report
        self.ledgers = ledgers
        self.rng = random.Random(cfg.seed)
        self.workers: list[Worker] = []
        self.points: deque[str] = deque(cfg.crash_points)
        self.armed = True  # new workers get a crash point
        self.hits = (1, 3)  # a worker dies at its point's n-th hit, n drawn from these

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.proc.poll() is None]

    def ready(self, w: Worker) -> bool:
        return (self.side / f"ready-{w.pid}").exists()

    def fill(self) -> None:
        """Start workers until each task queue has its number live: the
        workflows' (``cfg.workers``) and the limited queue's (one)."""
        for queue, wanted in (("default", self.cfg.workers), (workloads.LIMITED_QUEUE, 1)):
            while sum(w.queue == queue for w in self.live()) < wanted:
                self.start(queue)
        # Each build keeps a live worker of the workflows (the runs pinned to it wait for one).
        builds = {w.build for w in self.live() if w.queue == "default"}
        for build in chaos_builds.BUILDS:
            if build not in builds:
                self.start("default", build)

    def start(self, queue: str = "default", build: str | None = None) -> Worker:
        if queue == "default" and build is None:
            live = [w.build for w in self.live() if w.queue == queue]
            build = self.report.builds.for_new_worker(live)
        crash_at = None
        # One worker always runs unarmed, so that progress never depends on luck.
        # The limited queue's worker is never armed: it takes no turn, so a
        # turn's point given it waited there until a random kill (a short run
        # on a slow machine ended with three points never hit, session 69).
        if self.armed and self.points and len(self.live()) > 0 and queue == "default":
            crash_at = f"{self.points[0]}:{self.rng.randint(*self.hits)}"
            self.points.rotate(-1)  # every point in turn
        name = f"worker-{len(self.workers) + 1}"
        log = self.side.parent / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("PERDURE_DB", ENV_VAR)}
        env.update(PERDURE_TEST_DIR=str(self.side), PYTHONUNBUFFERED="1")
        env[workloads.LEDGER_ENV] = self.ledgers.url
        if crash_at:
            env[ENV_VAR] = crash_at
        cmd = [
            sys.executable, "-m", "perdure", "worker", str(HERE / "chaos_workloads.py"),
            "--db", self.url,
            "--lease-timeout", str(self.cfg.lease_timeout),
            "--poll-interval", str(self.cfg.poll_interval),
            "--task-queue", queue,
            "--log-level", "WARNING",
            *(["--build-id", build] if build else []),
        ]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        worker = Worker(name, proc, log, crash_at, queue, build=build)
        self.workers.append(worker)
        self.report.workers_started += 1
        return worker

    def focus(self, missing: set[str]) -> None:
        """Past its time: arm new workers with the points not hit yet only,
        each at its first hit (a rare one, such as an attempt awaiting
        completion, had been missed in a slow short run: a worker armed for
        its third hit was killed first)."""
        if set(self.points) != missing:
            self.points = deque(p for p in self.cfg.crash_points if p in missing)
            self.hits = (1, 1)

    def kill_random(self) -> bool:
        """SIGKILL a random worker that is up and serving; False if none is (yet)."""
        candidates = [w for w in self.live() if self.ready(w)]
        if candidates:
            victim = self.rng.choice(candidates)
            victim.killed = True
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            self.report.random_kills += 1
            if victim.crash_at:  # its crash point was not reached: the next worker gets it
                point = victim.crash_at.split(":")[0]
                if point in self.points:  # (not if focus() has dropped it since: it was hit)
                    self.points.remove(point)
                    self.points.appendleft(point)
        return bool(candidates)

    def reap(self) -> None:
        """Account for every worker that died, and start one in its place."""
        for w in self.workers:
            if w.proc.poll() is None or w.killed or w.reaped:
                continue
            w.reaped = True
            point = w.crash_at.split(":")[0] if w.crash_at else None
            if (
                w.proc.returncode == -signal.SIGKILL
                and point
                and f"crash point {point}" in (w.output())
            ):
                self.report.crash_point_kills[point] += 1
                self.start(w.queue, w.build)
                continue
            raise ChaosFailure(
                f"{w.name} (pid {w.pid}) exited with code {w.proc.returncode} on its own"
                f"\n{self.diagnostics()}"
            )

    def killed_pids(self) -> set[int]:
        return {w.pid for w in self.workers if w.killed or w.proc.returncode == -signal.SIGKILL}

    def stop(self) -> None:
        for w in self.live():
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=30)

    def diagnostics(self, tail: int = 3000) -> str:
        parts = []
        for w in self.workers:
            rc = w.proc.poll()
            state = "killed" if w.killed else ("alive" if rc is None else f"rc={rc}")
            out = w.output().strip()[-tail:] or "(no output)"
            parts.append(f"--- {w.name} pid {w.pid} ({state}, crash_at={w.crash_at}) ---\n{out}")
        return "\n".join(parts)

    def tracebacks(self) -> list[str]:
        return [f"{w.name}:\n{w.output()}" for w in self.workers if "Traceback" in w.output()]


# ---------------------------------------------------------------- the workload


@dataclass
class Started:
    id: str
    kind: str
    args: list[Any]
    run_id: str
    signals_to_send: int = 0
    accepted: list[int] = field(default_factory=list)
    done: bool = False
    priority: int = h.DEFAULT_PRIORITY  # as started, or as set_priority last changed it
    # As started, or as set_fairness_key last changed it (its queues' turns:
    # docs/queues.md). A pipeline's never changes: its attempts on the limited
    # queue are checked against the limit per key by its run's key.
    fairness_key: str | None = None


def new_workflow(rng: random.Random, n: int) -> tuple[str, list[Any], int]:
    kinds = (
        "pipeline",
        "mailbox",
        "family",
        "rollover",
        "pipeline",
        "relay",
        "desk",
        "callback",
        "canceller",
        "ledger",
    )
    kind = kinds[n % len(kinds)]
    tag = f"{kind}-{n}"
    if kind == "pipeline":
        return kind, [tag, rng.randint(2, 5), rng.randint(1, 3)], 0
    if kind in ("mailbox", "desk"):  # (the signals, or updates, to send)
        count = rng.randint(2, 5)
        return kind, [tag, count], count
    if kind == "family":
        return kind, [tag, rng.randint(1, 3)], 0
    if kind == "relay":
        return kind, [tag, rng.randint(2, 6)], 0
    if kind == "callback":
        return kind, [tag, rng.randint(2, 4)], 0
    if kind == "canceller":
        return kind, [tag], 0
    if kind == "ledger":
        return kind, [tag, rng.randint(2, 5)], 0
    return kind, [tag, 0, rng.randint(2, 4), []], 0


# A schedule runs through the chaos too: a pipeline every second, each time's
# run under its own id (deleted when the chaos ends, then checked like any run).
BEAT = "chaos-beat"
BEAT_ARGS = ["beat", 2, 2]


def scheduled_runs(client: perdure.SyncClient) -> list[perdure.WorkflowExecution]:
    found = client.list(workflow="pipeline", search=f"{BEAT}@", limit=100_000)
    return [r for r in found if r.id.startswith(f"{BEAT}@")]


def _call_an_update(
    client: perdure.SyncClient, open_flows: list[Started], report: ChaosReport
) -> None:
    """One call of one desk's next update (the desks take turns), with a
    short timeout: unanswered, it is called again with the same id later."""
    desks = [f for f in open_flows if f.kind == "desk" and f.signals_to_send]
    if not desks:
        return
    f = desks[report.update_calls % len(desks)]
    payload = len(f.accepted) + 1000 * int(f.id.split("-")[1])
    report.update_calls += 1
    try:
        answer = client.get_handle(f.id).update(
            "add", payload, update_id=f"{f.id}/u{len(f.accepted)}", timeout=0.05
        )
    except TimeoutError:
        return  # (its worker may be dead: the request stays queued)
    if answer != [*f.accepted, payload]:
        raise checks.InvariantError(f"{f.id}: update answered {answer}, after {f.accepted}")
    f.accepted.append(payload)
    f.signals_to_send -= 1
    report.updates_answered += 1


@dataclass
class HandOffs:
    """The driver's side of the callback workflows: the task tokens their
    hand_off attempts logged, and what became of each (see answer)."""

    side: Path
    seen: set[str] = field(default_factory=set)  # tokens read from the logs
    records: list[dict[str, Any]] = field(default_factory=list)  # all of them, as logged
    failed: set[str] = field(default_factory=set)  # the tokens the driver failed
    stopped: set[str] = field(default_factory=set)  # those it stopped (chaos_stops)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # not answered yet
    # (workflow id, run, ref) -> the attempt the driver completed (one per activity)
    completed: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def read(self, report: ChaosReport) -> None:
        for path in sorted(self.side.glob("handoff-*.log")):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["token"] not in self.seen:
                    self.seen.add(record["token"])
                    self.records.append(record)
                    self.waiting.append(record)
                    report.handed_off += 1

    def executions(self) -> list[checks.Execution]:
        """The hand_off attempts as executions (see chaos_checks): an
        attempt the driver failed is a planned failure; one it stopped is
        left out (handed back uncounted, its successor has its number)."""
        return [
            checks.Execution(
                **{k: v for k, v in r.items() if k != "token"}, fails=r["token"] in self.failed
            )
            for r in self.records
            if r["token"] not in self.stopped
        ]

    def answer(self, client: perdure.SyncClient, rng: random.Random, report: ChaosReport) -> None:
        """Give some waiting attempts their outcome: a result, but a failure
        to the first attempt of each flow's first step (retried, with a new
        token: planned, not drawn, so that every run has some); a completed
        one now and then again (refused). A token whose attempt was lost with
        a killed worker is refused too: its retry logs a new one."""
        self.read(report)
        keep = []
        for record in self.waiting:
            if rng.random() < 0.6:
                keep.append(record)
                continue
            if rng.random() < chaos_stops.STOP_CHANCE:
                reason = chaos_stops.stop(client, rng, record)
                if reason is not None:
                    self.stopped.add(record["token"])
                    report.async_stopped[reason] += 1
                    continue
            remote = client.get_async_activity_handle(record["token"])
            try:
                if record["attempt"] == 1 and record["tag"].endswith(":c0"):
                    remote.fail(RuntimeError(f"planned failure of {record['tag']}"))
                    self.failed.add(record["token"])
                    report.async_failed += 1
                    continue
                remote.complete(workloads.handed_off_result(record["tag"]))
            except perdure.AsyncActivityNotFoundError:
                report.async_refused += 1
                continue
            key = (record["wf"], record["run"], record["ref"])
            if key in self.completed:
                raise checks.InvariantError(
                    f"{record['wf']}: activity {record['ref']} completed by the tokens of "
                    f"attempts {self.completed[key]} and {record['attempt']}"
                )
            self.completed[key] = record["attempt"]
            report.async_completed += 1
            if rng.random() < 0.1:
                try:
                    remote.complete("a second outcome")
                except perdure.AsyncActivityNotFoundError:
                    report.async_refused += 1
                else:
                    raise checks.InvariantError(f"{record['wf']}: a token completed twice")
        self.waiting = keep


def _a_hold_released(side: Path) -> bool:
    """Whether an attempt of a canceller's hold has logged its release
    (chaos_workloads.hold; the check that needs one: test_chaos)."""
    return any('"release"' in path.read_text() for path in side.glob("hold-*.log"))


def run_chaos(cfg: ChaosConfig) -> ChaosReport:
    """Run one chaos session and check it; raises :class:`ChaosFailure` (or an
    :class:`~chaos_checks.InvariantError`) with diagnostics when a guarantee broke."""
    side = cfg.root / "side"
    side.mkdir(parents=True, exist_ok=True)
    url = cfg.url or f"sqlite:///{cfg.root / 'chaos.db'}"
    report = ChaosReport(url=url, seed=cfg.seed, seconds=cfg.seconds)
    rng = random.Random(cfg.seed ^ 0x5EED)
    started_at = time.monotonic()
    client = perdure.SyncClient.connect(url)
    report.ledgers = ledgers = Ledgers(url, side)
    ledgers.create()
    fleet = Fleet(cfg, url, side, report, ledgers)
    flows: list[Started] = []
    hand_offs = HandOffs(side)
    pauses = Pauses()
    try:
        # The pipeline's parallel steps run on a queue of their own, with limits.
        client.set_queue_limits(
            workloads.LIMITED_QUEUE,
            max_running=workloads.LIMITED_RUNNING,
            max_running_per_key=workloads.LIMITED_PER_KEY,
            max_starts_per_key=workloads.LIMITED_STARTS_PER_KEY,
            per=timedelta(seconds=workloads.LIMITED_WINDOW),
        )
        fleet.fill()
        _wait(lambda: all(fleet.ready(w) for w in fleet.live()), 30, fleet, "workers to start")
        beat = client.create_schedule(
            BEAT, "pipeline", *BEAT_ARGS, every=timedelta(seconds=1), overlap="allow"
        )
        beating = True
        chaos_end = time.monotonic() + cfg.seconds
        next_kill = time.monotonic() + rng.uniform(*cfg.kill_every)
        next_poll = 0.0
        calm_since = chaos_end
        while True:
            now = time.monotonic()
            fleet.reap()
            # Past its time, the chaos goes on (for at most max_extension s) until every
            # crash point has been hit at least once, and a canceller's hold released
            # (on a loaded machine, few cancellers may have run by then).
            missing = set(cfg.crash_points) - set(report.crash_point_kills)
            wanting = bool(missing) or (now >= chaos_end and not _a_hold_released(side))
            chaotic = now < chaos_end or (wanting and now < chaos_end + cfg.max_extension)
            if now >= chaos_end and missing:
                fleet.focus(missing)
            if chaotic:
                calm_since = now
            else:
                fleet.armed = False
                if beating:
                    beat.delete()
                    beating = False
            open_flows = [f for f in flows if not f.done]
            if chaotic and len(open_flows) < cfg.max_open:
                kind, args, signals = new_workflow(rng, len(flows))
                priority = rng.choice(h.PRIORITIES)
                key = rng.choice(FAIRNESS_KEYS)  # (the claims then go key by key)
                handle = client.start(
                    kind, *args, id=f"chaos-{len(flows)}", priority=priority, fairness_key=key
                )
                assert handle.run_id is not None
                flows.append(
                    Started(
                        handle.id,
                        kind,
                        args,
                        handle.run_id,
                        signals,
                        priority=priority,
                        fairness_key=key,
                    )
                )
                report.workflows[kind] += 1
            if chaotic and open_flows and rng.random() < 0.05:
                flow, priority = rng.choice(open_flows), rng.choice(h.PRIORITIES)
                report.priority_changes += _change(client, flow, "priority", priority)
            keyable = [f for f in open_flows if f.kind != "pipeline"]
            if chaotic and keyable and rng.random() < 0.03:
                flow, key = rng.choice(keyable), rng.choice(FAIRNESS_KEYS)
                report.key_changes += _change(client, flow, "fairness_key", key)
            _call_an_update(client, open_flows, report)
            pauses.step(client, rng, open_flows, chaotic)
            report.builds.step(client, now, chaotic)
            if any(f.kind == "callback" for f in open_flows):
                hand_offs.answer(client, rng, report)
            for f in open_flows:
                if f.kind == "desk":
                    continue  # (updates: above)
                if f.signals_to_send and (not chaotic or rng.random() < 0.02):
                    payload = len(f.accepted) + 1000 * int(f.id.split("-")[1])
                    client.get_handle(f.id).signal("item", payload)
                    f.accepted.append(payload)  # signal() returned: the signal is durable
                    f.signals_to_send -= 1
                    report.signals_accepted += 1
            if chaotic and now >= next_kill and fleet.kill_random():
                fleet.reap()
                fleet.fill()
                next_kill = now + rng.uniform(*cfg.kill_every)
            if now >= next_poll:
                next_poll = now + 0.25
                for f in open_flows:
                    status = client.get_handle(f.id).describe().status
                    # (A desk is done once each update's answer came back too:
                    # its run may end while an answered call had timed out.)
                    f.done = status in CLOSED and not (f.kind == "desk" and f.signals_to_send)
                ended = not chaotic and all(f.done for f in flows)
                if ended and all(r.status in CLOSED for r in scheduled_runs(client)):
                    break
            if now > calm_since + cfg.drain_timeout:
                stuck = [f.id for f in flows if not f.done]
                raise ChaosFailure(
                    f"{len(stuck)} workflows did not finish within {cfg.drain_timeout:g}s "
                    f"after the chaos ended: {stuck[:10]}\n{_describe(client, stuck)}"
                    f"\n{fleet.diagnostics()}"
                )
            time.sleep(0.02)
        report.seconds = round(calm_since - (chaos_end - cfg.seconds), 1)
        fleet.stop()
        hand_offs.read(report)  # (any logged since the last pass)
        starts: dict[tuple[str, int, int], float] = {}
        executions = _verify(
            client, flows, fleet, side, report, hand_offs.executions(), starts, ledgers
        )
        report.pauses, report.options_updated = pauses.paused, pauses.updated
        report.batch_unpaused = pauses.batch_unpaused
        report.builds.count(client)
        report.paused_in_flight = pauses.check(executions, starts)
        _verify_hand_offs(client, hand_offs)
        if url.startswith("sqlite:"):
            _integrity(Path(url[len("sqlite:///") :]))
        bad = fleet.tracebacks()
        if bad:
            raise ChaosFailure("a worker logged a traceback:\n" + "\n".join(bad)[-6000:])
        # A run the workers' safety net had to repair (perdure._worker.repairs)
        # finished, but a bug stranded it first.
        stranded = [w.output() for w in fleet.workers if STRANDED in w.output()]
        if stranded:
            raise ChaosFailure("a worker repaired a stranded run:\n" + "\n".join(stranded)[-6000:])
    finally:
        fleet.stop()
        client.close()
    report.elapsed = time.monotonic() - started_at
    return report


def _verify_hand_offs(client: perdure.SyncClient, hand_offs: HandOffs) -> None:
    """Each hand_off activity completed with the attempt whose token the
    driver completed it with."""
    for (wid, run_id, ref), attempt in hand_offs.completed.items():
        history = client.get_handle(wid, run_id).history()
        done = [e for e in history if e["type"] == "ActivityCompleted" and e["ref"] == ref]
        if [e["attempt"] for e in done] != [attempt]:
            raise checks.InvariantError(
                f"run {run_id}: activity {ref} completed by attempt {attempt}'s token, "
                f"but its history has {done}"
            )


def _wait(predicate: Any, timeout: float, fleet: Fleet, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        fleet.reap()
        if time.monotonic() > deadline:
            raise ChaosFailure(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _change(client: perdure.SyncClient, flow: Started, option: str, value: Any) -> bool:
    """set_priority or set_fairness_key (``option``: "priority" or
    "fairness_key") on a flow's run, the latest of its chain, if still open;
    the flow remembers it for the final checks."""
    handle = client.get_handle(flow.id)
    try:
        getattr(handle, f"set_{option}")(value)
    except perdure.WorkflowClosedError:
        return False
    setattr(flow, option, value)
    return True


def _describe(client: perdure.SyncClient, ids: list[str]) -> str:
    lines = []
    for wid in ids[:5]:
        handle = client.get_handle(wid)
        d = handle.describe()
        lines.append(f"{wid}: {d.status} history={d.history_length} last_error={d.last_error!r}")
        lines.append(
            f"  {d.workflow_type} build={d.build_id} waiting_signals={d.waiting_signals}"
            f" waiting_updates={d.waiting_updates} timers={d.pending_timers}"
            f" children={d.pending_children} waiting_for_worker={d.waiting_for_worker}"
            f" in_backlog={d.in_backlog} ahead={d.ahead} awaiting_nothing={d.awaiting_nothing}"
        )
        lines += [f"  pending {a}" for a in d.pending_activities]
        lines.append("  history: " + ", ".join(e["type"] for e in handle.history()))
    return "\n".join(lines)


def _verify(
    client: perdure.SyncClient,
    flows: list[Started],
    fleet: Fleet,
    side: Path,
    r: ChaosReport,
    executions: list[checks.Execution],
    starts: dict[tuple[str, int, int], float],
    ledgers: Ledgers,
) -> list[checks.Execution]:
    """Every workflow ended as expected, and every run's history and the side files
    satisfy the guarantees (see ``chaos_checks``); returns every execution, and
    fills ``starts``: (run, ref, attempt) -> when the attempt took its task, as
    the history's attempt records say."""
    completed: dict[str, dict[int, int]] = {}
    c = r.counts
    limited: list[tuple[float, float]] = []  # the attempts on the limited queue
    limited_by_key: dict[str, list[tuple[float, float]]] = {}  # (the same, by the run's key)

    def check_run(
        wid: str, run_id: str, accepted: list[int] | None = None, kind: str = ""
    ) -> tuple[str, str | None]:
        """``accepted``: the signals a mailbox, or the updates a desk, had accepted."""
        handle = client.get_handle(wid, run_id)
        d = handle.describe()
        history = handle.history()
        spans = attempt_spans([history], workloads.LIMITED_QUEUE)
        limited.extend(spans)
        limited_by_key.setdefault(d.fairness_key or "", []).extend(spans)
        events = checks.check_history_shape(run_id, history)
        closed = d.status != "running"
        completed[run_id] = checks.check_activities(run_id, events, closed)
        c.timers_fired += checks.check_timers(run_id, events, closed)
        checks.check_search_attributes(run_id, events, d.search_attributes)
        checks.check_priority(run_id, events, d.status, d.priority)
        checks.check_fairness_key(run_id, events, d.status, d.fairness_key)
        streams = {
            info.key: [
                (e.position, e.value, e.source)
                for e in handle.stream_page(info.key, 0, 10_000).entries
            ]
            for info in handle.streams()
        }
        c.stream_values += checks.check_streams(run_id, events, completed[run_id], streams)
        if d.search_attributes:
            # The index finds the run by each of its attributes.
            for name, value in d.search_attributes.items():
                listed = client.list(search_attributes={name: value}, search=wid, limit=100_000)
                if run_id not in {run.run_id for run in listed}:
                    raise checks.InvariantError(f"run {run_id}: not listed by {name}={value!r}")
        if kind == "mailbox" and accepted is not None:
            checks.check_signals(run_id, events, accepted)
            c.signals += len(accepted)
        if kind == "desk" and accepted is not None:
            checks.check_updates(run_id, events, accepted)
        for e in events:
            if isinstance(e, (h.ActivityCompleted, h.ActivityFailed)):
                for record in e.attempts:
                    starts[(run_id, e.ref, record["attempt"])] = record["started_at"]
        c.runs += 1
        c.events += len(events)
        c.by_status[d.status] += 1
        for e in events:  # children: checked like any run
            if isinstance(e, h.ChildWorkflowStarted):
                check_run(e.workflow_id, e.run_id)
        return d.status, d.continued_to

    for f in flows:
        run_id: str | None = f.run_id
        status = "unknown"
        while run_id is not None:
            status, run_id = check_run(f.id, run_id, f.accepted, f.kind)
        if status != "completed":
            raise checks.InvariantError(f"{f.id} ({f.kind} {f.args}) ended {status}")
        result = client.get_handle(f.id).result(timeout=5)
        last = client.get_handle(f.id).describe()
        if last.priority != f.priority:
            raise checks.InvariantError(f"{f.id}: priority {last.priority}, last set {f.priority}")
        if last.fairness_key != f.fairness_key:  # (kept across continue-as-new and resets)
            raise checks.InvariantError(
                f"{f.id}: fairness key {last.fairness_key!r}, last set {f.fairness_key!r}"
            )
        if f.kind == "ledger":
            ledgers.check(client, f.id, f.run_id, f.args)
            completed.pop(f.run_id)  # (no executions logged: see Ledgers.check)
            continue
        expected = workloads.expected_result(f.kind, f.args, f.accepted)
        if result != expected:
            raise checks.InvariantError(f"{f.id}: result {result!r}, expected {expected!r}")
    # The schedule's runs: one per time, each checked as any run and complete;
    # none started that the schedule did not count, but for the one its
    # deletion may have cut off between the start and its record.
    scheduled = scheduled_runs(client)
    for run in scheduled:
        status, _ = check_run(run.id, run.run_id, None)
        if status != "completed":
            raise checks.InvariantError(f"{run.id} (scheduled) ended {status}")
        result = client.get_handle(run.id).result(timeout=5)
        if result != workloads.expected_result("pipeline", BEAT_ARGS, []):
            raise checks.InvariantError(f"{run.id}: result {result!r}")
    if len({run.id for run in scheduled}) != len(scheduled):
        raise checks.InvariantError(f"a time of the schedule has two runs: {scheduled}")
    told = client.get_schedule(BEAT).describe()
    if not told.runs_started <= len(scheduled) <= told.runs_started + 1:
        raise checks.InvariantError(
            f"the schedule counted {told.runs_started} runs, but {len(scheduled)} exist"
        )
    r.scheduled, r.missed = len(scheduled), told.times_missed
    r.limited_attempts, r.limited_peak = len(limited), peak_running(limited)
    if r.limited_peak > workloads.LIMITED_RUNNING:
        raise checks.InvariantError(
            f"{r.limited_peak} attempts ran at once on {workloads.LIMITED_QUEUE}, limited to "
            f"{workloads.LIMITED_RUNNING}: {sorted(limited)}"
        )
    for key, spans in limited_by_key.items():  # (the unkeyed: one key, '')
        if peak_running(spans) > workloads.LIMITED_PER_KEY:
            raise checks.InvariantError(
                f"{peak_running(spans)} attempts of key {key!r} ran at once on "
                f"{workloads.LIMITED_QUEUE}, limited to {workloads.LIMITED_PER_KEY} per key: "
                f"{sorted(spans)}"
            )
        # (An attempt's recorded start is the time its claim counted the
        # window at: the store's own comparison, made again.)
        started = most_started(spans, workloads.LIMITED_WINDOW)
        if started > workloads.LIMITED_STARTS_PER_KEY:
            raise checks.InvariantError(
                f"{started} attempts of key {key!r} started within {workloads.LIMITED_WINDOW} s "
                f"on {workloads.LIMITED_QUEUE}, limited to {workloads.LIMITED_STARTS_PER_KEY}: "
                f"{sorted(spans)}"
            )
        r.limited_rate_peak = max(r.limited_rate_peak, started)
    r.limited_keys = len(limited_by_key)
    for run in client.list(workflow="perdure.schedule", search=BEAT, limit=100_000):
        checks.check_history_shape(run.run_id, client.get_handle(run.id, run.run_id).history())
    for path in sorted(side.glob("exec-*.log")):
        executions += [
            checks.Execution(**json.loads(line)) for line in path.read_text().splitlines()
        ]
    checks.check_executions(executions, completed, fleet.killed_pids(), c)
    holds = [
        json.loads(line)
        for path in sorted(side.glob("hold-*.log"))
        for line in path.read_text().splitlines()
    ]
    r.holds_released = checks.check_holds(holds, executions, fleet.killed_pids())
    return executions


def _integrity(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    if result != [("ok",)]:
        raise ChaosFailure(f"SQLite integrity_check of {path}: {result}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="perdure-chaos-"))
    cfg = ChaosConfig(
        root=root, url=args.db, seconds=args.seconds, workers=args.workers, seed=args.seed
    )
    print(f"chaos: seed {cfg.seed}, work folder {root}", flush=True)
    report = run_chaos(cfg)
    print(report.summary())
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
