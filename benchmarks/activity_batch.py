"""What pausing and unpausing the activities of many runs costs
(``Client.batch_activities``): N runs each wait out an hour's backoff of a
failed activity (no worker runs during the measurement), then a dry run, a
pause of all N and an unpause of all N are timed, with the batch of another
activity type beside them (nothing matches: the cost of choosing alone).
Prints one JSON line. Run by hand; never a test.

Usage: python benchmarks/activity_batch.py [--db sqlite|URL] [-n N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_perdure import fresh_url

import perdure
from perdure import RetryPolicy, activity, workflow

failed = 0


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1)))
async def charge(order: int) -> str:
    global failed
    failed += 1
    raise RuntimeError("the payment API is down")


@workflow.defn
async def payment(order: int) -> str:
    return await charge(order)


async def measure(url: str, n: int) -> dict[str, Any]:
    async with await perdure.Client.connect(url) as client:
        client.poll_interval = 0.05
        async with perdure.Worker(client, [payment], [charge], poll_interval=0.05):
            for i in range(n):
                await client.start(payment, i, id=f"pay-{i}")
            while failed < n:
                await asyncio.sleep(0.05)
        # (the worker has stopped: every activity waits an hour, none runs)
        timings: dict[str, float] = {}

        async def timed(name: str, **options: Any) -> int:
            began = time.perf_counter()
            result = await client.batch_activities(**options)
            timings[name] = time.perf_counter() - began
            return len(result.done) if not result.dry_run else len(result.matched)

        counts = {
            "other_type": await timed("other_type_s", action="pause", activity_type="ship"),
            "dry_run": await timed(
                "dry_run_s", action="pause", activity_type="charge", dry_run=True
            ),
            "paused": await timed("pause_s", action="pause", activity_type="charge"),
            "unpaused": await timed(
                "unpause_s", action="unpause", activity_type="charge", reset_attempts=True
            ),
        }
    return {
        "n": n,
        "db": url.partition(":")[0],
        **counts,
        **{k: round(v, 3) for k, v in timings.items()},
        "pause_ms_per_activity": round(1000 * timings["pause_s"] / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(fresh_url(args.db, "activity-batch"), args.n))))


if __name__ == "__main__":
    main()
