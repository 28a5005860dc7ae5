"""id_conflict="retry_failed" (Temporal's ALLOW_DUPLICATE_FAILED_ONLY with
USE_EXISTING): a job submitted again under its id is redone only if its
latest run did not complete. Running or completed: that run's handle, and
nothing new; failed, cancelled, terminated or timed out: a new run, with the
new start's arguments."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import workflow
from perdure.errors import ApplicationError


@workflow.defn
async def nightly_import(day: str, broken: bool) -> str:
    if broken:
        raise ApplicationError(f"the file for {day} is truncated", non_retryable=True)
    return f"imported {day}"


@workflow.defn
async def waits_for_go(day: str, broken: bool) -> str:
    await workflow.wait_signal("go")
    return f"went {day}"


async def runs_of(client: perdure.Client, workflow_id: str) -> list[str]:
    return [r.run_id for r in await client.list(search=workflow_id) if r.id == workflow_id]


async def test_a_failed_job_is_redone_and_a_completed_one_is_not(client: perdure.Client) -> None:
    async with fast_worker(client, [nightly_import, waits_for_go], []):
        first = await client.start(
            nightly_import, "d1", True, id="import-d1", id_conflict="retry_failed"
        )
        with pytest.raises(perdure.WorkflowFailedError, match="truncated"):
            await first.result(timeout=30)

        fixed = await client.start(
            nightly_import, "d1", False, id="import-d1", id_conflict="retry_failed"
        )
        assert fixed.run_id != first.run_id
        assert await fixed.result(timeout=30) == "imported d1"

        again = await client.start(
            nightly_import, "d1", True, id="import-d1", id_conflict="retry_failed"
        )
        assert again.run_id == fixed.run_id  # done: not redone, whatever the arguments
        assert await again.result(timeout=30) == "imported d1"
        assert sorted(await runs_of(client, "import-d1")) == sorted([first.run_id, fixed.run_id])

        # Under way: the same run; cancelled, then terminated: a new run each time.
        open_run = await client.start(waits_for_go, "d2", False, id="import-d2")
        same = await client.start(
            waits_for_go, "d2", False, id="import-d2", id_conflict="retry_failed"
        )
        assert same.run_id == open_run.run_id
        await open_run.cancel()

        async def ended() -> bool:
            return (await open_run.describe()).status == "cancelled"

        await wait_until(ended, what="the cancellation")
        after_cancel = await client.start(
            waits_for_go, "d2", False, id="import-d2", id_conflict="retry_failed"
        )
        assert after_cancel.run_id != open_run.run_id
        await after_cancel.terminate("by hand")
        after_terminate = await client.start(
            waits_for_go, "d2", False, id="import-d2", id_conflict="retry_failed"
        )
        assert after_terminate.run_id not in (open_run.run_id, after_cancel.run_id)
        await after_terminate.signal("go", None)
        assert await after_terminate.result(timeout=30) == "went d2"
        assert len(await runs_of(client, "import-d2")) == 3


async def test_starts_at_once_after_a_failure_make_one_new_run(client: perdure.Client) -> None:
    async with fast_worker(client, [nightly_import, waits_for_go], []):
        failed = await client.start(nightly_import, "d4", True, id="import-d4")
        with pytest.raises(perdure.WorkflowFailedError):
            await failed.result(timeout=30)
        handles = await asyncio.gather(
            *(
                client.start(waits_for_go, "d4", False, id="import-d4", id_conflict="retry_failed")
                for _ in range(8)
            )
        )
        assert len({h.run_id for h in handles}) == 1
        assert handles[0].run_id != failed.run_id
        assert len(await runs_of(client, "import-d4")) == 2
        await handles[0].terminate("done")


async def test_a_timed_out_job_is_redone(client: perdure.Client) -> None:
    async with fast_worker(client, [waits_for_go], []):
        late = await client.start(
            waits_for_go,
            "d3",
            False,
            id="import-d3",
            execution_timeout=timedelta(seconds=0.2),
        )
        with pytest.raises(perdure.WorkflowTimedOutError):
            await late.result(timeout=30)
        redone = await client.start(
            waits_for_go, "d3", False, id="import-d3", id_conflict="retry_failed"
        )
        assert redone.run_id != late.run_id
        assert (await redone.describe()).status == "running"


async def test_a_wrong_value_names_the_four(client: perdure.Client) -> None:
    with pytest.raises(ValueError) as caught:
        await client.start(nightly_import, "d", False, id_conflict="retry")  # type: ignore[call-overload]
    assert str(caught.value) == (
        "id_conflict must be 'fail', 'use_existing', 'terminate_existing' or "
        "'retry_failed', not 'retry'"
    )
    assert await client.list() == []  # nothing was started
