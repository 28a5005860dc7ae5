"""``python -m examples.data_pipeline``: the load fails until an operator fixes it.

The warehouse is down when the pipeline starts (a ``warehouse-down`` file). The
worker (embedded in this program) extracts and transforms — the transform takes
a couple of seconds, it is the expensive step — then the load fails, again and
again, backing off. After three failures this program plays the operator and
deletes ``warehouse-down``; the next retry loads. Extract and transform ran once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import perdure

from .pipeline import daily_sales, extract, load, transform

FAILED_LOADS_BEFORE_FIX = 3


async def story(folder: Path) -> int:
    os.environ["PIPELINE_DIR"] = str(folder)
    os.environ.setdefault("PIPELINE_TRANSFORM_SECONDS", "2")
    (folder / "warehouse-down").touch()
    print(f"world folder: {folder}  (warehouse-down exists: the warehouse is down)")

    client = await perdure.Client.connect(f"sqlite:///{folder / 'pipeline.db'}")
    worker = perdure.Worker(client, [daily_sales], [extract, transform, load], poll_interval=0.05)
    try:
        async with worker:
            handle = await client.start(daily_sales, "2024-05-01", id="sales-2024-05-01")
            seen_progress, seen_failures = None, 0
            while not (d := await handle.describe()).closed_at:
                progress = d.state.get("progress")
                if progress != seen_progress:
                    seen_progress = progress
                    print(f"progress: {json.dumps(progress)}")
                for pending in d.pending_activities:
                    failed = pending.attempt - 1 if pending.running else pending.attempt
                    if pending.last_failure and failed > seen_failures:
                        seen_failures = failed
                        print(f"  {pending.activity_type} attempt {failed} failed: "
                              f"{pending.last_failure['message']}")  # fmt: skip
                        if seen_failures == FAILED_LOADS_BEFORE_FIX:
                            print("operator: the warehouse is back (rm warehouse-down)")
                            (folder / "warehouse-down").unlink()
                await asyncio.sleep(0.05)
            report = await handle.result()
        print(f"loaded: {report}")
    finally:
        await client.close()

    runs = Counter(json.loads(line)["step"] for line in (folder / "executions.jsonl").open())
    print(f"executions: {dict(runs)}  (extract and transform once; load retried)")
    return 0 if runs["extract"] == runs["transform"] == 1 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.data_pipeline")
    parser.add_argument("--folder", type=Path, help="where the database and files go")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-pipeline-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve()))


if __name__ == "__main__":
    sys.exit(main())
