"""Interceptors (``perdure.interceptors``): a client's ``start_workflow``
hook writes a run's headers, which its activities (inline, on another
worker, a plain ``def`` one in its thread), its children and the run it
continues as become see; ``execute_activity`` wraps each attempt in the
attempt's own context, in order, the activity's exception passing
through. Bad headers and bad interceptors are refused before anything is
written. Both backends."""

from __future__ import annotations

import contextvars
import threading
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow
from perdure.interceptors import ActivityCall, ActivityNext, Interceptor, WorkflowStart
from perdure.testing import Replayer

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
around: contextvars.ContextVar[str] = contextvars.ContextVar("around", default="")

seen: list[tuple[str, dict[str, str], str, bool]] = []  # (step, headers, around, in a thread)
calls: list[str] = []  # what the interceptors saw, in order


class RequestIds(Interceptor):
    """Carries the starting code's request id to every activity of the run."""

    def start_workflow(self, start: WorkflowStart) -> None:
        calls.append(f"start {start.workflow_type} {start.task_queue}")
        start.headers["request-id"] = request_id.get()

    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        calls.append(f"enter {call.info.activity_type} {call.headers.get('request-id')}")
        token = around.set(f"{call.info.activity_type}#{call.info.attempt}")
        try:
            return await call_next(call)
        except Exception as exc:
            calls.append(f"raised {type(exc).__name__}")
            raise
        finally:
            around.reset(token)
            calls.append(f"leave {call.info.activity_type}")


class Inner(Interceptor):
    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        calls.append(f"inner {call.info.activity_type}")
        doubled = ActivityCall(call.info, tuple(2 * a for a in call.args), call.kwargs)
        return (
            await call_next(doubled)
            if call.info.activity_type == "doubled"
            else await call_next(call)
        )


def _saw(step: str) -> None:
    in_thread = threading.current_thread() is not threading.main_thread()
    seen.append((step, dict(activity.info().headers), around.get(), in_thread))


@activity.defn
async def step(name: str) -> str:
    _saw(name)
    return name


@activity.defn
def threaded(name: str) -> str:
    _saw(name)
    return name


@activity.defn
async def doubled(n: int) -> int:
    return n


@activity.defn(retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)))
async def fails(name: str) -> str:
    _saw(name)
    raise ValueError("no")


@workflow.defn
async def child(name: str) -> dict[str, str]:
    await step(name)
    return workflow.info().headers


@workflow.defn
async def traced(again: bool) -> list[Any]:
    if again:
        await step("in the continuation")
        return [workflow.info().headers]
    await step("inline")
    await threaded("in a thread")
    await step.options(task_queue="elsewhere")("on another worker")
    child_headers = await workflow.execute_child(
        child, "in a child", id=f"{workflow.info().workflow_id}-child"
    )
    doubled_value = await doubled(21)
    try:
        await fails("failing")
    except ActivityError:
        pass
    workflow.continue_as_new(True)
    return [child_headers, doubled_value]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()
    calls.clear()


@pytest.fixture
async def traced_client(db_url: str) -> Any:
    c = await perdure.Client.connect(db_url, interceptors=[RequestIds(), Inner()])
    yield c
    await c.close()


async def test_headers_reach_every_activity_child_and_continuation(
    traced_client: perdure.Client,
) -> None:
    client = traced_client
    activities = [step, threaded, doubled, fails]
    async with (
        fast_worker(client, [traced, child], activities),
        fast_worker(client, [], [step], task_queue="elsewhere"),
    ):
        token = request_id.set("req-1")
        try:
            handle = await client.start(traced, False, id="traced")
        finally:
            request_id.reset(token)
        assert await handle.result(timeout=20) == [{"request-id": "req-1"}]

    expected = {"request-id": "req-1"}
    by_step = {name: (headers, ctx, thread) for name, headers, ctx, thread in seen}
    assert set(by_step) == {
        "inline",
        "in a thread",
        "on another worker",
        "in a child",
        "failing",
        "in the continuation",
    }
    for name, (headers, ctx, _thread) in by_step.items():
        assert headers == expected, name
        assert ctx.split("#")[0] in {"step", "threaded", "fails"}, (name, ctx)
    assert by_step["in a thread"][2] is True  # (a def activity: the context reached its thread)
    assert by_step["inline"][2] is False
    assert [c for c in calls if c.startswith("start")] == ["start traced default"]
    # In order, the first given outermost; the exception passes through both.
    assert calls[1:4] == ["enter step req-1", "inner step", "leave step"]
    assert calls.count("raised ValueError") == 2  # (two attempts)
    assert [name for name, *_ in seen].count("failing") == 2

    # describe() shows them, for the run, the run it continued as and its
    # child, beside (not in) the arguments.
    for run_id in (None, handle.run_id):
        described = await client.get_handle("traced", run_id).describe()
        assert described.headers == expected
        assert described.input == {"args": [run_id is None], "kwargs": {}}
    assert (await client.get_handle("traced-child").describe()).headers == expected

    # The headers are in the history, and the history replays.
    history = await client.get_handle("traced", handle.run_id).history()
    assert history[0]["type"] == "WorkflowStarted" and history[0]["headers"] == expected
    assert Replayer([traced, child]).replay(history).ok


async def test_the_interceptor_may_change_the_arguments(traced_client: perdure.Client) -> None:
    @workflow.defn(name="doubling")
    async def doubling() -> int:
        return await doubled(21)

    async with fast_worker(traced_client, [doubling], [doubled]):
        assert await traced_client.execute(doubling, id="doubling", timeout=10) == 42


async def test_a_client_without_interceptors_records_no_headers(client: perdure.Client) -> None:
    async with fast_worker(client, [child], [step]):
        handle = await client.start(child, "plain", id="plain")
        assert await handle.result(timeout=10) == {}
        history = await handle.history()
    assert "headers" not in history[0]
    assert (await handle.describe()).headers == {}
    assert seen == [("plain", {}, "", False)]


class BadHeaders(Interceptor):
    def __init__(self, headers: Any) -> None:
        self.headers = headers

    def start_workflow(self, start: WorkflowStart) -> None:
        start.headers.update(self.headers)


@pytest.mark.parametrize(
    ("headers", "error", "says"),
    [
        ({"n": 1}, TypeError, "header 'n' must be a str, not int"),
        ({"": "x"}, TypeError, "a header's name must be a non-empty str"),
        ({"big": "x" * 9000}, ValueError, "more than the 8192 allowed"),
        ({"bad": "\ud800"}, ValueError, "valid Unicode"),
    ],
)
async def test_bad_headers_fail_the_start_and_write_nothing(
    db_url: str, headers: dict[str, Any], error: type[Exception], says: str
) -> None:
    async with await perdure.Client.connect(db_url, interceptors=[BadHeaders(headers)]) as client:
        with pytest.raises(error, match=r"BadHeaders\.start_workflow: ") as raised:
            await client.start(child, "x", id="never")
        assert says in str(raised.value)
        assert await client.list() == []


async def test_an_interceptor_class_is_refused_with_a_hint(db_url: str) -> None:
    with pytest.raises(TypeError, match=r"Interceptor instances, not type .*give an instance"):
        await perdure.Client.connect(db_url, interceptors=[RequestIds])  # type: ignore[list-item]


async def test_a_reset_run_keeps_its_headers(traced_client: perdure.Client) -> None:
    async with fast_worker(traced_client, [child], [step]):
        token = request_id.set("req-2")
        try:
            first = await traced_client.start(child, "before", id="reset-me")
        finally:
            request_id.reset(token)
        assert await first.result(timeout=10) == {"request-id": "req-2"}
        # (Started afresh by the reset, not by the client: no start_workflow.)
        again = await first.reset(to_event=1, reason="again")
        assert await again.result(timeout=10) == {"request-id": "req-2"}
        assert (await again.describe()).headers == {"request-id": "req-2"}
    assert [(name, headers) for name, headers, *_ in seen] == [
        ("before", {"request-id": "req-2"}),
        ("before", {"request-id": "req-2"}),
    ]
    assert [c for c in calls if c.startswith("start")] == ["start child default"]
