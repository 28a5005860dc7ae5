"""Client.batch: cancel, terminate or reset every run a filter matches
(each id's latest), chosen first and acted on by run id; a run that ended
or was replaced meanwhile is skipped, an action that raises is reported with
its error and the others go on; a dry run changes nothing; running a batch
again finishes what is left; bad arguments are refused with what is wrong."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.errors import WorkflowResetError

broken = {"api": True}
calls: dict[str, int] = {}


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def call_api(order: str) -> str:
    calls[order] = calls.get(order, 0) + 1
    if broken["api"]:
        raise RuntimeError("the API is down")
    return f"paid {order}"


@workflow.defn
async def payment(order: str) -> str:
    return await call_api(order)


@workflow.defn
async def waiter(tag: str) -> str:
    try:
        await workflow.wait_signal("go", timeout=timedelta(hours=1))
    except asyncio.CancelledError:
        workflow.set_state("compensated", True)
        raise
    return tag


async def _statuses(client: perdure.Client, **filters: Any) -> dict[str, str]:
    return {r.id: r.status for r in await client.list(latest=True, **filters)}


async def _until_open(client: perdure.Client, ids: list[str]) -> None:
    for workflow_id in ids:
        handle = client.get_handle(workflow_id)
        for _ in range(1500):
            if (await handle.describe()).waiting_signals:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"{workflow_id} never waited for its signal")


async def test_terminate_and_cancel_act_on_exactly_the_matching_open_runs(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [waiter, payment], [call_api]):
        for n in range(4):
            await client.start(waiter, "a", id=f"a-{n}", search_attributes={"team": "a"})
        for n in range(2):
            await client.start(waiter, "b", id=f"b-{n}", search_attributes={"team": "b"})
        await _until_open(client, [f"a-{n}" for n in range(4)] + ["b-0", "b-1"])
        await client.get_handle("a-3").signal("go", None)
        assert await client.get_handle("a-3").result(timeout=30) == "a"

        seen = await client.batch("terminate", search_attributes={"team": "a"}, dry_run=True)
        assert seen.dry_run and not seen.done and not seen.skipped and not seen.failed
        assert [r.id for r in seen.matched] == ["a-2", "a-1", "a-0"]  # open only, newest first
        assert (await _statuses(client))["a-0"] == "running"  # the dry run did nothing

        done = await client.batch(
            "terminate", search_attributes={"team": "a"}, reason="bad deploy", limit=2
        )
        assert sorted(done.done) == ["a-1", "a-2"]
        assert done.done["a-2"] == seen.matched[0].run_id
        assert not done.skipped and not done.failed
        assert await _statuses(client) == {
            "a-0": "running",
            "a-1": "terminated",
            "a-2": "terminated",
            "a-3": "completed",
            "b-0": "running",
            "b-1": "running",
        }
        terminated = await client.get_handle("a-1").history()
        assert terminated[-1]["type"] == "WorkflowTerminated"
        assert terminated[-1]["reason"] == "bad deploy"
        # Again: what is left.
        rest = await client.batch("terminate", search_attributes={"team": "a"})
        assert list(rest.done) == ["a-0"]

        cancelled = await client.batch("cancel", workflow="waiter", reason="closing")
        assert sorted(cancelled.done) == ["b-0", "b-1"]
        for workflow_id in ("b-0", "b-1"):
            handle = client.get_handle(workflow_id)
            with pytest.raises(perdure.WorkflowCancelledError):
                await handle.result(timeout=30)
            assert await handle.state("compensated") is True  # its code ran its handler
        nothing = await client.batch("cancel", workflow="waiter")
        assert nothing.matched == [] and nothing.done == {}


async def test_reset_every_failed_run_after_the_fix(client: perdure.Client) -> None:
    broken["api"], calls_before = True, dict(calls)
    async with fast_worker(client, [payment], [call_api]):
        handles = [await client.start(payment, f"o-{n}", id=f"pay-{n}") for n in range(5)]
        for handle in handles:
            with pytest.raises(perdure.WorkflowFailedError):
                await handle.result(timeout=30)
        ok = await client.start(payment, "x", id="other")  # (fails too, but not of this batch)
        with pytest.raises(perdure.WorkflowFailedError):
            await ok.result(timeout=30)

        broken["api"] = False  # the fix is deployed
        done = await client.batch("reset", status="failed", search="pay-", reason="API back")
        assert sorted(done.done) == [f"pay-{n}" for n in range(5)]
        assert not done.skipped and not done.failed
        for n, handle in enumerate(handles):
            new = client.get_handle(f"pay-{n}", done.done[f"pay-{n}"])
            assert new.run_id != handle.run_id
            assert await new.result(timeout=30) == f"paid o-{n}"
        # The failed runs are no id's latest any more: a second batch finds none.
        again = await client.batch("reset", status="failed", search="pay-")
        assert again.matched == []
        assert (await _statuses(client))["other"] == "failed"
    assert {k: calls[k] - calls_before.get(k, 0) for k in calls if k.startswith("o-")} == {
        f"o-{n}": 2 for n in range(5)
    }


async def test_a_run_that_ends_meanwhile_is_skipped_and_errors_are_reported(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [waiter], []):
        for n in range(3):
            await client.start(waiter, "c", id=f"c-{n}")
        await _until_open(client, ["c-0", "c-1", "c-2"])
        # c-0 ends between the batch's choice and its action.
        real_list = client.list

        async def list_then_end_one(*args: Any, **kwargs: Any) -> list[Any]:
            found = await real_list(*args, **kwargs)
            if any(r.id == "c-0" for r in found):
                await client.get_handle("c-0").signal("go", None)
                await client.get_handle("c-0").result(timeout=30)
            return found

        monkeypatch.setattr(client, "list", list_then_end_one)
        done = await client.batch("terminate", search="c-")
        monkeypatch.undo()
        assert [r.id for r in done.matched] == ["c-2", "c-1", "c-0"]
        assert sorted(done.done) == ["c-1", "c-2"]
        assert done.skipped == {"c-0": "it has ended"}
        assert (await _statuses(client))["c-0"] == "completed"

        # A reset that raises is reported; the others are reset.
        store = client.store
        real_reset = store.reset

        async def refuse_one(workflow_id: str, *args: Any) -> Any:
            if workflow_id == "c-1":
                raise WorkflowResetError("cannot reset workflow 'c-1': made up for the test")
            return await real_reset(workflow_id, *args)

        monkeypatch.setattr(store, "reset", refuse_one)
        reset = await client.batch("reset", status="terminated", search="c-")
        assert sorted(reset.done) == ["c-2"]
        assert reset.failed == {
            "c-1": "WorkflowResetError: cannot reset workflow 'c-1': made up for the test"
        }


async def test_bad_batches_are_refused_with_what_is_wrong(client: perdure.Client) -> None:
    bad: list[tuple[str, dict[str, Any], type[Exception], str]] = [
        ("terminate", {}, ValueError, "name which runs to terminate: give a filter"),
        ("cancel", {"status": "failed"}, ValueError, "only open runs can be cancelled"),
        ("terminate", {"status": "completed"}, ValueError, "only open runs can be terminated"),
        ("archive", {"status": "failed"}, ValueError, "action must be one of cancel, terminate"),
        ("reset", {"status": "failed", "limit": 0}, ValueError, "limit must be a positive int"),
        ("reset", {"status": "failed", "limit": True}, ValueError, "limit must be a positive"),
        ("reset", {"status": "nope"}, ValueError, "status must be one of"),
        ("reset", {"status": "failed", "reason": 5}, TypeError, "a reason is a str"),
        ("reset", {"search_attributes": {"a": [1]}}, TypeError, "must be a str, int, float"),
    ]
    for action, options, error, message in bad:
        with pytest.raises(error, match=message):
            await client.batch(action, **options)  # type: ignore[arg-type]


async def test_a_reset_run_replaced_meanwhile_is_skipped(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [waiter], []):
        for n in range(2):
            await client.start(waiter, "r", id=f"r-{n}")
        await _until_open(client, ["r-0", "r-1"])
        real_list = client.list
        replaced: list[str] = []

        async def list_then_reset_one(*args: Any, **kwargs: Any) -> list[Any]:
            found = await real_list(*args, **kwargs)
            if not replaced and any(r.id == "r-0" for r in found):
                replaced.append((await client.get_handle("r-0").reset(reason="by hand")).run_id)
            return found

        monkeypatch.setattr(client, "list", list_then_reset_one)
        done = await client.batch("reset", search="r-")
        monkeypatch.undo()
        assert sorted(done.done) == ["r-1"]
        assert done.skipped == {"r-0": f"it was replaced by run {replaced[0]}"}
        assert not done.failed
        await client.batch("terminate", search="r-")


async def test_schedules_are_left_alone_unless_named(client: perdure.Client) -> None:
    async with fast_worker(client, [waiter], []):
        await client.create_schedule("hourly", waiter, "s", every=timedelta(hours=1))
        await client.start(waiter, "x", id="x-1")
        await _until_open(client, ["x-1"])
        everything = await client.batch("terminate", status="running", dry_run=True)
        assert [r.id for r in everything.matched] == ["x-1"]
        named = await client.batch("terminate", workflow="perdure.schedule", dry_run=True)
        assert [r.workflow_type for r in named.matched] == ["perdure.schedule"]
        await client.batch("terminate", status="running")
        assert (await client.get_schedule("hourly").describe()).paused is False  # still there
        await client.get_schedule("hourly").delete()


async def test_an_empty_filter_names_no_runs(client: perdure.Client) -> None:
    for empty in ({"search": ""}, {"workflow": ""}, {"search_attributes": {}}):
        with pytest.raises(ValueError, match="name which runs to terminate"):
            await client.batch("terminate", **empty)  # type: ignore[arg-type]
