"""The chaos fuzzer's mixed workload, run by real ``perdure worker`` processes.

Loaded by path (``perdure worker tests/chaos/chaos_workloads.py``), so it imports only
perdure and the standard library; the driver imports it too, for :func:`expected_result`.
Four workflow shapes cover the engine's features: ``pipeline`` (sequential steps, planned
activity failures and retries, ``asyncio.gather`` of steps on a task queue with limits, a
durable sleep, a side effect, state),
``mailbox`` (signals taken by a task of their own, waited for with a
``wait_condition`` timeout that starts and cancels timers),
``family`` (child workflows), ``rollover`` (continue-as-new), ``relay`` (signals sent
from workflow code to a child), ``desk`` (updates, retried by their ids),
``callback`` (activities completed by the driver with their task tokens),
``canceller`` (a step it gives up on and waits for to end, then its undoing) and
``ledger`` (transactional activities, ``perdure.transactions``: each posts one
row to the application's database, ``$PERDURE_CHAOS_LEDGER``, which must hold
it exactly once whatever the kills).

Side files in ``$PERDURE_TEST_DIR``: ``exec-<pid>.log`` gets one JSON line per activity
execution, written and fsynced *before* the activity does anything (so a line is an
execution that happened, even if the process died right after); ``handoff-<pid>.log``
one line per ``hand_off`` attempt, with its task token; ``hold-<pid>.log`` one line per
``hold`` attempt as it begins and one as it stops; ``ready-<pid>`` says the worker
imported this module.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import timedelta
from typing import Any

from perdure import ApplicationError, RetryPolicy, activity, workflow
from perdure.transactions import AppDatabase

TEST_DIR_ENV = "PERDURE_TEST_DIR"
LEDGER_ENV = "PERDURE_CHAOS_LEDGER"  # the application's database, for ledger's posts
LEDGER_TABLE = "CREATE TABLE ledger_entries (tag TEXT NOT NULL, i INTEGER NOT NULL, entry TEXT)"
# The pipeline's parallel steps run on a task queue of their own, served by a
# worker of its own, whose limits the driver sets (max_running=LIMITED_RUNNING,
# max_running_per_key=LIMITED_PER_KEY: the runs' fairness keys, and
# max_starts_per_key=LIMITED_STARTS_PER_KEY per LIMITED_WINDOW seconds: a
# pipeline's three steps, one at a time, often start faster than that).
LIMITED_QUEUE = "chaos-limited"
LIMITED_RUNNING = 2
LIMITED_PER_KEY = 1
LIMITED_STARTS_PER_KEY = 2
LIMITED_WINDOW = 0.2
STEP_DELAY = 0.02
SLEEP = 0.25  # seconds of durable sleep in pipeline and rollover
SIGNAL_TIMEOUT = 2.0  # mailbox's wait_condition timeout: often hit, then waited again

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff=1.0)


def _append(path: str, record: dict[str, Any]) -> None:
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write(2) on an O_APPEND descriptor: a SIGKILL lands before or after it.
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def _log_attempt(log: str, tag: str, **fields: Any) -> None:
    """The running attempt, in ``<log>-<pid>.log`` (with ``fields``)."""
    info = activity.info()
    pid = os.getpid()
    record = {
        "pid": pid,
        "at": time.time(),  # (the wall clock: the driver's pauses are timed by it too)
        "wf": info.workflow_id,
        "run": info.run_id,
        "ref": int(info.activity_id),
        "attempt": info.attempt,
        "key": info.idempotency_key,
        "tag": tag,
    }
    _append(os.path.join(os.environ[TEST_DIR_ENV], f"{log}-{pid}.log"), {**record, **fields})


@activity.defn(retry=FAST_RETRY)
async def work(tag: str, fail_first: int) -> str:
    """One step: log the execution, work a little, fail the first ``fail_first`` attempts."""
    attempt = activity.info().attempt
    fails = attempt <= fail_first
    _log_attempt("exec", tag, fails=fails)
    activity.write_stream("work", tag)  # (checked: there once this attempt completes)
    await asyncio.sleep(STEP_DELAY)
    if fails:
        raise ApplicationError(f"planned failure of {tag} attempt {attempt}")
    return f"{tag}@ok"


@workflow.defn
async def pipeline(tag: str, steps: int, fail_every: int) -> list[str]:
    results = []
    for i in range(steps):
        results.append(await work(f"{tag}:s{i}", 1 if i % fail_every == 0 else 0))
        # (Written by the commit of the turn after each step: run_chaos checks
        # that the store's attributes, and its index, say what the history does.)
        workflow.set_search_attributes({"tag": tag, "step": i})
        workflow.write_stream("steps", i)  # (checked: there exactly once)
    limited = work.options(task_queue=LIMITED_QUEUE)
    results.extend(await asyncio.gather(*(limited(f"{tag}:g{i}", 0) for i in range(3))))
    await workflow.sleep(SLEEP)
    results.append(workflow.side_effect(lambda: tag.upper()))
    workflow.set_state("done", len(results))
    return results


@workflow.defn
async def mailbox(tag: str, count: int) -> list[int]:
    """A task of its own takes the signals; the main code waits for each
    with ``wait_condition`` (its timeout often hit, then waited again)."""
    got: list[int] = []

    async def collect() -> None:
        while True:
            got.append(await workflow.wait_signal("item"))

    def more() -> bool:  # a signal not handled yet
        return len(got) > handled

    collector = asyncio.create_task(collect())
    handled = 0
    while handled < count:
        try:
            await workflow.wait_condition(more, timeout=SIGNAL_TIMEOUT)
        except TimeoutError:
            continue  # the timer fired: wait again
        handled += 1
        workflow.set_state("received", handled)
        if handled % 2 == 0:
            await work(f"{tag}:ack{handled}", 0)
    collector.cancel()
    return got


@workflow.defn
async def family(tag: str, kids: int) -> list[list[str]]:
    # A step first: the turn that starts the children is its continuation
    # (an inline step's plan with children), not the run's first turn.
    await work(f"{tag}:f", 0)
    return list(
        await asyncio.gather(
            *(workflow.execute_child(pipeline, f"{tag}/k{i}", 2, 2) for i in range(kids))
        )
    )


@workflow.defn
async def rollover(tag: str, i: int, total: int, acc: list[str]) -> list[str]:
    acc = [*acc, await work(f"{tag}:r{i}", 0)]
    await workflow.sleep(SLEEP / 2)
    if i + 1 < total:
        workflow.continue_as_new(tag, i + 1, total, acc)
    return acc


@workflow.defn
async def sink(count: int) -> list[int]:
    """Takes ``count`` ``relayed`` signals, sent by its parent's workflow code."""
    return [
        await workflow.wait_signal("relayed", timeout=timedelta(minutes=5)) for _ in range(count)
    ]


@workflow.defn
async def relay(tag: str, count: int) -> list[int]:
    """Starts a ``sink`` child, then sends it ``count`` signals from workflow
    code (workflow.signal_workflow), a step before every other one: each is
    written by the commit of its turn, so the sink must get each once."""
    child = await workflow.start_child(sink, count, id=f"{tag}/sink")
    for n in range(count):
        if n % 2:
            await work(f"{tag}:n{n}", 0)
        await workflow.signal_workflow(child.id, "relayed", n)
    return list(await child.result())


@workflow.defn
async def desk(tag: str, count: int) -> list[int]:
    """Takes ``count`` ``add`` updates, answering each with every payload
    taken so far, a step before every other answer. The driver calls each
    with a short timeout and calls again with the same update id until it
    is answered: a retry must never be taken twice."""
    got: list[int] = []
    while len(got) < count:
        request = await workflow.wait_update("add")
        got.append(request.payload)
        if len(got) % 2 == 0:
            await work(f"{tag}:u{len(got)}", 0)
        request.reply(list(got))
    return got


# How long a canceller waits for its hold before it gives up on it.
HOLD_FOR = 0.3


@activity.defn(retry=FAST_RETRY, heartbeat_timeout=timedelta(seconds=1))
async def hold(tag: str) -> str:
    """Holds a resource, heartbeating, until its attempt is stopped (its
    workflow's cancellation, a pause, a lost lease): then releases it,
    logging both ends (``hold-<pid>.log``) before it goes on."""
    _log_attempt("hold", tag, event="begin")
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        _log_attempt("hold", tag, event="release", reason=activity.cancellation_reason())
        raise


@workflow.defn
async def canceller(tag: str) -> str:
    """Gives up on its hold after HOLD_FOR, waits for it to end (its
    cancellation_type: chaos_checks' check_holds: no attempt of it runs on
    once the undoing step has begun), then runs the undoing step."""
    held = hold.options(cancellation_type="wait_cancellation_completed")
    try:
        await asyncio.wait_for(held(f"{tag}:h"), timeout=HOLD_FOR)
    except TimeoutError:
        pass
    return await work(f"{tag}:undo", 0)


@activity.defn(retry=FAST_RETRY)
async def hand_off(tag: str) -> str:
    """Hands its task token to the driver (``handoff-<pid>.log``, fsynced
    before the function ends) and leaves the outcome to it: the driver
    completes it, or fails it once to see it retried with a new token."""
    _log_attempt("handoff", tag, token=activity.info().task_token)
    activity.raise_complete_async()


@workflow.defn
async def callback(tag: str, count: int) -> list[str]:
    """``count`` steps whose outcomes come from outside (the driver)."""
    return [await hand_off(f"{tag}:c{i}") for i in range(count)]


# (The driver imports this module too, and posts nothing: any URL will do there.)
ledger_db = AppDatabase(os.environ.get(LEDGER_ENV) or "sqlite:///chaos-ledger-unused.db")


@ledger_db.transaction(retry=FAST_RETRY)
def post(conn: Any, tag: str, i: int) -> str:
    """Posts entry ``i`` of ``tag``: one row, whose id is new at each run of
    this function; sleeps inside the transaction, where a kill may land."""
    entry = uuid.uuid4().hex
    _log_attempt("post", tag, i=i, entry=entry)
    mark = "?" if ledger_db.dialect == "sqlite" else "%s"
    conn.execute(
        f"INSERT INTO ledger_entries (tag, i, entry) VALUES ({mark}, {mark}, {mark})",
        (tag, i, entry),
    )
    time.sleep(STEP_DELAY)
    return entry


@workflow.defn
async def ledger(tag: str, count: int) -> list[str]:
    """``count`` posts, one after another: the entries' ids."""
    return [await post(tag, i) for i in range(count)]


def handed_off_result(tag: str) -> str:
    """What the driver completes a ``hand_off`` of ``tag`` with."""
    return f"{tag}@done"


def expected_result(kind: str, args: list[Any], signals: list[int]) -> Any:
    """What a workflow started with ``args`` must return (``signals``: those accepted)."""
    if kind == "pipeline":
        tag, steps, _ = args
        return [f"{tag}:s{i}@ok" for i in range(steps)] + [
            *(f"{tag}:g{i}@ok" for i in range(3)),
            tag.upper(),
        ]
    if kind in ("mailbox", "desk"):
        return signals
    if kind == "family":
        tag, kids = args
        return [expected_result("pipeline", [f"{tag}/k{i}", 2, 2], []) for i in range(kids)]
    if kind == "rollover":
        tag, _, total, _ = args
        return [f"{tag}:r{i}@ok" for i in range(total)]
    if kind == "relay":
        return list(range(args[1]))
    if kind == "callback":
        tag, count = args
        return [handed_off_result(f"{tag}:c{i}") for i in range(count)]
    if kind == "canceller":
        return f"{args[0]}:undo@ok"
    raise ValueError(kind)


if TEST_DIR_ENV in os.environ:
    _append(os.path.join(os.environ[TEST_DIR_ENV], f"ready-{os.getpid()}"), {"pid": os.getpid()})
