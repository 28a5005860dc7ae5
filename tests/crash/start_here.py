"""A process that starts a run next to its own worker, for the crash tests:
``python start_here.py URL WORKFLOW_ID STEPS DELAY [CHILDREN]``. The start's
commit carries the run's first turn and leases its first activity to this
process's worker (see RunTaker.prepare). With CHILDREN, the run is a
``brood`` of that many ``sequential`` children, whose first turns (and first
activities, leased here) that same commit carries (see
sqlstart.prepare_children). With ``PERDURE_CRASH_AT=start.after_commit``
the process SIGKILLs itself right after that commit, before any activity
starts. Writes side files as ``perdure worker workloads.py`` does."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads

import perdure


async def main(url: str, workflow_id: str, steps: int, delay: float, children: int) -> None:
    client = await perdure.Client.connect(url)
    try:
        workflows = [workloads.sequential, workloads.brood]
        worker = perdure.Worker(client, workflows, [workloads.step], lease_timeout=1.0)
        async with worker:
            while not worker.idle:  # until it takes new runs from this process
                await asyncio.sleep(0.01)
            if children:
                handle = await client.start(workloads.brood, children, steps, delay, id=workflow_id)
            else:
                handle = await client.start(workloads.sequential, steps, delay, id=workflow_id)
            await handle.result(timeout=60)
    finally:
        await client.close()


if __name__ == "__main__":
    children = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), children))
