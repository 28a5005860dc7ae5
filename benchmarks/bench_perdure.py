"""Benchmarks of perdure itself: each mode prints one JSON line of results.

Usage: python benchmarks/bench_perdure.py MODE [--db URL] [options]
Modes: sequential, concurrent, parallel, remote, fanout, sleep, timers, signals,
recovery, replay, growth. ``concurrent --processes 2``: the same workflows run
by two ``perdure worker`` processes on one database, started from this
process; ``signals`` always runs in such processes (two by default).
Run by hand or through ``benchmarks/run.py`` (``make bench``); never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as w  # noqa: E402
from processes import LOOP, recovery, serving  # noqa: E402

import perdure  # noqa: E402
from perdure._converter import default_converter  # noqa: E402
from perdure._runtime import replay_history  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fresh_url(db: str, tag: str) -> str:
    """A database of its own for one measurement: a new SQLite file, or a new
    PostgreSQL database next to the one ``db`` names (earlier ones dropped).
    ``sqlite?transactions=thread``: a new SQLite file with those parameters."""
    if db.partition("?")[0] == "sqlite":
        folder = tempfile.mkdtemp(prefix=f"perdure-bench-{tag}-")
        query = db.partition("?")[2]
        return f"sqlite:///{folder}/bench.db" + (f"?{query}" if query else "")
    import psycopg

    name = f"perdure_bench_{tag}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(db)._replace(path=f"/{name}"))


async def with_worker(url: str, **options: Any) -> tuple[perdure.Client, perdure.Worker]:
    client = await perdure.Client.connect(url, tune_gc=options.get("tune_gc", True))
    client.poll_interval = 0.5
    worker = perdure.Worker(client, w.WORKFLOWS, w.ACTIVITIES, **options)
    await worker.__aenter__()
    return client, worker


def count_queries() -> list[int]:
    """Count the queries this process sends to PostgreSQL (each is a round
    trip): a figure that, unlike a time, no noisy neighbour disturbs."""
    import psycopg

    sent = [0]
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        sent[0] += 1
        return await execute(self, query, params, **kw)

    from perdure._store import postgres_wire

    simple_query = postgres_wire.simple_query

    async def counted_simple(conn: Any, query: bytes) -> Any:  # write transactions
        sent[0] += 1
        return await simple_query(conn, query)

    psycopg.AsyncCursor.execute = counted  # type: ignore[method-assign]
    postgres_wire.simple_query = counted_simple
    return sent


async def sequential(url: str, n: int, k: int) -> dict[str, Any]:
    client, worker = await with_worker(url)
    sent = count_queries() if not url.startswith("sqlite") else None
    try:
        for _ in range(5):
            await client.execute(w.steps, k)
        latencies = []
        queries0 = sent[0] if sent else 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            await client.execute(w.steps, k)
            latencies.append((time.perf_counter() - t) * 1000)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        queries = (sent[0] - queries0) / n if sent else None
    finally:
        await worker.__aexit__()
        await client.close()
    extra = {} if queries is None else {"queries_per_workflow": queries}
    return {
        "mode": "sequential",
        **extra,
        "cpu_ms_per_workflow": cpu / n * 1e3,
        "n": n,
        "k": k,
        "wf_per_s": n / wall,
        "steps_per_s": n * k / wall,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "mean_ms": statistics.mean(latencies),
    }


SLOTS = 500  # each worker's activity and turn slots in the concurrent modes (--slots)


async def concurrent(
    url: str, n: int, k: int, tune_gc: bool = True, slots: int = SLOTS, parallel: bool = False
) -> dict[str, Any]:
    """n workflows of k steps started at once; ``parallel``: each runs its
    steps at once (the ``parallel`` mode), not one after another."""
    client, worker = await with_worker(
        url, max_concurrent_workflow_tasks=slots, max_concurrent_activities=slots, tune_gc=tune_gc
    )
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        # Started at once: concurrent starts share group commits, as the
        # requests of a busy web application would.
        fn = w.parallel_steps if parallel else w.steps
        handles = await asyncio.gather(*(client.start(fn, k) for _ in range(n)))
        started = time.perf_counter() - t0
        await asyncio.gather(*(hd.result(timeout=600) for hd in handles))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await worker.__aexit__()
        await client.close()
    mode = "parallel" if parallel else "concurrent"
    return throughput(mode, n, k, wall, cpu, tune_gc=tune_gc, submit_s=started, slots=slots)


async def schedules(url: str, n: int, seconds: float) -> dict[str, Any]:
    """n schedules, each starting a one-step run every second, measured over
    ``seconds`` once they are going: scheduled runs started per second, and
    the process CPU per scheduled run, all in (the schedule's turn, its start
    activity, the run's start, its step and its close)."""
    client, worker = await with_worker(
        url, max_concurrent_workflow_tasks=SLOTS, max_concurrent_activities=SLOTS
    )
    try:
        for i in range(n):
            await client.create_schedule(f"s{i}", w.one_step, i, every=timedelta(seconds=1))
        await asyncio.sleep(2.0)  # (every schedule past its first turn)

        async def started() -> int:
            return len(await client.list(workflow="one_step", limit=1_000_000))

        before, cpu0, t0 = await started(), time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        runs = await started() - before
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        missed = [(await client.get_schedule(f"s{i}").describe()).times_missed for i in range(n)]
    finally:
        await worker.__aexit__()
        await client.close()
    return {
        "mode": "schedules",
        "schedules": n,
        "runs_per_s": runs / wall,
        "expected_per_s": n,
        "cpu_us_per_run": cpu / max(1, runs) * 1e6,
        "cpu_share": cpu / wall,
        "times_missed": sum(missed),
    }


async def timers(url: str, n: int, k: int) -> dict[str, Any]:
    """n workflows of k short durable sleeps (workloads.NAP) started at once:
    timers fired, and the turns they wake, per second ("steps" here)."""
    client, worker = await with_worker(url, max_concurrent_workflow_tasks=SLOTS)
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(client.start(w.naps, k) for _ in range(n)))
        assert await asyncio.gather(*(hd.result(timeout=600) for hd in handles)) == [k] * n
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await worker.__aexit__()
        await client.close()
    return throughput("timers", n, k, wall, cpu)


def throughput(mode: str, n: int, k: int, wall: float, cpu: float, **extra: Any) -> dict[str, Any]:
    """A throughput result. Process CPU (every thread) per step is the measure
    of overhead that a noisy neighbour disturbs least."""
    return {
        "mode": mode,
        **extra,
        "cpu_us_per_step": cpu / (n * k) * 1e6,
        "n": n,
        "k": k,
        "wf_per_s": n / wall,
        "steps_per_s": n * k / wall,
        "wall_s": wall,
    }


async def remote(
    url: str, n: int, k: int, max_running: int | None = None, keys: int = 0
) -> dict[str, Any]:
    """n workflows of k steps started at once, their activities on a task
    queue served by a second worker of this process (not the workflows'):
    every step is an activity claimed from its queue, its completion sent
    to the run's inbox, and a claimed turn, with no inline activity.
    ``max_running``: the queue has that limit (Client.set_queue_limits), so
    each claim counts the attempts running first. ``keys``: the runs are
    started with that many fairness keys in turn (docs/queues.md
    "Fairness"), so the claims of both queues go key by key."""
    client = await perdure.Client.connect(url)
    if max_running is not None:
        await client.set_queue_limits(w.REMOTE_QUEUE, max_running=max_running)
    workflows = perdure.Worker(client, w.WORKFLOWS, [], max_concurrent_workflow_tasks=SLOTS)
    activities = perdure.Worker(
        client, [], [w.far_step], task_queue=w.REMOTE_QUEUE, max_concurrent_activities=SLOTS
    )
    await workflows.__aenter__()
    await activities.__aenter__()
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start(w.far_steps, k, fairness_key=f"k{i % keys}" if keys else None)
                for i in range(n)
            )
        )
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await activities.__aexit__()
        await workflows.__aexit__()
        await client.close()
    return {
        "mode": "remote",
        "n": n,
        "k": k,
        "max_running": max_running,
        "keys": keys,
        "steps_per_s": n * k / wall,
        "wf_per_s": n / wall,
        "cpu_us_per_step": cpu / (n * k) * 1e6,
    }


async def fanout(url: str, n: int, k: int, after_step: bool = False) -> dict[str, Any]:
    """n parents started at once, each starting k one-step children at once
    and awaiting them all: children/s and CPU per child (each child is a
    run of its own, started by its parent's turn, and tells the parent when
    it ends)."""
    client, worker = await with_worker(url)
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        fn = w.step_then_fan_out if after_step else w.fan_out
        handles = await asyncio.gather(*(client.start(fn, k) for _ in range(n)))
        results = await asyncio.gather(*(h.result(timeout=600) for h in handles))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await worker.__aexit__()
        await client.close()
    assert results == [sum(range(k))] * n
    return {
        "mode": "fanout",
        "after_step": after_step,
        "n": n,
        "k": k,
        "children_per_s": n * k / wall,
        "cpu_us_per_child": cpu / (n * k) * 1e6,
    }


async def sleep(url: str, n: int) -> dict[str, Any]:
    """n workflows sleeping an hour: worker memory per sleeper, then n short
    naps to measure timer-fire lateness."""
    client, worker = await with_worker(url, cache_size=1000)
    try:
        base = rss_kb()
        t0 = time.perf_counter()
        batch = 500
        for start in range(0, n, batch):
            count = min(n, start + batch) - start
            await asyncio.gather(*(client.start(w.sleeper, 1.0) for _ in range(count)))
        while True:
            pending = await client.store.next_due(["default"], ("workflow",))
            if pending is None or pending > client.store.clock() + 60:
                break
            await asyncio.sleep(0.2)
        settle = time.perf_counter() - t0
        after = rss_kb()
        # 2,000 naps, all due at one moment a few seconds ahead (beside the
        # sleepers): how late does each timer fire?
        naps = min(n, 2000)
        due = time.time() + 5.0
        handles = await asyncio.gather(*(client.start(w.napper, due) for _ in range(naps)))
        started = time.time()
        fired = await asyncio.gather(*(hd.result(timeout=600) for hd in handles))
        if started > due:
            print(f"warning: the naps took {started - due:.1f}s too long to start", file=sys.stderr)
        lateness = [(f - due) * 1000 for f in fired]
    finally:
        await worker.__aexit__()
        await client.close()
    return {
        "mode": "sleep",
        "n": n,
        "settle_s": settle,
        "rss_before_kb": base,
        "rss_after_kb": after,
        "bytes_per_sleeper": (after - base) * 1024 / n,
        "nap_lateness_p50_ms": statistics.median(lateness),
        "nap_lateness_p99_ms": pct(lateness, 0.99),
    }


async def concurrent_processes(
    url: str,
    n: int,
    k: int,
    processes: int,
    slots: int = SLOTS,
    mode: str = "concurrent",
    max_running: int | None = None,
) -> dict[str, Any]:
    """As ``concurrent``, run by ``processes`` worker processes (``perdure
    worker``) on the same database; this process only starts the workflows and
    waits for their results, as a web application next to its workers would.
    ``mode`` "timers": the workflows of that mode. ``max_running``: the
    queue has that limit (so every step is claimed, none inline)."""
    async with serving(url, processes, "--max-activities", str(slots)) as (client, cpu_now):
        if max_running is not None:
            await client.set_queue_limits("default", max_running=max_running)
        cpu0 = cpu_now()
        t0 = time.perf_counter()
        fn = w.naps if mode == "timers" else w.steps
        handles = await asyncio.gather(*(client.start(fn, k) for _ in range(n)))
        await asyncio.gather(*(hd.result(timeout=600) for hd in handles))
        wall = time.perf_counter() - t0
        cpu = cpu_now() - cpu0
    return throughput(
        f"{mode}-processes",
        n,
        k,
        wall,
        cpu,
        processes=processes,
        slots=slots,
        max_running=max_running,
    )


SIGNAL_GAP = 0.05  # seconds between two rounds of the signals mode
SIGNAL_HISTORY = 200  # events each run of the signals mode records before its first wait


async def signals(url: str, n: int, k: int, processes: int) -> dict[str, Any]:
    """Runs that each wait for k signals, served by ``processes`` worker
    processes; this process sends the signals, in k rounds SIGNAL_GAP apart,
    one to every run a round (a step is a signal). Each run first records
    SIGNAL_HISTORY events, so that a replay costs what a long-lived run's
    does. Timed from the first round, once every run waits."""
    async with serving(url, processes) as (client, cpu_now):
        handles = await asyncio.gather(
            *(client.start(w.listener, k, SIGNAL_HISTORY) for _ in range(n))
        )
        while await client.store.next_due(["default"], ("workflow",)) is not None:
            await asyncio.sleep(0.05)  # (first turns still to take)
        cpu0 = cpu_now()
        t0 = time.perf_counter()
        for _ in range(k):
            await asyncio.gather(*(hd.signal("add", 1) for hd in handles))
            await asyncio.sleep(SIGNAL_GAP)
        await asyncio.gather(*(hd.result(timeout=600) for hd in handles))
        wall = time.perf_counter() - t0
        cpu = cpu_now() - cpu0
    return throughput("signals", n, k, wall, cpu, processes=processes)


async def replay(url: str, n: int) -> dict[str, Any]:
    client, worker = await with_worker(url)
    try:
        handle = await client.start(w.long_history, n)
        await handle.result(timeout=600)
        run_id = (await handle.describe()).run_id
        times, loads = [], []
        for _ in range(5):
            t = time.perf_counter()
            events = await client.store.history(run_id)
            loaded = time.perf_counter()
            replay_history(w.long_history, events, default_converter).evict()
            times.append((time.perf_counter() - t) * 1000)
            loads.append((loaded - t) * 1000)
    finally:
        await worker.__aexit__()
        await client.close()
    return {
        "mode": "replay",
        "events": len(events),
        "cold_replay_ms": statistics.median(times),
        "of_which_load_ms": statistics.median(loads),
    }


async def growth(url: str) -> dict[str, Any]:
    """Per-step cost inside one run whose history already holds 10, 1,000 and
    10,000 events (a sticky instance: a turn costs its new events only). The
    median gap between consecutive steps of 50, timed by the steps themselves."""
    out: dict[str, Any] = {"mode": "growth"}
    for size in (10, 1000, 10000):
        target = fresh_url(url, f"growth{size}")
        client, worker = await with_worker(target)
        try:
            stamps = await client.execute(w.grown, size, 50)
            gaps = [b - a for a, b in itertools.pairwise(stamps)]
            out[f"step_ms_after_{size}"] = statistics.median(gaps) * 1000
        finally:
            await worker.__aexit__()
            await client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "mode",
        choices=[
            "sequential",
            "concurrent",
            "parallel",
            "remote",
            "fanout",
            "sleep",
            "timers",
            "signals",
            "schedules",
            "recovery",
            "replay",
            "growth",
        ],
    )
    parser.add_argument(
        "--db",
        default="sqlite",
        help="'sqlite' (a fresh file; 'sqlite?transactions=thread' too) or a URL",
    )
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--same-identity", action="store_true")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the event loop of this process and of its perdure worker processes",
    )
    parser.add_argument(
        "--after-step",
        action="store_true",
        help="fanout: each parent runs one step before it starts its children",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="concurrent, timers, signals: run the workflows in this many worker processes"
        " (perdure worker; signals: 2 by default)",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        default=None,
        help="remote, concurrent --processes: the activities' task queue limited to this"
        " many attempts at once (Client.set_queue_limits)",
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=0,
        help="remote: the runs started with this many fairness keys in turn (0: none)",
    )
    parser.add_argument(
        "--no-tune-gc", action="store_true", help="concurrent: Worker and Client with tune_gc=False"
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=SLOTS,
        help=f"concurrent: each worker's activity slots (and, in one process, turn slots;"
        f" default {SLOTS})",
    )
    args = parser.parse_args()
    LOOP["name"] = args.loop
    run: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    url = fresh_url(args.db, args.mode)
    if args.mode == "sequential":
        result = run(sequential(url, args.n or 200, args.k))
    elif args.mode == "concurrent" and args.processes:
        result = run(
            concurrent_processes(
                url,
                args.n or 5000,
                args.k,
                args.processes,
                args.slots,
                max_running=args.max_running,
            )
        )
    elif args.mode == "concurrent":
        result = run(concurrent(url, args.n or 5000, args.k, not args.no_tune_gc, args.slots))
    elif args.mode == "parallel":
        n = args.n or 2000
        result = run(concurrent(url, n, args.k, slots=args.slots, parallel=True))
    elif args.mode == "remote":
        result = run(remote(url, args.n or 1000, args.k, args.max_running, args.keys))
    elif args.mode == "fanout":
        result = run(fanout(url, args.n or 500, args.k, args.after_step))
    elif args.mode == "sleep":
        result = run(sleep(url, args.n or 100_000))
    elif args.mode == "timers" and args.processes:
        n = args.n or 3000
        result = run(concurrent_processes(url, n, args.k, args.processes, args.slots, "timers"))
    elif args.mode == "signals":
        result = run(signals(url, args.n or 1000, args.k, args.processes or 2))
    elif args.mode == "timers":
        result = run(timers(url, args.n or 3000, args.k))
    elif args.mode == "schedules":
        result = run(schedules(url, args.n or 400, 10.0))
    elif args.mode == "recovery":
        result = recovery(url, args.same_identity)
    elif args.mode == "replay":
        result = run(replay(url, args.n or 10_000))
    else:
        result = run(growth(args.db))
    result["db"] = "sqlite" if url.startswith("sqlite") else "postgres"
    result["loop"] = args.loop
    result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


if __name__ == "__main__":
    main()
