"""Run the benchmark suite and write a report: ``python benchmarks/run.py [--peers]``
(``make bench``). Each measurement runs in a fresh process; results go to
``benchmarks/results/<time>.json`` plus a Markdown table, and a PNG plot to
``docs/img/bench.png``. Peers (DBOS Transact, Restate) run the same workloads
back to back when ``--peers`` is given and their set-up is available. Every
round also measures this machine's floor (``floor.py --engine``: a minimal
engine that records each step durably and does nothing else), one workflow
at a time and 100 at once, so that perdure's figures can be read against
what the disk and CPython allow in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def run(cmd: list[str], timeout: float = 1800) -> dict[str, Any] | None:
    print("$", " ".join(cmd), flush=True)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"  failed: {exc}\n{getattr(exc, 'stderr', '')}", flush=True)
        return None
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    print("  ", result, flush=True)
    return result


def _perdure(args: list[str], db: str, **tags: Any) -> list[dict[str, Any]]:
    r = run([sys.executable, str(HERE / "bench_perdure.py"), *args, "--db", db])
    return [{"engine": "perdure", **r, **tags}] if r else []


def perdure_round(dbs: list[str], quick: bool, index: int) -> list[dict[str, Any]]:
    """One round of the modes compared with the peers' (see main)."""
    n = "500" if quick else "5000"
    results = []
    for db in dbs:
        for args in (
            ["sequential", "-n", "50" if quick else "200"],
            ["concurrent", "-n", n],
            ["concurrent", "--processes", "2", "-n", n],
        ):
            results += _perdure(args, db, round=index)
    return results


def floor_round(quick: bool, index: int) -> list[dict[str, Any]]:
    """The minimal engine (floor.py --engine) in the shapes of perdure's
    sequential and concurrent modes, tagged with the round."""
    results = []
    for mode, batch, n in (
        ("sequential", "1", "500" if quick else "2000"),
        ("concurrent", "100", "5000" if quick else "50000"),
    ):
        r = run([sys.executable, str(HERE / "floor.py"), "--engine", "--batch", batch, "-n", n])
        if r:
            results.append({**r, "engine": "floor", "mode": mode, "round": index})
    return results


def perdure_rest(dbs: list[str], repeat: int, quick: bool) -> list[dict[str, Any]]:
    """perdure's other modes: ``repeat`` runs each, the sleepers once."""
    results = []
    for db in dbs:
        for _ in range(repeat):
            for args in (
                ["recovery", "--same-identity"],
                ["recovery"],
                ["replay", "-n", "10000"],
                ["growth"],
                ["timers", "-n", "1000" if quick else "3000"],
            ):
                results += _perdure(args, db)
        results += _perdure(["sleep", "-n", "5000" if quick else "100000"], db)
    return results


def db_name(db: str) -> str:
    """'sqlite', 'postgres' (any PostgreSQL URL) or a peer's own storage ('restate')."""
    if db.startswith(("postgres://", "postgresql")):
        return "postgres"
    return "sqlite" if db.startswith("sqlite") else db


def medians(results: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(engine, db, mode) -> median of every numeric field over repeats."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        mode = r["mode"] + ("-same" if r.get("same_identity") else "")
        key = (r["engine"], db_name(r["db"]), mode)
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        numeric = {
            k
            for r in rs
            for k, v in r.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        out[key] = {k: statistics.median(r[k] for r in rs if k in r) for k in numeric}
    return out


MODES = [
    "sequential",
    "concurrent",
    "concurrent-processes",
    "sleep",
    "timers",
    "recovery-same",
    "recovery",
    "replay",
    "growth",
]
HIGHER_IS_BETTER = {"wf_per_s", "steps_per_s"}


def baseline(engine: str, db: str, mode: str) -> tuple[str, str]:
    """The perdure row a peer row is compared with: the same db (Restate keeps
    its own log: perdure on SQLite); a peer's recovery restarts the same
    process identity (DBOS executor, Restate deployment): perdure's recovery-same."""
    db = "sqlite" if db == "restate" else db
    return db, ("recovery-same" if mode == "recovery" and engine != "perdure" else mode)


def _num(value: float) -> str:
    """A median as the report writes it: thousands whole, with separators."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _better(metric: str, ours: float, theirs: float) -> float:
    return ours / theirs if metric in HIGHER_IS_BETTER else theirs / ours


def by_round(results: list[dict[str, Any]]) -> dict[tuple[str, str, str, str, int], float]:
    """(engine, db, mode, metric, round) -> value, for the measurements of a round."""
    out = {}
    for r in results:
        if "round" in r:
            for metric, value in r.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[(r["engine"], db_name(r["db"]), r["mode"], metric, r["round"])] = value
    return out


def round_ratios(
    rounds: dict[tuple[str, str, str, str, int], float],
    peer: tuple[str, str, str],
    ours: tuple[str, str, str],
    metric: str,
) -> list[float]:
    """perdure's advantage in each round where both were measured."""
    found = []
    for (engine, db, mode, name, index), value in sorted(rounds.items()):
        if (engine, db, mode, name) == (*peer, metric):
            mine = rounds.get((*ours, metric, index))
            if mine and value:
                found.append(_better(metric, mine, value))
    return found


def markdown(
    table: dict[tuple[str, str, str], dict[str, float]],
    results: list[dict[str, Any]] | None = None,
) -> str:
    metrics = {
        "sequential": [
            "p50_ms",
            "p99_ms",
            "wf_per_s",
            "cpu_ms_per_workflow",
            "queries_per_workflow",
        ],
        "concurrent": ["steps_per_s", "wf_per_s", "cpu_us_per_step"],
        "concurrent-processes": ["steps_per_s", "wf_per_s", "cpu_us_per_step", "processes"],
        "sleep": ["bytes_per_sleeper", "nap_lateness_p99_ms"],
        "timers": ["steps_per_s", "cpu_us_per_step"],
        "recovery": ["resume_s", "done_s"],
        "recovery-same": ["resume_s", "done_s"],
        "replay": ["cold_replay_ms", "events"],
        "growth": ["step_ms_after_10", "step_ms_after_1000", "step_ms_after_10000"],
    }
    lines = [
        "| engine | db | mode | metric | median | compared with | perdure better by |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def order(key: tuple[str, str, str]) -> tuple[int, bool, str, str]:
        engine, db, mode = key
        return (MODES.index(mode) if mode in MODES else len(MODES), engine != "perdure", engine, db)

    rounds = by_round(results or [])
    for engine, db, mode in sorted(table, key=order):
        if engine == "floor":
            continue  # (in their own section, below)
        values = table[(engine, db, mode)]
        for metric in metrics.get(mode, []):
            if metric not in values:
                continue
            against, ratio = "", ""
            if engine != "perdure":
                base_db, base_mode = baseline(engine, db, mode)
                ours = table.get(("perdure", base_db, base_mode), {}).get(metric)
                against = f"perdure {base_db} {base_mode}"
                if ours and values[metric]:
                    ratio = f"{_better(metric, ours, values[metric]):.1f}x"
                    each = round_ratios(
                        rounds, (engine, db, mode), ("perdure", base_db, base_mode), metric
                    )
                    if len(each) > 1:
                        ratio += f" (by round: {', '.join(f'{x:.1f}' for x in each)})"
            value = _num(values[metric])
            lines.append(f"| {engine} | {db} | {mode} | {metric} | {value} | {against} | {ratio} |")
    lines += [
        "",
        "perdure better by: perdure's median / the peer's for throughput (wf_per_s, "
        "steps_per_s), the peer's / perdure's for times and bytes; above 1x perdure is "
        "better. The sequential and concurrent modes run in rounds, every engine once per "
        "round (perdure, DBOS, Restate, then again), so that each ratio compares runs "
        "minutes apart; 'by round' gives the ratio within each round. Restate keeps "
        "its own log, so its rows are compared with perdure on SQLite; a peer's recovery "
        "restarts the same process identity, so it is compared with perdure's recovery-same. "
        "Restate's bytes_per_sleeper is the RSS growth of its SDK process plus restate-server.",
    ]
    return "\n".join(lines + against_floor(table, rounds)) + "\n"


def against_floor(
    table: dict[tuple[str, str, str], dict[str, float]],
    rounds: dict[tuple[str, str, str, str, int], float],
) -> list[str]:
    """The section that reads perdure on SQLite against the minimal engine
    measured in the same rounds (empty if the floor was not measured)."""
    lines = []
    for mode, metric, unit in (
        ("sequential", "p50_ms", "ms per 10-step workflow, p50"),
        ("concurrent", "steps_per_s", "steps/s"),
        ("concurrent", "cpu_us_per_step", "µs of CPU per step"),
    ):
        floor = table.get(("floor", "sqlite", mode), {}).get(metric)
        ours = table.get(("perdure", "sqlite", mode), {}).get(metric)
        if not floor or not ours:
            continue
        each = round_ratios(rounds, ("floor", "sqlite", mode), ("perdure", "sqlite", mode), metric)
        behind = 1 / _better(metric, ours, floor)
        by = f" (by round: {', '.join(f'{1 / x:.2f}' for x in each)})" if len(each) > 1 else ""
        lines.append(f"| {mode} | {unit} | {_num(ours)} | {_num(floor)} | {behind:.2f}x{by} |")
    if not lines:
        return []
    return [
        "",
        "Against this machine's floor (`floor.py --engine`, SQLite, in the same rounds): a "
        "minimal engine that runs the same workflow and records each step durably "
        "(the run's version, three events, the step's task row; one commit per round, "
        "`synchronous=FULL`) and nothing else: no leases, fences, converter, cache, "
        "wake-ups or client. Sequential: one workflow at a time, its start and ten steps "
        "eleven commits, as perdure's; concurrent: 100 workflows per commit. "
        "'perdure at' is how many times the floor's time (or CPU) perdure takes, or the "
        "floor's steps per second over perdure's.",
        "",
        "| mode | metric | perdure SQLite | floor | perdure at |",
        "| --- | --- | --- | --- | --- |",
        *lines,
    ]


def plot(table: dict[tuple[str, str, str], dict[str, float]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    labels, steps, lat = [], [], []
    for (engine, db, mode), v in sorted(table.items()):
        if mode == "concurrent":
            labels.append("minimal\nengine" if engine == "floor" else f"{engine}\n{db}")
            steps.append(v.get("steps_per_s", 0))
            lat.append(table.get((engine, db, "sequential"), {}).get("p50_ms", 0))
    ax1.bar(labels, steps, color="#3b6ea5")
    ax1.set_title("concurrent: durable steps/s (higher is better)")
    ax2.bar(labels, lat, color="#a5543b")
    ax2.set_title("sequential 10-step workflow: p50 ms (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", action="store_true", help="also run DBOS and Restate")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    dbs = ["sqlite"] + ([args.pg] if args.pg else [])
    if args.peers:
        import peers
    # The modes compared with the peers run in rounds, every engine once per
    # round: the machine's speed drifts over the quarter hour a report takes,
    # and a ratio should compare runs minutes apart, not perdure's first
    # minutes with a peer's last.
    results: list[dict[str, Any]] = []
    for index in range(args.repeat):
        results += perdure_round(dbs, args.quick, index)
        results += floor_round(args.quick, index)
        if args.peers:
            results += peers.peer_round(index, args.quick, args.pg)
    results += perdure_rest(dbs, args.repeat, args.quick)
    if args.peers:
        results += peers.peer_rest(args.quick, args.pg)
    table = medians(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    report = markdown(table, results)
    if args.peers and peers.NOTES:
        report += "\nPeers not measured:\n\n" + "".join(f"- {n}\n" for n in peers.NOTES)
    (out_dir / f"{stamp}.md").write_text(report)
    print(report)
    plot(table, ROOT / "docs" / "img" / "bench.png")


if __name__ == "__main__":
    main()
