"""``python -m examples.monitoring``: a monitor that rolls over every few checks.

Checks the free space of ``--path`` every half second with a tiny history budget
(40 events), so you see it continue as new every few checks; ``describe()``
always reaches the current run. After ``--seconds`` it sends the ``stop`` signal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import perdure

from .monitor import MonitorConfig, check_disk, monitor, send_alert


async def story(folder: Path, path: str, seconds: float) -> int:
    config = MonitorConfig(path=path, every_seconds=0.5, max_history=40)
    client = await perdure.Client.connect(f"sqlite:///{folder / 'monitor.db'}")
    worker = perdure.Worker(client, [monitor], [check_disk, send_alert], poll_interval=0.05)
    try:
        async with worker:
            await client.start(monitor, config, id="disk-monitor")
            # A handle from start() addresses that one run; get_handle(id) without
            # a run id follows the workflow id to its latest run.
            handle = client.get_handle("disk-monitor")
            run_id, checks = None, 0
            stop_at = time.monotonic() + seconds
            while time.monotonic() < stop_at:
                d = await handle.describe()  # the latest run of "disk-monitor"
                if d.run_id != run_id:
                    if run_id is not None:
                        old = await client.get_handle(handle.id, run_id).describe()
                        print(
                            f"run {run_id[:8]} continued as new after {old.history_length} events"
                        )
                    print(f"run {d.run_id[:8]} is the current run of {handle.id}")
                    run_id = d.run_id
                totals = d.state.get("totals")
                if totals and totals["checks"] != checks:
                    checks = totals["checks"]
                    latest = d.state["latest"]
                    print(f"  check {checks}: {latest['free_percent']}% free -> {latest['status']}")
                await asyncio.sleep(0.05)
            await handle.signal("stop")
            result = await handle.result(timeout=30)
        print(f"stopped: {result}")
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.monitoring")
    parser.add_argument("--path", default="/", help="the file system to watch")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to let it run")
    parser.add_argument("--folder", type=Path, help="where the database goes")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-monitor-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve(), args.path, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
