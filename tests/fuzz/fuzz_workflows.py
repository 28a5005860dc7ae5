"""An interpreter workflow for replay fuzzing: its argument is a program (JSON lists)
that hypothesis generates, each step one workflow feature. Imports perdure only.

Steps: ``["act", v]`` (an activity returning ``v``), ``["try_act", v]`` (the same, its
failure caught), ``["sleep", s]``, ``["gather", [v, ...]]``, ``["signal", name]``,
``["signal_or_timeout", name, s]``, ``["child", n]`` (a child workflow returning
``n + 1``), ``["side", v]`` (a side effect), ``["state", key, v]``, ``["random"]``,
``["now"]``, ``["uuid"]``, ``["race", v, s]`` (an activity against a timer, loser
cancelled), ``["patched", id]`` and ``["spawn", program]`` (a concurrent task, joined
at the end). The result lists what each step produced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from perdure import ActivityError, activity, workflow


@activity.defn
async def echo(value: Any) -> Any:
    return value


@workflow.defn
async def child(n: int) -> int:
    return n + 1


async def _run(program: list[Any], out: list[Any]) -> None:
    spawned: list[asyncio.Task[None]] = []
    try:
        await _steps(program, out, spawned)
    finally:
        # A failing step must not leave spawned tasks running past the end of the run
        # (see test_replay_regressions): cancel them, and wait until they have stopped.
        for task in spawned:
            task.cancel()
        await asyncio.gather(*spawned, return_exceptions=True)


async def _steps(program: list[Any], out: list[Any], spawned: list[asyncio.Task[None]]) -> None:
    for step in program:
        kind = step[0]
        if kind == "act":
            out.append(await echo(step[1]))
        elif kind == "try_act":
            try:
                out.append(await echo(step[1]))
            except ActivityError:
                out.append("failed")
        elif kind == "sleep":
            await workflow.sleep(step[1])
            out.append("slept")
        elif kind == "gather":
            out.append(list(await asyncio.gather(*(echo(v) for v in step[1]))))
        elif kind == "signal":
            out.append(await workflow.wait_signal(step[1]))
        elif kind == "signal_or_timeout":
            try:
                out.append(await workflow.wait_signal(step[1], timeout=step[2]))
            except TimeoutError:
                out.append("timeout")
        elif kind == "child":
            out.append(await workflow.execute_child(child, step[1]))
        elif kind == "side":
            value = step[1]
            out.append(workflow.side_effect(lambda value=value: value))
        elif kind == "state":
            workflow.set_state(step[1], step[2])
        elif kind == "random":
            out.append(workflow.random().randint(0, 1_000_000))
        elif kind == "now":
            out.append(workflow.now().timestamp())
        elif kind == "uuid":
            out.append(str(workflow.uuid4()))
        elif kind == "patched":
            out.append(workflow.patched(step[1]))
        elif kind == "race":
            racers = [
                asyncio.ensure_future(echo(step[1])),
                asyncio.ensure_future(asyncio.sleep(step[2])),
            ]
            done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
            for loser in pending:
                loser.cancel()
            out.append(sorted(racers.index(t) for t in done))
        elif kind == "spawn":
            sub: list[Any] = []
            out.append(sub)
            spawned.append(asyncio.create_task(_run(step[1], sub)))
        else:
            raise ValueError(f"unknown step {step!r}")
    for task in spawned:
        await task  # joined in order; a failure ends the run (the rest are cancelled)


@workflow.defn
async def interpret(program: list[Any]) -> list[Any]:
    out: list[Any] = []
    await _run(program, out)
    return out
