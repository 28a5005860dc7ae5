"""``perdure.contrib.opentelemetry.TracingInterceptor``: a start made under
a caller's span is a child of it, and every activity attempt of the run
(inline, on another worker, in a thread, in a child, retried, failed,
completed by another process) is a span under the start, current while the
activity runs. The blocking client's start joins its caller's trace too.
Both backends; the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow
from perdure.contrib.opentelemetry import TracingInterceptor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("tests")
tokens: list[str] = []
failures: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    exporter.clear()
    tokens.clear()
    failures.clear()
    yield


@activity.defn
async def step(name: str) -> str:
    return name


@activity.defn
def in_a_thread(name: str) -> str:
    with tracer.start_as_current_span(f"inside {name}"):  # (the activity's own span)
        return name


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3))
async def flaky(name: str) -> str:
    failures[name] = failures.get(name, 0) + 1
    if failures[name] == 1:
        raise ConnectionError("the service hung up")
    return name


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def broken(name: str) -> str:
    raise ValueError(f"{name} is broken")


@activity.defn
async def by_webhook(name: str) -> str:
    tokens.append(activity.info().task_token)
    activity.raise_complete_async()


@workflow.defn
async def kid(name: str) -> str:
    return await step(name)


@workflow.defn
async def order(oid: str) -> str:
    await step("reserve")
    await in_a_thread("charge")
    await step.options(task_queue="shipping")("ship")
    await workflow.execute_child(kid, "notify", id=f"{oid}-kid")
    await flaky("invoice")
    try:
        await broken("loyalty")
    except ActivityError:
        pass
    return await by_webhook("confirm")


def _by_name() -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_runs_activities_are_spans_under_its_start(db_url: str) -> None:
    interceptor = TracingInterceptor(tracer_provider=provider)
    client = await perdure.Client.connect(db_url, interceptors=[interceptor])
    async with (
        client,
        fast_worker(client, [order, kid], [step, in_a_thread, flaky, broken, by_webhook]),
        fast_worker(client, [], [step], task_queue="shipping"),
    ):
        with tracer.start_as_current_span("POST /orders") as request:
            handle = await client.start(order, "o-1", id="o-1")
        await wait_until(lambda: asyncio.sleep(0, bool(tokens)), what="the webhook step")
        await client.get_async_activity_handle(tokens[0]).complete("confirmed")
        assert await handle.result(timeout=20) == "confirmed"

    spans = _by_name()
    (start,) = spans["StartWorkflow:order"]
    trace_id = request.get_span_context().trace_id
    assert start.context.trace_id == trace_id
    assert _parent(start) == request.get_span_context().span_id
    assert start.kind is trace.SpanKind.CLIENT
    assert start.attributes["perdure.workflow_id"] == "o-1"
    assert start.attributes["perdure.run_id"] == handle.run_id

    runs = {name: found for name, found in spans.items() if name.startswith("RunActivity:")}
    assert sorted((name, len(found)) for name, found in runs.items()) == [
        ("RunActivity:broken", 1),
        ("RunActivity:by_webhook", 1),
        ("RunActivity:flaky", 2),
        ("RunActivity:in_a_thread", 1),
        ("RunActivity:step", 3),  # reserve, ship (another worker), the child's notify
    ]
    for span in (s for found in runs.values() for s in found):
        assert span.context.trace_id == trace_id, span.name
        assert _parent(span) == start.context.span_id, span.name
        assert span.kind is trace.SpanKind.SERVER
    workflows = {s.attributes["perdure.workflow_id"] for s in runs["RunActivity:step"]}
    assert workflows == {"o-1", "o-1-kid"}

    # The activity's own span, made in its thread, is a child of its attempt's.
    (inside,) = spans["inside charge"]
    assert _parent(inside) == runs["RunActivity:in_a_thread"][0].context.span_id

    first, second = sorted(runs["RunActivity:flaky"], key=lambda s: s.attributes["perdure.attempt"])
    assert first.status.status_code is trace.StatusCode.ERROR
    assert "ConnectionError: the service hung up" in (first.status.description or "")
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code is trace.StatusCode.UNSET
    assert second.attributes["perdure.attempt"] == 2
    (failed,) = runs["RunActivity:broken"]
    assert failed.status.status_code is trace.StatusCode.ERROR
    (webhook,) = runs["RunActivity:by_webhook"]
    assert webhook.status.status_code is trace.StatusCode.UNSET
    assert webhook.attributes["perdure.completes_async"] is True


async def test_the_blocking_clients_start_joins_its_callers_trace(db_url: str) -> None:
    interceptor = TracingInterceptor(tracer_provider=provider)

    def start_blocking() -> tuple[int, str]:
        with perdure.SyncClient.connect(db_url, interceptors=[interceptor]) as sync:
            with tracer.start_as_current_span("a script") as caller:
                sync.start(kid, "from a script", id="scripted")
            return caller.get_span_context().span_id, sync.get_handle("scripted").run_id or ""

    caller_id, _ = await asyncio.to_thread(start_blocking)
    (start,) = _by_name()["StartWorkflow:kid"]
    assert _parent(start) == caller_id
    client = await perdure.Client.connect(db_url, interceptors=[interceptor])
    async with client, fast_worker(client, [kid], [step]):
        assert await client.get_handle("scripted").result(timeout=10) == "from a script"
    (run,) = _by_name()["RunActivity:step"]
    assert _parent(run) == start.context.span_id


def test_the_worker_command_takes_it_by_name() -> None:
    from perdure.cli._modules import load_interceptor

    loaded: Any = load_interceptor("perdure.contrib.opentelemetry:TracingInterceptor")
    assert isinstance(loaded, TracingInterceptor)
