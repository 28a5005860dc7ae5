"""The pipeline workflow and its three activities: a worker module.

Each activity appends one line per execution to ``executions.jsonl`` in the
world folder (``$PIPELINE_DIR``), so the story and the tests can count how often
each step really ran. ``load`` fails while a file ``warehouse-down`` exists
there: delete it and the next retry succeeds. ``$PIPELINE_TRANSFORM_SECONDS``
makes the transform visibly expensive.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from perdure import RetryPolicy, activity, workflow

REGIONS = ("north", "south", "east", "west")

# The warehouse may be down for hours: retry for ever, backing off to once a minute.
LOAD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5), backoff=2.0, max_interval=timedelta(minutes=1)
)


@dataclass
class Sale:
    region: str
    cents: int


@dataclass
class RegionTotal:
    region: str
    sales: int
    cents: int


@dataclass
class LoadReport:
    day: str
    rows_extracted: int
    regions_loaded: int


def world() -> Path:
    folder = Path(os.environ.get("PIPELINE_DIR", "pipeline-world"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_execution(step: str) -> None:
    line = json.dumps({"step": step, "attempt": activity.info().attempt, "pid": os.getpid()})
    with (world() / "executions.jsonl").open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@activity.defn
async def extract(day: str, rows: int) -> list[Sale]:
    """Read the day's sales (made up here, reproducibly, from the day)."""
    record_execution("extract")
    rng = random.Random(day)
    return [Sale(rng.choice(REGIONS), rng.randint(100, 20_000)) for _ in range(rows)]


@activity.defn(heartbeat_timeout=timedelta(seconds=30))
async def transform(sales: list[Sale]) -> list[RegionTotal]:
    """The expensive step (think: an hour of GPU time). It heartbeats so that a
    dead worker's attempt is noticed within the heartbeat timeout."""
    record_execution("transform")
    seconds = float(os.environ.get("PIPELINE_TRANSFORM_SECONDS", "0"))
    for _ in range(10):
        await asyncio.sleep(seconds / 10)
        activity.heartbeat()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for sale in sales:
        totals[sale.region][0] += 1
        totals[sale.region][1] += sale.cents
    return [RegionTotal(region, n, cents) for region, (n, cents) in sorted(totals.items())]


@activity.defn(retry=LOAD_RETRY)
async def load(day: str, totals: list[RegionTotal]) -> int:
    """Write the totals to the warehouse (a JSON file), unless it is down."""
    record_execution("load")
    if (world() / "warehouse-down").exists():
        raise ConnectionError("warehouse unreachable (remove warehouse-down to fix it)")
    table = {t.region: {"sales": t.sales, "cents": t.cents} for t in totals}
    (world() / f"warehouse-{day}.json").write_text(json.dumps(table, indent=2))
    return len(table)


@workflow.defn
async def daily_sales(day: str, rows: int = 1_000) -> LoadReport:
    """Extract, transform, load. A failing load is retried on its own: the
    recorded results of extract and transform are reused, never recomputed.

    Results are stored in the history (2 MiB per payload at most): for real data
    volumes, let the activities write files or tables and return their names."""
    workflow.set_state("progress", {"step": "extract", "done": []})
    sales = await extract(day, rows)
    workflow.set_state("progress", {"step": "transform", "done": ["extract"], "rows": len(sales)})
    totals = await transform(sales)
    workflow.set_state(
        "progress", {"step": "load", "done": ["extract", "transform"], "rows": len(sales)}
    )
    loaded = await load(day, totals)
    workflow.set_state(
        "progress", {"step": "done", "done": ["extract", "transform", "load"], "rows": len(sales)}
    )
    return LoadReport(day, len(sales), loaded)
