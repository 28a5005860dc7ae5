"""A workflow that answers updates, its worker SIGKILLed before and after
the commit of a turn that answers one, and after an activity's completion:
the next worker goes on; every caller gets its answer, each update is taken
and answered once, and no completed step ran again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from crash_harness import Cluster, check_executions

pytestmark = pytest.mark.slow

COUNT = 4
CRASH_POINTS = ["turn.before_commit:3", "turn.after_commit:3", "activity.after_complete:2"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_updates_survive_sigkill(cluster: Cluster, crash_at: str) -> None:
    updates_crash(cluster, crash_at)


def updates_crash(cluster: Cluster, crash_at: str) -> None:
    """Shared with tests/postgres/test_update_pg.py."""
    client = cluster.client
    run = client.start("ledger", COUNT, 0.05, id="ledger")
    handle = client.get_handle("ledger")

    def deposits() -> list[int]:  # (a caller, waiting for each answer in turn)
        return [
            handle.update("deposit", n, update_id=f"d-{n}", timeout=60) for n in range(1, COUNT + 1)
        ]

    with ThreadPoolExecutor(1) as caller:
        balances = caller.submit(deposits)
        killed = cluster.crash_worker_at(crash_at)
        cluster.start_worker()
        assert balances.result(timeout=90) == [1, 3, 6, 10]
    assert run.result(timeout=60) == 10
    history = run.history()
    replied = [(e["update_id"], e["result"]) for e in history if e["type"] == "UpdateReplied"]
    assert replied == [("d-1", 1), ("d-2", 3), ("d-3", 6), ("d-4", 10)]
    taken = [e["payload"]["update_id"] for e in history if e["type"] == "SignalReceived"]
    assert taken == ["d-1", "d-2", "d-3", "d-4"]
    # Each deposit's step ran, and none ran again once its completion was recorded.
    check_executions(cluster.executions(), {"ledger": history}, COUNT, {killed.pid})
