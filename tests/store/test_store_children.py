"""A parent's turn that starts children: each child's run is created, or,
its workflow id being in use, the parent is told why not; the ids of all
of a turn's children are read together (sqlnewrun.ids_in_use), so a
second child of one turn with the id of the first must see the run the
first created in the same transaction."""

from __future__ import annotations

import json

from store_helpers import Opener, child_start, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import OPEN
from perdure._store.sqlrows import Tx

IDS = ["fresh", "old", "fresh", "other"]  # (children 1 to 4)


async def test_children_whose_ids_are_in_use_are_refused_to_the_parent(opener: Opener) -> None:
    store = await opener()
    # "old" is held by a run that already ended.
    await store.create_run(new_run(wid="old", run_id="old-run"), "fail")
    task = await claim_one(store, "old-run")
    ending = h.CompleteWorkflow(result=None)
    done = await turn(store, task, [ending], close_status="completed", has_relatives=False)
    assert await store.commit_turn(done)
    await store.create_run(new_run(wid="parent", run_id="parent-run"), "fail")
    task = await claim_one(store, "parent-run")
    starts = [child_start(ref, wid, f"kid-run-{ref}") for ref, wid in enumerate(IDS, 1)]

    commit = await turn(store, task, [c for c, _ in starts], children=[k for _, k in starts])
    assert await store.commit_turn(commit)

    async def body(tx: Tx) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        inbox = await tx.all("SELECT data FROM inbox WHERE run_id = 'parent-run' ORDER BY id")
        runs = await tx.all(
            "SELECT workflow_id, run_id, parent_run_id, parent_ref, status FROM runs"
            " WHERE parent_run_id IS NOT NULL ORDER BY workflow_id"
        )
        return inbox, runs

    inbox, runs = await store._read(body)
    events = [h.event_from_dict(json.loads(row[0])) for row in inbox]
    assert [type(e).__name__ for e in events] == [
        "ChildWorkflowStarted",
        "ChildWorkflowStartFailed",
        "ChildWorkflowStartFailed",
        "ChildWorkflowStarted",
    ]
    assert [getattr(e, "ref", None) for e in events] == [1, 2, 3, 4]
    refused = [e for e in events if isinstance(e, h.ChildWorkflowStartFailed)]
    assert [e.failure["message"] for e in refused] == [
        "workflow id 'old' is already used by run old-run (completed)",
        f"workflow id 'fresh' is already used by run kid-run-1 ({OPEN})",
    ]
    assert runs == [
        ("fresh", "kid-run-1", "parent-run", 1, OPEN),
        ("other", "kid-run-4", "parent-run", 4, OPEN),
    ]
