"""Continue-as-new: the chain carries on after a crash right at the rollover,
the result follows the chain, and histories stay bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from semantics_harness import SemanticsCluster

import perdure
from perdure import workflow


def test_crash_right_after_continue_as_new(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    first = cluster.client.start("counter", 0, 30, 10, id="ctr")
    cluster.wait_until(
        lambda: cluster.client.list(status="continued_as_new"), 20, what="the first rollover"
    )
    cluster.kill(worker)
    cluster.start()
    result = first.result(timeout=40)  # a handle on run 1 follows the chain
    assert result["count"] == 30
    runs = [r for r in cluster.client.list(limit=10) if r.id == "ctr"]
    assert [r.status for r in runs].count("continued_as_new") == 2
    assert len(runs) == 3
    seen: list[str] = []
    for run in runs:
        history = cluster.client.get_handle("ctr", run.run_id).history()
        assert len(history) < 60  # bounded: ~10 steps per run
        names = {e["ref"]: e["args"][0] for e in history if e["type"] == "ActivityScheduled"}
        seen += [names[e["ref"]] for e in history if e["type"] == "ActivityCompleted"]
    assert sorted(seen) == sorted(f"count-{i}" for i in range(30))  # each once


@workflow.defn
async def monitor(done: int, total: int) -> dict[str, int]:
    """An endless-style loop: read a metric every iteration, sleep between
    batches, roll over when the history passes 500 events."""
    i = done
    while i < total:
        workflow.side_effect(lambda: 1)
        i += 1
        if i % 50 == 0:
            await workflow.sleep(0.001)
            if workflow.info().history_length > 500:
                workflow.continue_as_new(i, total)
    return {"iterations": i, "runs_history": workflow.info().history_length}


async def test_ten_thousand_iterations_with_bounded_history(tmp_path: Path) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        async with perdure.Worker(client, [monitor], [], poll_interval=0.01):
            handle = await client.start(monitor, 0, 10_000, id="monitor")
            result = await handle.result(timeout=120)
        assert result["iterations"] == 10_000
        runs = await client.list(workflow="monitor", limit=100)
        assert len(runs) >= 10
        lengths = await asyncio.gather(
            *(client.get_handle("monitor", r.run_id).describe() for r in runs)
        )
        assert max(d.history_length for d in lengths) <= 600
    finally:
        await client.close()
