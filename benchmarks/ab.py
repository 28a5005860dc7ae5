"""Compare this tree's perdure with an earlier revision's, in alternating runs.

Usage: python benchmarks/ab.py --base REV [--pairs 5] MODE [bench_perdure options]

The machine's speed drifts by a third within an hour, so two numbers taken
minutes apart say little about a change. This runs ``bench_perdure.py MODE``
from the base revision (``git archive REV``, unpacked in a temporary folder)
and from this tree in turns, swapping which goes first in every other pair,
and prints each pair's ratio and the medians. A change is worth claiming
when most pairs agree; report the ratios, not one run. Run by hand; never a
test. Examples:

    python benchmarks/ab.py --base HEAD~1 remote --db postgresql://...
    python benchmarks/ab.py --base main --pairs 7 concurrent
    python benchmarks/ab.py --base HEAD~1 --same-benchmarks parallel

``--same-benchmarks``: both sides run this tree's ``benchmarks`` (for a mode
or workload the base revision does not have), each with its own ``src``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The figures compared, and whether more is better.
FIGURES = {
    "steps_per_s": True,
    "p50_ms": False,
    "cpu_us_per_step": False,
    "cpu_ms_per_workflow": False,
    "queries_per_workflow": False,
    "children_per_s": True,
    "cpu_us_per_child": False,
    "nap_lateness_p99_ms": False,
}


def unpack(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (a commit, branch or tag of this repository) in ``into``."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # (Python 3.11.4 and later)
            tar.extractall(into / "tree", filter="data")
        else:
            tar.extractall(into / "tree")  # (our own repository's archive)
    return into / "tree"


def copy_here(into: Path) -> Path:
    """This working tree's ``src`` and ``benchmarks`` (uncommitted changes
    included), copied into ``into``."""
    ignore = shutil.ignore_patterns("__pycache__", ".peers", "results")
    for part in ("src", "benchmarks"):
        shutil.copytree(ROOT / part, into / "this" / part, ignore=ignore)
    return into / "this"


def run(tree: Path, args: list[str]) -> dict[str, Any]:
    """One run of ``bench_perdure.py`` from ``tree``, importing that tree's perdure."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "bench_perdure.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_perdure.py failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--same-benchmarks",
        action="store_true",
        help="run this tree's benchmarks against the base's src too",
    )
    options, args = parser.parse_known_args()
    if not args:
        parser.error("name a bench_perdure.py mode (and its options)")
    results: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory(prefix="perdure-ab-") as scratch:
        # This tree's src and benchmarks are copied beside the base's: two
        # runs of one revision, one from here and one unpacked, differed by
        # 6-10% (an A/A test): both now run from a scratch folder alike.
        trees = {"base": unpack(options.base, Path(scratch)), "this": copy_here(Path(scratch))}
        if options.same_benchmarks:
            shutil.rmtree(trees["base"] / "benchmarks")
            shutil.copytree(trees["this"] / "benchmarks", trees["base"] / "benchmarks")
        for pair in range(options.pairs):
            order = ["base", "this"] if pair % 2 == 0 else ["this", "base"]
            for name in order:
                results[name].append(run(trees[name], args))
            figures = [k for k in FIGURES if k in results["this"][-1]]
            print(
                f"pair {pair + 1}: "
                + ", ".join(
                    f"{k} {results['base'][-1][k]:.4g} -> {results['this'][-1][k]:.4g}"
                    f" ({results['this'][-1][k] / results['base'][-1][k]:.3f}x)"
                    for k in figures
                ),
                flush=True,
            )
    for key in (k for k in FIGURES if k in results["this"][0]):
        base = statistics.median(r[key] for r in results["base"])
        this = statistics.median(r[key] for r in results["this"])
        pairs = zip(results["base"], results["this"], strict=True)
        ratios = sorted(t[key] / b[key] for b, t in pairs)
        better = sum((r > 1) == FIGURES[key] for r in ratios)
        print(
            f"{key}: median {base:.4g} -> {this:.4g} ({this / base:.3f}x); pair ratios "
            f"{', '.join(f'{r:.3f}' for r in ratios)}; better in {better} of {len(ratios)}"
        )


if __name__ == "__main__":
    main()
