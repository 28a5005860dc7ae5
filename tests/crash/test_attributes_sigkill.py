"""A workflow that sets search attributes after each step, its worker
SIGKILLed before and after the commit of a turn that sets them, and after
an activity's completion: the next worker goes on; the history records each
change once, and the listings find the run by what its history says last."""

from __future__ import annotations

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow

COUNT = 4
CRASH_POINTS = ["turn.before_commit:3", "turn.after_commit:3", "activity.after_complete:2"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_search_attributes_survive_sigkill(cluster: Cluster, crash_at: str) -> None:
    attributes_crash(cluster, crash_at)


def attributes_crash(cluster: Cluster, crash_at: str) -> None:
    """Shared with tests/postgres/test_attributes_pg.py."""
    client = cluster.client
    run = client.start("tagger", COUNT, 0.05, id="tagger", search_attributes={"batch": "b-1"})
    cluster.crash_worker_at(crash_at)
    cluster.start_worker()
    assert run.result(timeout=60) == COUNT
    changes = [e["attributes"] for e in run.history() if e["type"] == "SearchAttributesSet"]
    assert changes == [{"step": n} for n in range(1, COUNT + 1)] + [{"done": True}]
    final = {"batch": "b-1", "step": COUNT, "done": True}
    assert run.describe().search_attributes == final
    found = client.list(search_attributes={"batch": "b-1", "done": True})
    assert [(r.id, r.search_attributes) for r in found] == [("tagger", final)]
    for n in range(1, COUNT):
        assert client.list(search_attributes={"step": n}) == []
