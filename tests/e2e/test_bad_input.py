"""Bad input gets the documented error, and nothing is lost."""

from __future__ import annotations

import asyncio
import random
import socket
import sqlite3
import string
import sys
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure._checks import MAX_NAME_BYTES


@activity.defn
async def echo(x: str) -> str:
    return x


@workflow.defn
async def waiter(x: str) -> str:
    got = await workflow.wait_signal("go")
    return f"{await echo(x)}:{got}"


@workflow.defn
async def quick(x: str) -> str:
    return await echo(x)


async def test_unserialisable_argument_fails_at_start_and_writes_nothing(
    client: perdure.Client,
) -> None:
    with socket.socket() as s, pytest.raises(perdure.PayloadError, match=r"argument 'x'.*socket"):
        await client.start(quick, s)  # type: ignore[arg-type]
    assert await client.list() == []


async def test_wrong_number_of_arguments_fails_at_start(client: perdure.Client) -> None:
    with pytest.raises(TypeError):
        await client.start(quick, "a", "b")  # type: ignore[call-arg]
    assert await client.list() == []


async def test_an_empty_task_queue_is_refused_at_start(client: perdure.Client) -> None:
    """A run on the queue "" would wait for a worker that cannot exist."""
    with pytest.raises(ValueError, match="task_queue must be a non-empty string, not ''"):
        await client.start(quick, "a", task_queue="")
    assert await client.list() == []


async def test_an_empty_workflow_id_is_refused_at_start(client: perdure.Client) -> None:
    """An empty id had quietly become a random one: a start meant to be
    idempotent (an id built from an order number that came out empty) was not."""
    with pytest.raises(ValueError, match=r"id must be a non-empty string .* not ''"):
        await client.start(quick, "a", id="")
    assert await client.list() == []


async def test_not_a_workflow_is_refused(client: perdure.Client) -> None:
    async def plain() -> None: ...

    with pytest.raises(TypeError, match="not a workflow"):
        await client.start(plain)


async def test_duplicate_workflow_id(client: perdure.Client) -> None:
    first = await client.start(waiter, "a", id="order-1")
    with pytest.raises(perdure.WorkflowAlreadyStartedError, match="order-1") as err:
        await client.start(waiter, "b", id="order-1")
    assert err.value.run_id == first.run_id
    same = await client.start(waiter, "c", id="order-1", id_conflict="use_existing")
    assert same.run_id == first.run_id
    fresh = await client.start(waiter, "d", id="order-1", id_conflict="terminate_existing")
    assert fresh.run_id != first.run_id
    assert (await client.get_handle("order-1", first.run_id).describe()).status == "terminated"
    with pytest.raises(ValueError, match="id_conflict"):
        await client.start(waiter, "e", id="order-1", id_conflict="maybe")  # type: ignore[arg-type]


async def test_signal_cancel_terminate_missing_or_closed_workflow(client: perdure.Client) -> None:
    missing = client.get_handle("no-such-workflow")
    for action in (
        missing.signal("go"),
        missing.cancel(),
        missing.terminate(),
        missing.describe(),
        missing.result(timeout=1),
    ):
        with pytest.raises(perdure.WorkflowNotFoundError, match="no-such-workflow"):
            await action
    async with fast_worker(client, [quick], [echo]):
        handle = await client.start(quick, "x")
        await handle.result(timeout=10)
    for action in (handle.signal("go"), handle.cancel(), handle.terminate()):
        with pytest.raises(perdure.WorkflowClosedError, match="already completed"):
            await action


async def test_unserialisable_signal_payload(client: perdure.Client) -> None:
    handle = await client.start(waiter, "x")
    with pytest.raises(perdure.PayloadError, match="signal 'go'"):
        await handle.signal("go", object())


async def test_unknown_workflow_name_waits_for_a_worker_that_has_it(
    client: perdure.Client,
) -> None:
    handle = await client.start("waiter", "late", id="unknown-1")
    await handle.signal("go", "now")
    async with fast_worker(client, [quick], [echo]):  # does not know "waiter"

        async def error_recorded() -> bool:
            return (await handle.describe()).last_error is not None

        await wait_until(error_recorded, what="the unknown-type error")
    desc = await handle.describe()
    assert desc.status == "running"
    assert "workflow type 'waiter' is not registered" in (desc.last_error or "")
    # Deploy a worker that knows it: the run resumes, signal included.
    async with fast_worker(client, [waiter], [echo]):
        assert await handle.result(timeout=15) == "late:now"


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://localhost/db", "unsupported database URL"),
        ("sqlite:/relative.db", "malformed SQLite URL"),
        ("perdure.db", "unsupported database URL"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
    ],
)
async def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(perdure.StoreError, match=message):
        await perdure.Client.connect(url)


async def test_not_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(perdure.StoreError, match=r"junk\.db"):
        await perdure.Client.connect(f"sqlite:///{path}")


async def test_schema_from_a_newer_perdure_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    c = await perdure.Client.connect(f"sqlite:///{path}")
    await c.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE perdure_schema SET version = 999")
    with pytest.raises(perdure.SchemaVersionError, match=r"newer perdure"):
        await perdure.Client.connect(f"sqlite:///{path}")


async def test_corrupt_history_row_is_reported_and_nothing_is_lost(
    client: perdure.Client, db_url: str
) -> None:
    async with fast_worker(client, [waiter], [echo]):
        handle = await client.start(waiter, "x", id="corrupt-1")
        await wait_until(lambda: _waiting(handle), what="signal wait")
    path = db_url[len("sqlite:///") :]
    with closing(sqlite3.connect(path)) as conn, conn:
        good = conn.execute("SELECT data FROM events WHERE seq = 1").fetchone()[0]
        conn.execute('UPDATE events SET data = \'{"type": "Bogus"}\' WHERE seq = 1')
    await handle.signal("go", "1")
    async with fast_worker(client, [waiter], [echo], cache_size=0):
        await wait_until(lambda: _error(handle), what="the corrupt-row error")
    desc = await handle.describe()
    assert desc.status == "running" and "unknown event type 'Bogus'" in (desc.last_error or "")
    with closing(sqlite3.connect(path)) as conn, conn:  # an operator repairs the row
        conn.execute("UPDATE events SET data = ? WHERE seq = 1", (good,))
    async with fast_worker(client, [waiter], [echo]):
        assert await handle.result(timeout=15) == "x:1"


async def _waiting(handle: perdure.WorkflowHandle[str]) -> bool:
    return (await handle.describe()).waiting_signals == ["go"]


async def _error(handle: perdure.WorkflowHandle[str]) -> bool:
    return (await handle.describe()).last_error is not None


def test_worker_refuses_undecorated_functions(tmp_path: Path) -> None:
    async def main() -> None:
        c = await perdure.Client.connect(f"sqlite:///{tmp_path / 'w.db'}")
        try:
            with pytest.raises(TypeError, match="not a workflow"):
                perdure.Worker(c, [echo])
            with pytest.raises(TypeError, match="not an activity"):
                perdure.Worker(c, [], [quick])
            # One alone, not in a list (a function had been "not iterable").
            with pytest.raises(TypeError, match=r"workflows must be a list .* write workflows="):
                perdure.Worker(c, quick)
            with pytest.raises(TypeError, match=r"activities must be a list .* write activities="):
                perdure.Worker(c, [quick], echo)
            with pytest.raises(TypeError, match="activities must be a list of them, not str"):
                perdure.Worker(c, [quick], "echo")
            with pytest.raises(TypeError, match=r"a Worker needs a perdure\.Client"):
                perdure.Worker(None, [quick])  # type: ignore[arg-type]
        finally:
            await c.close()

    asyncio.run(main())


async def test_a_worker_runs_once(client: perdure.Client) -> None:
    """A second run() of the same Worker had reset the first one's state and
    hung; after a run, the worker's thread pool is shut down."""
    worker = perdure.Worker(client, [quick], [echo])
    async with worker:
        with pytest.raises(RuntimeError, match="has been run already"):
            await asyncio.wait_for(worker.run(handle_signals=False), 10)
        assert await client.execute(quick, "still serving", timeout=20) == "still serving"
    with pytest.raises(RuntimeError, match="make a new Worker to run again"):
        await asyncio.wait_for(worker.run(handle_signals=False), 10)


@pytest.mark.parametrize("url", ["", Path("perdure.db")])
async def test_an_empty_database_url_is_refused(url: Any) -> None:
    """ "" had quietly meant the default: a program whose URL setting came out
    empty used a local perdure.db that no worker serves."""
    with pytest.raises(perdure.StoreError, match="database URL must be a non-empty string"):
        await perdure.Client.connect(url)


@pytest.mark.parametrize(
    "options",
    [
        {"start_to_close_timeout": timedelta(0)},
        {"schedule_to_close_timeout": timedelta(seconds=-1)},
        {"heartbeat_timeout": timedelta(0)},
        {"start_to_close_timeout": 30},  # seconds, not a timedelta
        {"task_queue": ""},
        {"retry": {"max_attempts": 3}},  # (had failed the workflow with AttributeError)
    ],
)
def test_activity_options_out_of_range_are_refused_where_they_are_given(
    options: dict[str, Any],
) -> None:
    """A zero timeout had failed every attempt at once, at run time; a zero
    timedelta given to ``.options()`` was even dropped for the default (it
    is falsy). Both places now refuse it, naming the option."""
    name = next(iter(options))
    with pytest.raises((ValueError, TypeError), match=f"^{name} must be"):
        activity.defn(**options)(lambda: None)
    with pytest.raises((ValueError, TypeError), match=f"^{name} must be"):
        echo.options(**options)


def test_activity_options_override_only_what_is_given() -> None:
    timed = activity.defn(start_to_close_timeout=timedelta(seconds=5), task_queue="q")(echo.fn)
    changed = timed.options(heartbeat_timeout=timedelta(seconds=2))
    assert changed.opts.start_to_close_timeout == timedelta(seconds=5)
    assert changed.opts.task_queue == "q"
    assert changed.opts.heartbeat_timeout == timedelta(seconds=2)
    assert timed.options(task_queue="other").opts.task_queue == "other"


async def test_start_spans_must_be_timedeltas(client: perdure.Client) -> None:
    """A number of seconds had failed with AttributeError ('float' object has
    no attribute 'total_seconds')."""
    for option in ("start_delay", "execution_timeout"):
        with pytest.raises(TypeError, match=f"^{option} must be a timedelta, not float 5.0"):
            await client.start(quick, "a", **{option: 5.0})
    assert await client.list() == []


async def test_a_result_timeout_of_nan_is_refused(client: perdure.Client) -> None:
    """No deadline would ever have passed: the wait never ended."""
    handle = await client.start(quick, "a")
    with pytest.raises(ValueError, match="timeout must be a number of seconds or None"):
        await asyncio.wait_for(handle.result(timeout=float("nan")), 10)


@workflow.defn
async def keyed() -> str:
    try:
        workflow.set_state(5, "five")  # type: ignore[arg-type]
    except TypeError as exc:
        return str(exc)
    return "kept"


async def test_a_state_key_must_be_a_string(client: perdure.Client) -> None:
    """JSON keeps only strings as keys: 5 had come back as "5"."""
    async with fast_worker(client, [keyed], []):
        assert await client.execute(keyed) == "a state key must be a string, not int 5"


@pytest.mark.parametrize("name", [None, 5, b"go"])
async def test_a_signal_name_that_is_not_a_string_is_refused_and_the_run_goes_on(
    client: perdure.Client, name: Any
) -> None:
    """Such a signal had been written to the run's inbox, which no worker
    could read back: every turn of the run failed on it, and the run stalled."""
    handle = await client.start(waiter, "x")
    with pytest.raises(TypeError, match="a signal's name must be a str, not"):
        await handle.signal(name)
    with pytest.raises(TypeError, match="a signal's name must be a str, not"):
        await client.signal_with_start(waiter, "x", signal=name, id=handle.id)
    async with fast_worker(client, [waiter], [echo]):
        await handle.signal("go", "on")
        assert await handle.result(timeout=20) == "x:on"


async def test_a_cancel_or_terminate_reason_that_is_not_a_string_is_refused(
    client: perdure.Client,
) -> None:
    """A cancel's reason of 5 had been written to the inbox unreadable, as above."""
    handle = await client.start(waiter, "x")
    for action in (handle.cancel, handle.terminate):
        with pytest.raises(TypeError, match="a reason is a str \\(or None\\), not int 5"):
            await action(5)  # type: ignore[arg-type]
    assert (await handle.describe()).status == "running"
    async with fast_worker(client, [waiter], [echo]):
        await handle.cancel("enough")
        with pytest.raises(perdure.WorkflowCancelledError):
            await handle.result(timeout=20)


def test_an_event_from_outside_is_checked_as_a_worker_will_read_it() -> None:
    from perdure import _history as h

    assert h.field_problem(h.SignalReceived(name="go", payload={"any": [1]})) is None
    assert h.field_problem(h.CancelRequested(reason=None)) is None
    problem = h.field_problem(h.SignalReceived(name=5, payload=None))  # type: ignore[arg-type]
    assert problem == "SignalReceived event field 'name' would hold int 5, not str"
    assert h.field_problem(h.CancelRequested(reason=True)) is not None  # type: ignore[arg-type]


async def test_a_misspelt_status_is_refused_by_list(client: perdure.Client) -> None:
    """It had matched no run: an empty list, as if none were running."""
    await client.start(quick, "a")
    with pytest.raises(ValueError, match=r"status must be one of running, completed, .* 'runnin'"):
        await client.list(status="runnin")
    assert len(await client.list(status="running")) == 1


async def test_a_limit_past_a_64_bit_integer_lists_every_run(client: perdure.Client) -> None:
    """The drivers had raised OverflowError for it (a "no limit" of 10**20)."""
    await client.start(quick, "a")
    assert len(await client.list(limit=10**20, offset=0)) == 1
    assert await client.list(limit=10**20, offset=10**20) == []


async def test_handle_arguments_of_the_wrong_type_are_named(client: perdure.Client) -> None:
    handle = await client.start(quick, "a")
    with pytest.raises(TypeError, match="a state key is a str \\(or None for all\\), not int 5"):
        await handle.state(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="after_seq must be an int, not str 'a'"):
        await handle.history("a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout must be a number of seconds or None, not str"):
        await handle.result(timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id must be a non-empty string, not None"):
        client.get_handle(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="run_id must be a non-empty string"):
        client.get_handle(handle.id, "")


@workflow.defn
async def waits_for_a_number() -> str:
    try:
        await workflow.wait_signal(5)  # type: ignore[arg-type]
    except TypeError as exc:
        return str(exc)
    return "waited"


async def test_a_workflow_waiting_for_a_signal_name_that_is_not_a_string_is_told(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [waits_for_a_number], []):
        assert await client.execute(waits_for_a_number, timeout=20) == (
            "a signal's name must be a str, not int 5"
        )


@workflow.defn
async def patches_with(change_id: Any) -> str:
    try:
        workflow.patched(change_id)
    except ValueError as exc:
        return str(exc)
    return "patched"


@pytest.mark.parametrize("change_id", [5, ""])
async def test_a_change_id_must_be_a_non_empty_string(
    client: perdure.Client, change_id: Any
) -> None:
    """patched(5) had been recorded as is, and refused when the history was
    read back: once its instance left the cache, the run could not go on."""
    async with fast_worker(client, [patches_with], []):
        said = await client.execute(patches_with, change_id, timeout=20)
    assert said == f"change_id must be a non-empty string, not {change_id!r}"


def test_activity_and_workflow_names_must_be_non_empty_strings() -> None:
    """A name of 5 had been recorded in histories that could not be read back;
    an empty one had quietly meant the function's name."""
    for defn in (activity.defn, workflow.defn):
        for name in (5, ""):
            with pytest.raises(ValueError, match=f"name must be a non-empty string .*not {name!r}"):
                defn(name=name)  # type: ignore[call-overload]


@workflow.defn
async def sleeps_for(delay: Any) -> str:
    try:
        await workflow.sleep(delay)
    except TypeError as exc:
        return str(exc)
    return "slept"


@pytest.mark.parametrize("delay", ["5", True, None])
async def test_a_delay_must_be_a_timedelta_or_a_number(client: perdure.Client, delay: Any) -> None:
    async with fast_worker(client, [sleeps_for], []):
        said = await client.execute(sleeps_for, delay, timeout=20)
    assert said.startswith("a delay is a timedelta or a number of seconds, not")


@activity.defn(heartbeat_timeout=timedelta(seconds=5))
async def beats_with(kind: str) -> str:
    try:
        activity.heartbeat({"row": 3} if kind == "json" else socket.socket)
    except perdure.PayloadError as exc:
        return f"told: {exc}"
    return "beat"


@workflow.defn
async def beating(kind: str) -> str:
    return await beats_with(kind)


async def test_heartbeat_details_json_cannot_hold_fail_in_the_activity(
    client: perdure.Client,
) -> None:
    """They had failed later, on the worker's flush, as a warning in its log
    that the activity never saw (and its heartbeat was not recorded)."""
    async with fast_worker(client, [beating], [beats_with]):
        assert await client.execute(beating, "json", timeout=20) == "beat"
        said = await client.execute(beating, "socket class", timeout=20)
    assert said.startswith("told: cannot encode heartbeat details:")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


@activity.defn(retry=perdure.RetryPolicy(max_attempts=1))
async def fails_oddly(how: str) -> None:
    if how == "unprintable":
        raise _Unprintable()
    if how == "details":
        raise perdure.ApplicationError("bad", details=socket.socket, non_retryable=True)
    raise ValueError("bad \ud800 value")


@workflow.defn
async def fails_oddly_too(how: str, where: str) -> None:
    if where == "activity":
        await fails_oddly(how)
    if how == "unprintable":
        raise _Unprintable()
    if how == "details":
        raise perdure.ApplicationError("bad", details={1, 2})
    raise ValueError("bad \udfff value")


@pytest.mark.parametrize("where", ["activity", "workflow"])
@pytest.mark.parametrize("how", ["unprintable", "details", "surrogate"])
async def test_a_failure_that_could_not_be_stored_fails_the_run_instead_of_stalling_it(
    client: perdure.Client, how: str, where: str
) -> None:
    """An exception whose str() raises, details JSON cannot hold, a lone
    surrogate in a message: the failure could not be written, so the
    attempt's outcome (or the run's end) was lost and the run stayed running
    for ever (or client.start raised UnicodeEncodeError)."""
    async with fast_worker(client, [fails_oddly_too], [fails_oddly]):
        handle = await client.start(fails_oddly_too, how, where)
        with pytest.raises(perdure.WorkflowFailedError) as failed:
            await handle.result(timeout=20)
    assert failed.value.cause.type == (
        "ActivityError"
        if where == "activity"
        else {
            "unprintable": "_Unprintable",
            "details": "ApplicationError",
            "surrogate": "ValueError",
        }[how]
    )
    said = {
        "unprintable": "<str() of the _Unprintable raised RuntimeError>",
        "details": "ApplicationError: bad",
        "surrogate": "bad \\ud800 value" if where == "activity" else "bad \\udfff value",
    }[how]
    assert said in str(failed.value)


def test_a_failure_dict_is_always_storable() -> None:
    from perdure.errors import failure_from_exception

    failure = failure_from_exception(perdure.ApplicationError("x\ud800", details=[object()]))
    assert failure["message"] == "x\\ud800"
    assert failure["details"] == {"unencodable_details": failure["details"]["unencodable_details"]}
    assert failure["details"]["unencodable_details"].startswith("[<object object at")
    ok = failure_from_exception(perdure.ApplicationError("fine", details={"code": 51}))
    assert ok["message"] == "fine" and ok["details"] == {"code": 51}


@pytest.mark.parametrize(
    "act",
    [
        lambda c, h: c.start(quick, "a", id="x\ud800"),
        lambda c, h: c.start(quick, "a", task_queue="q\ud800"),
        lambda c, h: c.start("quick\ud800"),
        lambda c, h: h.signal("go\ud800"),
        lambda c, h: h.cancel("why\ud800"),
        lambda c, h: h.terminate("why\ud800"),
    ],
)
async def test_text_that_is_not_valid_unicode_is_refused_by_name(
    client: perdure.Client, act: Any
) -> None:
    """A lone surrogate no database stores as text: it had reached SQLite or
    PostgreSQL and come back as a bare UnicodeEncodeError."""
    handle = await client.start(waiter, "x")
    with pytest.raises(ValueError, match="must be valid Unicode text: it holds the lone surrogate"):
        await act(client, handle)
    assert (await handle.describe()).status == "running"


@pytest.mark.parametrize(
    "act",
    [
        lambda c, h: c.start(quick, "a", id="x\x00"),
        lambda c, h: c.start(quick, "a", task_queue="q\x00"),
        lambda c, h: c.start("q\x00ick"),
        lambda c, h: c.get_handle("x\x00").describe(),
        lambda c, h: c.get_handle(h.id, run_id="r\x00").describe(),
        lambda c, h: c.list(workflow="q\x00ick"),
        lambda c, h: c.list(search="x\x00"),
    ],
)
async def test_a_name_holding_nul_is_refused_by_name(client: perdure.Client, act: Any) -> None:
    """PostgreSQL's text cannot hold NUL: an id, queue or type name with one
    had come back as a StoreError there, and been kept on SQLite. Refused on
    both, so that what works on one database works on the other."""
    handle = await client.start(waiter, "x")
    with pytest.raises(ValueError, match=r"must not hold the NUL character \(at index 1\)"):
        await act(client, handle)
    assert (await handle.describe()).status == "running"
    with pytest.raises(ValueError, match="task_queue must not hold the NUL character"):
        perdure.Worker(client, [waiter], [], task_queue="q\x00")
    with pytest.raises(ValueError, match="identity must not hold the NUL character"):
        perdure.Worker(client, [waiter], [], identity="w\x00")


@workflow.defn
async def names_with_nul(what: str) -> str:
    try:
        if what == "child id":
            await workflow.execute_child(quick, "a", id="c\x00")
        elif what == "child queue":
            await workflow.execute_child(quick, "a", task_queue="q\x00")
        elif what == "activity queue":
            await echo.options(task_queue="q\x00")("a")
        elif what == "change id":
            return "patched: " + str(workflow.patched("p\x00"))
    except ValueError as exc:
        return str(exc)
    return await echo("nothing refused")


@pytest.mark.parametrize("what", ["child id", "child queue", "activity queue", "change id"])
async def test_workflow_code_is_told_of_a_name_holding_nul(
    client: perdure.Client, what: str
) -> None:
    """On PostgreSQL the turn that started such a child or activity could not
    be committed: the run stalled, ``running`` with no ``last_error``. A
    change id lives only in the history's JSON, which escapes NUL: kept."""
    async with fast_worker(client, [names_with_nul, quick], [echo]):
        said = await client.execute(names_with_nul, what, timeout=20)
    nul = "must not hold the NUL character (at index 1): PostgreSQL cannot store it"
    assert (
        said
        == {
            "child id": f"id {nul}",
            "child queue": f"task_queue {nul}",
            "activity queue": f"task_queue {nul}",
            "change id": "patched: True",
        }[what]
    )


def _longest(seed: int) -> str:
    """A name of MAX_NAME_BYTES that does not compress (a PostgreSQL index row
    holds 2,704 bytes after compression)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(MAX_NAME_BYTES))


LONGEST_TYPE = _longest(1)
LONGEST_QUEUE = _longest(2)


@workflow.defn(name=LONGEST_TYPE)
async def longest_names(child: bool) -> str:
    if not child:
        return await echo("child")
    try:
        await workflow.execute_child(longest_names, False, id=_longest(4) + "z")
    except ValueError as exc:
        refused = str(exc)
    else:
        return "a child id too long was not refused"
    return f"{await workflow.execute_child(longest_names, False, id=_longest(5))}; {refused}"


async def test_the_longest_names_work_and_longer_ones_are_refused(client: perdure.Client) -> None:
    """An id, task queue or type name of MAX_NAME_BYTES (2,000) works on both
    databases; one byte more is refused where it is given. PostgreSQL had
    refused a name of about 2,700 bytes at commit (its index rows hold 2,704),
    and from workflow code that stalled the run."""
    assert all(len(n.encode()) == MAX_NAME_BYTES for n in (LONGEST_TYPE, LONGEST_QUEUE))
    longest_id = _longest(3)
    async with fast_worker(client, [longest_names], [echo], task_queue=LONGEST_QUEUE):
        handle = await client.start(longest_names, True, id=longest_id, task_queue=LONGEST_QUEUE)
        said = await handle.result(timeout=20)
    assert said.startswith("child; id must be at most 2,000 bytes long in UTF-8, not 2,001 ("), said
    assert [r.id for r in await client.list(workflow=LONGEST_TYPE)].count(longest_id) == 1
    too_long = "must be at most 2,000 bytes long in UTF-8, not 2,001"
    with pytest.raises(ValueError, match=f"id {too_long}"):
        await client.start(longest_names, True, id=longest_id + "z")
    with pytest.raises(ValueError, match=f"task_queue {too_long}"):
        await client.start(longest_names, True, task_queue=LONGEST_QUEUE + "z")

    async def another() -> None:
        pass

    with pytest.raises(ValueError, match=f"name {too_long}"):
        workflow.defn(name=LONGEST_TYPE + "z")(another)


@workflow.defn
async def records_odd_text(what: str) -> str:
    try:
        if what == "state":
            workflow.set_state("k\ud800", 1)
        elif what == "wait":
            await workflow.wait_signal("s\ud800", timeout=1)
        elif what == "child":
            await workflow.execute_child("")
    except ValueError as exc:
        return str(exc)
    return "recorded"


@pytest.mark.parametrize("what", ["state", "wait", "child"])
async def test_workflow_code_is_told_of_text_a_run_cannot_record(
    client: perdure.Client, what: str
) -> None:
    async with fast_worker(client, [records_odd_text], []):
        said = await client.execute(records_odd_text, what, timeout=20)
    lone = "must be valid Unicode text: it holds the lone surrogate '\\ud800' at index 1"
    assert (
        said
        == {
            "state": f"a state key {lone}",
            "wait": f"a signal's name {lone}",
            "child": "workflow name must not be empty",
        }[what]
    )


class _Halt(BaseException):
    """The code's own BaseException (not one a signal handler raises)."""


@activity.defn(
    retry=perdure.RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10))
)
def exits(code: int) -> None:
    sys.exit(code)


@activity.defn(retry=perdure.RetryPolicy(max_attempts=1))
async def halts() -> None:
    raise _Halt("stop here")


@workflow.defn
async def calls_what_exits(which: str) -> str:
    try:
        await (exits(4) if which == "sys.exit" else halts())
    except perdure.ActivityError as exc:
        return f"{exc.cause.type} after {exc.attempt}"
    return "returned"


@pytest.mark.parametrize(
    ("which", "said"), [("sys.exit", "SystemExit after 2"), ("BaseException", "_Halt after 1")]
)
async def test_an_activity_that_exits_fails_its_attempt_not_the_worker(
    client: perdure.Client, which: str, said: str
) -> None:
    """sys.exit() in a plain def activity (in a pool thread, where no signal
    handler runs) had ended the worker's process; so had an async activity's
    own BaseException (it escaped the worker's task). Each is the attempt's
    failure now. (SystemExit and KeyboardInterrupt on the loop's own thread
    still stop the program: a signal handler may have raised them there.)"""
    async with fast_worker(client, [calls_what_exits], [exits, halts]):
        assert await client.execute(calls_what_exits, which, timeout=20) == said


def test_a_failure_keeps_a_bounded_part_of_a_huge_exception() -> None:
    """An exception carrying a whole HTTP response (20 MB) had been written
    whole, into the history, the task and every failure wrapping it: a 160 MB
    database for one run."""
    from perdure.errors import (
        MAX_FAILURE_DETAILS,
        MAX_FAILURE_MESSAGE,
        MAX_FAILURE_TRACEBACK,
        failure_from_exception,
    )

    try:
        raise RuntimeError("upstream said: " + "x" * 3_000_000)
    except RuntimeError as exc:
        failure = failure_from_exception(exc)
    assert failure["message"].startswith("upstream said: xxx")
    assert failure["message"].endswith("(3,000,015 characters in all)")
    assert len(failure["message"]) < MAX_FAILURE_MESSAGE + 50
    assert len(failure["traceback"]) < MAX_FAILURE_TRACEBACK + 50
    # Its frames are kept (where it was raised), and its message line is cut.
    assert 'raise RuntimeError("upstream said: "' in failure["traceback"]
    assert "RuntimeError: upstream said: xxx" in failure["traceback"]
    big = failure_from_exception(perdure.ApplicationError("big", details=["y" * 300_000]))
    assert big["details"] == {"oversized_details": "300,004 characters of JSON, over 262,144"}
    assert MAX_FAILURE_DETAILS == 262_144


@workflow.defn
async def blocks_the_loop() -> str:
    time.sleep(0.15)  # (the mistake this test is about)
    return "done"


async def test_workflow_code_that_blocks_the_loop_is_named_in_the_log(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Blocking workflow code (time.sleep, blocking I/O) stalls every run of
    the worker and its lease renewals; nothing had said so."""
    from perdure._worker import turns

    monkeypatch.setattr(turns, "BLOCKED_TURN_SECONDS", 0.1)
    with caplog.at_level("WARNING", logger="perdure.worker"):
        async with fast_worker(client, [blocks_the_loop, quick], [echo]):
            handle = await client.start(blocks_the_loop)
            assert await handle.result(timeout=20) == "done"
            assert await client.execute(quick, "fast", timeout=20) == "fast"
    said = [r.getMessage() for r in caplog.records if "without awaiting" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(f"workflow code of run {handle.run_id} (blocks_the_loop) ran 0.")


async def test_a_converter_that_is_not_one_is_refused_before_anything_opens(
    tmp_path: Path,
) -> None:
    """A string (a codec's name, say) had been taken, and failed at the first
    payload with AttributeError."""
    with pytest.raises(TypeError, match=r"converter must be a perdure\.DataConverter .*not str"):
        await perdure.Client.connect(f"sqlite:///{tmp_path / 'c.db'}", converter="zlib")  # type: ignore[arg-type]
    assert not (tmp_path / "c.db").exists()


@workflow.defn
async def busy_waits() -> str:
    seen: list[Any] = []

    async def listen() -> None:
        seen.append(await workflow.wait_signal("go"))

    listening = asyncio.ensure_future(listen())
    while not seen:
        await asyncio.sleep(0)  # (the mistake: a turn that never waits for input)
    await listening
    return f"went {seen[0]}"


async def test_a_busy_loop_in_workflow_code_fails_its_turn_and_the_run_goes_on(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It had never ended its turn: client.start (which computes a first turn
    next to a worker) hung, and so did every worker that took the run."""
    from perdure._runtime import instance as instance_module

    monkeypatch.setattr(instance_module, "MAX_TURN_STEPS", 5_000)
    async with fast_worker(client, [busy_waits], []):
        handle = await asyncio.wait_for(client.start(busy_waits), 20)

        async def told() -> bool:
            error = (await handle.describe()).last_error or ""
            return "callbacks in turn 1 without waiting for anything" in error

        await wait_until(told, 20)
        await handle.signal("go", 7)
        assert await handle.result(timeout=20) == "went 7"
