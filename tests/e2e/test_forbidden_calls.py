"""Workflow code that does I/O through its event loop (here a thread, as
``asyncio.to_thread`` makes) is a bug that a deploy fixes: the turn fails
and is retried, the run waits with ``last_error`` naming the call and the
line, and fixed code completes it. It had failed the run for good."""

from __future__ import annotations

import asyncio

from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import workflow

fixed = False


@workflow.defn
async def reads_a_file() -> str:
    if not fixed:
        return await asyncio.to_thread(lambda: "read in a thread")
    return "read in an activity"


async def test_the_run_waits_for_fixed_code(client: perdure.Client) -> None:
    handle = await client.start(reads_a_file)
    async with fast_worker(client, [reads_a_file], []):

        async def turn_failed() -> bool:
            return "loop.run_in_executor()" in ((await handle.describe()).last_error or "")

        await wait_until(turn_failed, what="the turn failure")
        described = await handle.describe()
        assert described.status == "running"
        assert "test_forbidden_calls.py" in (described.last_error or "")
        [listed] = await client.list()  # the listing says so too
        assert listed.last_error == described.last_error
        assert [r.id for r in await client.list(retrying=True)] == [handle.id]
    global fixed
    fixed = True  # the deploy
    try:
        async with fast_worker(client, [reads_a_file], []):
            assert await handle.result(timeout=90) == "read in an activity"
        [listed] = await client.list()
        assert listed.status == "completed" and listed.last_error is None
        assert await client.list(retrying=True) == []
    finally:
        fixed = False
