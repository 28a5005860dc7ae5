"""Workload for the graceful-drain test, loaded by ``perdure worker`` in a subprocess."""

from __future__ import annotations

import os
import time
from pathlib import Path

from perdure import activity, workflow


@activity.defn
def slow_step(name: str) -> str:
    folder = Path(os.environ["PERDURE_TEST_DIR"])
    with open(folder / "runs.log", "a") as f:
        f.write(f"start {name} {os.getpid()}\n")
    time.sleep(1.5)
    with open(folder / "runs.log", "a") as f:
        f.write(f"end {name} {os.getpid()}\n")
    return f"{name} done"


@workflow.defn
async def drained(name: str) -> str:
    return await slow_step(name)


@activity.defn
async def endless_step(name: str) -> str:
    """Runs for a minute on its first attempt (past any drain in the tests)."""
    import asyncio

    from perdure import activity as current

    folder = Path(os.environ["PERDURE_TEST_DIR"])
    with open(folder / "runs.log", "a") as f:
        f.write(f"start {name} {current.info().attempt}\n")
    if current.info().attempt == 1:
        await asyncio.sleep(60)
    return f"{name} done"


@workflow.defn
async def endless(name: str) -> str:
    return await endless_step(name)
