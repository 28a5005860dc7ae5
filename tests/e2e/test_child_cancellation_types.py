"""What cancelling a parent's await of a child does, by the child's
``cancellation_type`` (Temporal's ChildWorkflowCancellationType), on both
backends. The parent gives up on the child (``asyncio.wait_for``) and undoes
its own part; the child, cancelled, cleans up (an activity) first.

- "try_cancel" (the default): the child is asked to cancel, and the parent
  goes on at once: its undo may come before the child's cleanup.
- "wait_cancellation_completed": the parent's await raises only once the
  child has ended: the undo comes after the cleanup.
- "abandon": the child is not asked; it runs on.

Each history replays (``perdure.testing.Replayer``)."""

from __future__ import annotations

import asyncio
import time

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.testing import Replayer

log: list[str] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    log.clear()


@activity.defn
async def clean_up(tag: str) -> None:
    # (A parent that does not wait undoes meanwhile: "t"'s cleanup waits for
    # that undo, for at most 10 s, so that one that wrongly waited is seen.)
    deadline = time.monotonic() + (10.0 if tag == "t" else 0.0)
    while time.monotonic() < deadline and f"undo {tag}" not in log:
        await asyncio.sleep(0.01)
    log.append(f"cleanup {tag}")


@activity.defn
async def undo(tag: str) -> None:
    log.append(f"undo {tag}")


@workflow.defn
async def held_child(tag: str) -> str:
    try:
        await workflow.wait_signal("release")
    except asyncio.CancelledError:
        await asyncio.shield(clean_up(tag))
        raise
    return f"released {tag}"


@workflow.defn
async def impatient_parent(tag: str, how: str) -> str:
    try:
        await asyncio.wait_for(
            workflow.execute_child(held_child, tag, id=f"child-{tag}", cancellation_type=how),  # type: ignore[arg-type]
            timeout=0.3,
        )
    except TimeoutError:
        await undo(tag)
    await workflow.wait_signal("finish")  # (the run stays open: see abandon)
    return "gave up"


@workflow.defn
async def parent_that_asks_again(tag: str) -> str:
    """Gives up waiting, then awaits the handle again: it gives the end the
    cancelled await waited out."""
    handle = await workflow.start_child(
        held_child, tag, id=f"child-{tag}", cancellation_type="wait_cancellation_completed"
    )
    try:
        await asyncio.wait_for(handle.result(), timeout=0.3)
    except TimeoutError:
        pass
    try:
        return await handle
    except perdure.ChildWorkflowError as exc:
        return f"child {exc.status}"


def _worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(
        client, [held_child, impatient_parent, parent_that_asks_again], [clean_up, undo]
    )


async def _run(client: perdure.Client, tag: str, how: str) -> list[dict[str, object]]:
    async with _worker(client):
        handle = await client.start(impatient_parent, tag, how, id=f"parent-{tag}")
        await wait_until(lambda: asyncio.sleep(0, f"undo {tag}" in log), what="the undo")
        if how == "abandon":
            child = client.get_handle(f"child-{tag}")
            assert (await child.describe()).status == "running"  # (never asked)
            await child.signal("release", None)
            assert await child.result(timeout=10) == f"released {tag}"
        else:
            await wait_until(lambda: asyncio.sleep(0, f"cleanup {tag}" in log), what="cleanup")
        await handle.signal("finish", None)
        assert await handle.result(timeout=10) == "gave up"
    history = await handle.history()
    assert Replayer([impatient_parent, held_child]).replay(history).ok
    return history


async def test_try_cancel_goes_on_at_once(client: perdure.Client) -> None:
    await _run(client, "t", "try_cancel")
    assert log == ["undo t", "cleanup t"]


async def test_wait_cancellation_completed_waits_for_the_childs_end(
    client: perdure.Client,
) -> None:
    history = await _run(client, "w", "wait_cancellation_completed")
    assert log == ["cleanup w", "undo w"]
    kinds = [e["type"] for e in history]
    # The child's end reached the parent before it scheduled its undo.
    ended = kinds.index("ChildWorkflowFailed")
    assert kinds.index("ChildWorkflowCancelRequested") < ended
    assert ended < [i for i, k in enumerate(kinds) if k == "ActivityScheduled"][-1]
    [failed] = [e for e in history if e["type"] == "ChildWorkflowFailed"]
    assert failed["status"] == "cancelled"


async def test_abandon_does_not_ask_the_child(client: perdure.Client) -> None:
    history = await _run(client, "a", "abandon")
    assert log == ["undo a"]  # (no cleanup: the child was never cancelled)
    assert "ChildWorkflowCancelRequested" not in [e["type"] for e in history]


async def test_the_handle_awaited_again_gives_the_childs_end(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(parent_that_asks_again, "g", id="parent-g")
        assert await handle.result(timeout=10) == "child cancelled"
    assert log == ["cleanup g"]


async def test_a_cancellation_type_that_is_not_one_is_refused(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(impatient_parent, "x", "wait", id="parent-x")
        with pytest.raises(perdure.WorkflowFailedError, match="cancellation_type must be one of"):
            await handle.result(timeout=10)
