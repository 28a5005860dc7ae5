"""Workflows for the semantics tests, run by real ``perdure worker`` processes.

Loaded by path, so it imports only perdure and the standard library. Side files
go to ``$PERDURE_TEST_DIR``: ``events-<pid>.log`` gets one JSON line per
activity execution (written and fsynced *before* the work, so a line is an
execution that happened even if the process dies right after), and
``ready-<pid>`` tells the harness the worker is up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import timedelta
from typing import Any

from perdure import ApplicationError, RetryPolicy, activity, workflow

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff=1.5, max_attempts=10)


def side_dir() -> str:
    return os.environ["PERDURE_TEST_DIR"]


def log(kind: str, **fields: Any) -> None:
    """(Called by activities only: ``at``, the wall time, orders records
    across the worker processes' files.)"""
    record = {"kind": kind, "pid": os.getpid(), "at": time.time(), **fields}
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(
        os.path.join(side_dir(), f"events-{os.getpid()}.log"),
        os.O_WRONLY | os.O_APPEND | os.O_CREAT,
        0o644,
    )
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


if "PERDURE_TEST_DIR" in os.environ:
    with open(os.path.join(side_dir(), f"ready-{os.getpid()}"), "w") as _f:
        _f.write("ready\n")


# ------------------------------------------------------------------ activities


@activity.defn(retry=FAST)
async def step(tag: str, seconds: float = 0.0) -> str:
    info = activity.info()
    log("step", tag=tag, key=info.idempotency_key, attempt=info.attempt)
    await asyncio.sleep(seconds)
    return f"done {tag}"


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def explode(tag: str) -> str:
    log("step", tag=tag, key=activity.info().idempotency_key, attempt=1)
    raise ApplicationError(f"{tag} exploded", non_retryable=True)


@activity.defn(retry=FAST, heartbeat_timeout=timedelta(seconds=1))
def crunch(job: str, chunks: int) -> int:
    """A long job that heartbeats its progress and resumes from it on retry."""
    info = activity.info()
    start = int(info.heartbeat_details or 0)
    log("crunch-start", job=job, attempt=info.attempt, resume_from=start)
    for i in range(start, chunks):
        time.sleep(0.1)
        activity.heartbeat(i + 1)
        log("chunk", job=job, chunk=i + 1, attempt=info.attempt)
    return chunks


@activity.defn(retry=FAST, heartbeat_timeout=timedelta(seconds=5))
async def cancellable(job: str) -> str:
    log("cancellable-start", job=job)
    try:
        for _ in range(600):
            await asyncio.sleep(0.05)
            activity.heartbeat()
    except asyncio.CancelledError:
        log("cancellable-cancelled", job=job)
        raise
    return "finished"


@activity.defn(retry=FAST)
async def unheeding(job: str) -> str:
    """Sends no heartbeats, so a cancellation never reaches it while it runs."""
    log("unheeding-start", job=job)
    await asyncio.sleep(60)
    return "finished"


@activity.defn(retry=FAST)
async def hand_off(tag: str) -> str:
    """Hands its task token to "another process" (the side log, which the
    test reads) and leaves the outcome to it. Tagged "die-first", its first
    attempt's process dies after handing the token out, before the worker
    records that the attempt awaits completion."""
    info = activity.info()
    log("hand-off", tag=tag, attempt=info.attempt, token=info.task_token)
    if tag == "die-first" and info.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    activity.raise_complete_async()


# ------------------------------------------------------------------ workflows


@workflow.defn
async def child_job(tag: str, seconds: float) -> str:
    result = await step(tag, seconds)
    await workflow.sleep(0.2)
    return result.upper()


@workflow.defn
async def failing_child(tag: str) -> str:
    return await explode(tag)


@workflow.defn
async def family(n: int, seconds: float) -> list[str]:
    handles = [
        await workflow.start_child(
            child_job, f"kid-{i}", seconds, id=f"{workflow.info().workflow_id}-kid-{i}"
        )
        for i in range(n)
    ]
    results = [await h for h in handles]
    try:
        await workflow.execute_child(failing_child, "bad", id=f"{workflow.info().workflow_id}-bad")
    except Exception as exc:  # ChildWorkflowError
        results.append(f"{type(exc).__name__}: {getattr(exc, 'status', '?')}")
    return results


@workflow.defn
async def waiting_child(tag: str) -> str:
    try:
        await workflow.wait_signal("never")
        return "unreachable"
    except asyncio.CancelledError:
        await step(f"{tag}-cleanup")
        raise


@workflow.defn
async def guardian(policy: str) -> str:
    await workflow.start_child(
        waiting_child,
        "orphan",
        id=f"{workflow.info().workflow_id}-child",
        parent_close_policy=policy,  # type: ignore[arg-type]
    )
    await workflow.wait_signal("finish")
    return "parent done"


@workflow.defn
async def counter(done: int, total: int, per_run: int) -> dict[str, int]:
    """Counts to ``total`` in runs of ``per_run`` steps, continuing as new."""
    for i in range(done, min(done + per_run, total)):
        await step(f"count-{i}")
    if done + per_run < total:
        workflow.continue_as_new(done + per_run, total, per_run)
    return {"count": total, "history_length": workflow.info().history_length}


@workflow.defn
async def saga(order: str) -> str:
    """Charge, reserve, wait to ship; on cancellation undo in reverse order."""
    done: list[str] = []
    try:
        await step(f"charge-{order}")
        done.append("charge")
        await step(f"reserve-{order}")
        done.append("reserve")
        await workflow.wait_signal("ship")
        await step(f"ship-{order}")
        return "shipped"
    except asyncio.CancelledError:
        for what in reversed(done):
            undo = {"charge": "refund", "reserve": "release"}[what]
            # shield: a compensation step must finish whatever else happens
            await asyncio.shield(step(f"{undo}-{order}", 0.6))
        raise


@workflow.defn
async def versioned_flow(tag: str) -> str:
    first = await step(f"{tag}-a")
    await workflow.wait_signal("go")
    return f"{first} / v1"


@workflow.defn
async def heartbeat_flow(job: str, chunks: int) -> int:
    return await crunch(job, chunks)


@workflow.defn
async def cancel_running_activity(job: str) -> str:
    try:
        return await asyncio.wait_for(cancellable(job), timeout=0.5)
    except TimeoutError:
        return "gave up"


@workflow.defn
async def cancel_then_wait(job: str) -> str:
    try:
        await asyncio.wait_for(unheeding(job), timeout=0.3)
    except TimeoutError:
        pass
    await workflow.wait_signal("finish")
    return "done"


@workflow.defn
async def wait_out_the_cancel(job: str) -> str:
    """Waits for its cancelled activity to end (it sends no heartbeat, so
    only its end, or its loss, can end it) before its await raises."""
    waited = unheeding.options(cancellation_type="wait_cancellation_completed")
    try:
        await asyncio.wait_for(waited(job), timeout=0.3)
    except TimeoutError:
        return "gave up once it had ended"
    return "finished"


@workflow.defn
async def handed_off(tag: str) -> str:
    return await hand_off(tag)


@workflow.defn
async def inbox(n: int) -> list[Any]:
    workflow.set_state("received", [])
    got: list[Any] = []
    for _ in range(n):
        got.append(await workflow.wait_signal("item"))
        workflow.set_state("received", got)
    return got


@workflow.defn
async def delayed(tag: str) -> str:
    return await step(tag)


@workflow.defn
async def slow_step(tag: str) -> str:
    return await step(tag, 60.0)


@activity.defn(retry=FAST)
async def slow_first(tag: str) -> str:
    """A minute on its first attempt, at once on any later one."""
    info = activity.info()
    log("step", tag=tag, key=info.idempotency_key, attempt=info.attempt)
    if info.attempt == 1:
        await asyncio.sleep(60.0)
    return f"done {tag} on attempt {info.attempt}"


@workflow.defn
async def slow_then_quick(tag: str) -> str:
    return await slow_first(tag)


@workflow.defn
async def lottery() -> dict[str, Any]:
    ticket = workflow.side_effect(lambda: int.from_bytes(os.urandom(4), "big"))
    await step("draw", 0.4)
    again = workflow.side_effect(lambda: time.time())
    return {"ticket": ticket, "again_is_float": isinstance(again, float)}


@workflow.defn
async def slow_poke() -> str:
    await workflow.sleep(timedelta(hours=1))
    return "late"
