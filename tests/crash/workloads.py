"""Workflows and activities that the crash tests run in real ``perdure worker`` processes.

Loaded by path (``perdure worker tests/crash/workloads.py``), so it imports only
perdure and the standard library. Side files go to ``$PERDURE_TEST_DIR``:

- ``exec-<pid>.log``: one JSON line per activity execution, written (and fsynced)
  *before* the activity does its work. A line is therefore a side effect that
  happened, even if the process is SIGKILLed right after: counting lines is how
  the tests prove that no completed step ran twice.
- ``ready-<pid>``: written when a worker process has imported this module, so
  the harness can tell a worker came up (and fail fast if it did not).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from typing import Any

from perdure import activity, workflow

TEST_DIR_ENV = "PERDURE_TEST_DIR"


def _append(path: str, record: dict[str, Any]) -> None:
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write(2) on an O_APPEND descriptor: lines never interleave. A
        # SIGKILL may still cut it short (the harness drops a torn last line).
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def _record_execution(n: int) -> activity.ActivityInfo:
    info = activity.info()
    pid = os.getpid()
    _append(
        os.path.join(os.environ[TEST_DIR_ENV], f"exec-{pid}.log"),
        {
            "pid": pid,
            "wf": info.workflow_id,
            "step": n,
            "key": info.idempotency_key,
            "attempt": info.attempt,
            "activity_id": info.activity_id,
        },
    )
    return info


@activity.defn
async def step(n: int, delay: float) -> str:
    """Step ``n`` of a workflow: record the execution, then work for ``delay`` seconds."""
    info = _record_execution(n)
    await asyncio.sleep(delay)
    return f"{info.workflow_id}#{n}"


@workflow.defn
async def sequential(steps: int, delay: float) -> list[str]:
    """``steps`` activities, one after the other."""
    results = []
    for n in range(1, steps + 1):
        results.append(await step(n, delay))
    return results


@workflow.defn
async def napping_steps(steps: int, nap: float) -> list[str]:
    """``steps`` activities, each after a durable sleep of ``nap`` seconds."""
    results = []
    for n in range(1, steps + 1):
        await workflow.sleep(nap)
        results.append(await step(n, 0.0))
    return results


@workflow.defn
async def brood(children: int, steps: int, delay: float) -> list[list[str]]:
    """``children`` child workflows of ``sequential`` at once (ids
    ``<this id>/child-<n>``), their results in order."""
    calls = [workflow.execute_child(sequential, steps, delay) for _ in range(children)]
    return list(await asyncio.gather(*calls))


@workflow.defn
async def approval(timeout_s: float) -> dict[str, Any]:
    """Wait for an ``approve`` signal; report its payload, or that none came in time."""
    started = workflow.now()
    outcome: dict[str, Any]
    try:
        payload = await workflow.wait_signal("approve", timeout=timedelta(seconds=timeout_s))
    except TimeoutError:
        outcome = {"outcome": "timed out", "payload": None}
    else:
        outcome = {"outcome": "approved", "payload": payload}
    outcome["waited_s"] = (workflow.now() - started).total_seconds()
    return outcome


@workflow.defn
async def collector(count: int) -> list[Any]:
    """Wait for ``count`` ``item`` signals; return their payloads in order."""
    return [await workflow.wait_signal("item", timeout=timedelta(minutes=5)) for _ in range(count)]


@workflow.defn
async def signaller(target: str, count: int, delay: float) -> int:
    """``count`` times: a step, then the ``item`` signal ``n`` to ``target``
    (from workflow code: workflow.signal_workflow)."""
    for n in range(1, count + 1):
        await step(n, delay)
        await workflow.signal_workflow(target, "item", n)
    return count


@workflow.defn
async def tagger(count: int, delay: float) -> int:
    """``count`` times: a step, then the search attribute ``step`` set to
    ``n`` (workflow.set_search_attributes), ``done`` at the end."""
    for n in range(1, count + 1):
        await step(n, delay)
        workflow.set_search_attributes({"step": n})
    workflow.set_search_attributes({"done": True})
    return count


@workflow.defn
async def ledger(count: int, delay: float) -> int:
    """Takes ``count`` 'deposit' updates: each a step (an activity), then the
    balance as the update's reply."""
    balance = 0
    for _ in range(count):
        request = await workflow.wait_update("deposit")
        await step(request.payload, delay)
        balance += request.payload
        request.reply(balance)
    return balance


@activity.defn
async def stream_tokens(n: int, count: int, hold: float) -> str:
    """Step ``n``: writes ``count`` tokens to the stream 'tokens', each
    ``"attempt K: i"``; the first attempt waits ``hold`` seconds after half
    of them (for a test to SIGKILL its worker mid-stream)."""
    info = _record_execution(n)
    for i in range(count):
        if i == count // 2 and info.attempt == 1:
            await asyncio.sleep(hold)
        activity.write_stream("tokens", f"attempt {info.attempt}: {i}")
        await asyncio.sleep(0.005)
    return f"{info.workflow_id}#{n}"


@workflow.defn
async def token_stream(count: int, hold: float) -> str:
    """Streams an activity's tokens between two values of its own, then
    closes the stream."""
    workflow.write_stream("tokens", "start")
    result = await stream_tokens(1, count, hold)
    workflow.write_stream("tokens", "end")
    workflow.close_stream("tokens")
    return result


@workflow.defn
async def stream_steps(count: int, delay: float) -> int:
    """``count`` steps, each between two values written to the stream
    'steps' (so every turn writes some), then closes it."""
    for n in range(1, count + 1):
        workflow.write_stream("steps", f"before {n}")
        await step(n, delay)
        workflow.write_stream("steps", f"after {n}")
    workflow.close_stream("steps")
    return count


@activity.defn
async def echo_tokens(text: str) -> int:
    """Writes each word of ``text`` to the stream 'echo'."""
    words = text.split()
    for word in words:
        activity.write_stream("echo", word)
    return len(words)


@workflow.defn
async def stream_echo() -> int:
    """Writes what each 'say' signal carries to the stream 'echo' (workflow
    code), or has an activity write it word by word ('act: ...'), until
    'bye', which closes the stream."""
    said = 0
    while True:
        text = await workflow.wait_signal("say")
        if text == "bye":
            workflow.close_stream("echo")
            return said
        if text.startswith("act:"):
            said += await echo_tokens(text[len("act:") :])
        else:
            workflow.write_stream("echo", text)
            said += 1


if TEST_DIR_ENV in os.environ:
    _append(os.path.join(os.environ[TEST_DIR_ENV], f"ready-{os.getpid()}"), {"pid": os.getpid()})
