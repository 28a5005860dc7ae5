"""Workflow code that raises SystemExit or KeyboardInterrupt (a ``sys.exit()``,
or a library that calls it, such as argparse on bad arguments).

asyncio passes both up through the event loop: the worker's process ended,
and so did the embedding program (a ``start()`` that computed the first turn
raised SystemExit to its caller). Each worker that replayed the run after
that ended too. Now the turn fails, as a non-determinism error's does: the
run is kept, its ``last_error`` says what was raised and where, and it goes
on once fixed code is deployed."""

from __future__ import annotations

import argparse
import sys

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def step(i: int) -> int:
    return i


@workflow.defn(name="exits")
async def exits(how: str) -> str:
    await step(1)
    if how == "exit":
        sys.exit(3)
    if how == "interrupt":
        raise KeyboardInterrupt
    argparse.ArgumentParser(exit_on_error=True).parse_args(["--no-such-flag"])
    return "parsed"


@workflow.defn(name="exits")
async def exits_fixed(how: str) -> str:  # the fix, deployed under the same name
    await step(1)
    return f"{how} fixed"


@workflow.defn
async def exits_at_once() -> None:
    sys.exit("before any await")


@workflow.defn
async def fine(n: int) -> int:
    return await step(n) + 1


async def _last_error(handle: perdure.WorkflowHandle, needle: str) -> str:
    found: list[str] = []

    async def has_it() -> bool:
        found[:] = [(await handle.describe()).last_error or ""]
        return needle in found[0]

    await wait_until(has_it, timeout=20, what=f"last_error to mention {needle!r}")
    return found[0]


@pytest.mark.parametrize(
    ("how", "raised"),
    [
        ("exit", "SystemExit(3)"),
        ("interrupt", "KeyboardInterrupt()"),
        ("argparse", "SystemExit(2)"),
    ],
)
async def test_an_exit_in_workflow_code_fails_the_turn_not_the_worker(
    client: perdure.Client, how: str, raised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fast_worker(client, [exits, fine], [step]):
        handle = await client.start(exits, how)
        error = await _last_error(handle, raised)
        assert "which would have ended the worker's process" in error
        if how != "argparse":  # (argparse's own sys.exit is the innermost frame)
            assert f"{__file__}:" in error, error
        assert await client.execute(fine, 1) == 2  # the worker still serves
        assert (await handle.describe()).status == "running"
    types = [e["type"] for e in await handle.history()]
    assert "WorkflowFailed" not in types and "WorkflowCompleted" not in types, types
    async with fast_worker(client, [exits_fixed], [step]):
        assert await handle.result(timeout=30) == f"{how} fixed"
    assert [e["type"] for e in await handle.history()].count("ActivityCompleted") == 1
    capsys.readouterr()  # (argparse printed its usage)


async def test_an_exit_in_a_first_turn_does_not_reach_the_starter(
    client: perdure.Client,
) -> None:
    """The first turn of a run started in this process is computed inside
    start(): the SystemExit had been raised to the caller of start()."""
    async with fast_worker(client, [exits_at_once], [step]):
        handle = await client.start(exits_at_once)
        error = await _last_error(handle, "SystemExit('before any await')")
        assert f"{__file__}:" in error


memory_short = {"now": True}


@workflow.defn(name="needs_memory")
async def needs_memory(n: int) -> int:
    await step(n)
    if memory_short["now"]:
        raise MemoryError  # as an allocation that fails would
    return n * 2


async def test_running_out_of_memory_fails_the_turn_not_the_run(client: perdure.Client) -> None:
    """A MemoryError is the machine's state, not the workflow's outcome: the
    turn fails and is tried again, and the run completes once memory allows
    (it had failed the run for good, as an exception of the code does)."""
    memory_short["now"] = True
    async with fast_worker(client, [needs_memory], [step]):
        handle = await client.start(needs_memory, 21)
        error = await _last_error(handle, "ran out of memory")
        assert "MemoryError()" in error and f"{__file__}:" in error
        assert (await handle.describe()).status == "running"
        memory_short["now"] = False
        assert await handle.result(timeout=60) == 42
