"""Tracing across a crash: a run started under a caller's span, its worker
(a ``perdure worker --interceptor`` process) SIGKILLed after an activity
ran and before its completion was recorded; the next worker runs that
activity again, and every attempt's span, in either process, belongs to the
caller's trace, under the start's span: the trace context lives in the
run's history, not in a worker's memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crash_harness import Cluster
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import perdure
from perdure.contrib.opentelemetry import TracingInterceptor

pytestmark = pytest.mark.slow

SPANS = str(Path(__file__).resolve().with_name("span_file.py")) + ":interceptor"


def test_spans_after_a_sigkill_join_the_starting_trace(cluster: Cluster) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(tracer_provider=provider)
    with perdure.SyncClient.connect(cluster.url, interceptors=[tracing]) as client:
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            run = client.start("sequential", 3, 0.0, id="traced")
        first = cluster.crash_worker_at("activity.before_complete:2", "--interceptor", SPANS)
        second = cluster.start_worker("--interceptor", SPANS)
        assert run.result(timeout=60) == ["traced#1", "traced#2", "traced#3"]

    (start,) = [s for s in exporter.get_finished_spans() if s.name == "StartWorkflow:sequential"]
    assert start.parent is not None and start.parent.span_id == caller.get_span_context().span_id
    spans = [
        json.loads(line)
        for path in sorted(cluster.side_dir.glob("spans-*.log"))
        for line in path.read_text().splitlines()
    ]
    steps = sorted(
        (
            s["pid"] == second.pid,
            s["attributes"]["perdure.activity_id"],
            s["attributes"]["perdure.attempt"],
        )
        for s in spans
    )
    # Steps 1 and 2 by the first worker (killed before step 2 was recorded),
    # step 2 again (its second attempt) and step 3 by the second.
    assert steps == [(False, "1", 1), (False, "2", 1), (True, "2", 2), (True, "3", 1)]
    assert {s["pid"] for s in spans} == {first.pid, second.pid}
    for span in spans:
        assert span["name"] == "RunActivity:step"
        assert span["trace_id"] == caller.get_span_context().trace_id
        assert span["parent"] == start.context.span_id


def test_the_worker_processes_of_a_supervisor_take_the_interceptor_too(cluster: Cluster) -> None:
    supervisor = cluster.start_worker("--processes", "2", "--interceptor", SPANS)
    client = cluster.client
    runs = [client.start("sequential", 2, 0.0, id=f"p{n}") for n in range(4)]
    for n, run in enumerate(runs):
        assert run.result(timeout=60) == [f"p{n}#1", f"p{n}#2"]
    spans = [
        json.loads(line)
        for path in sorted(cluster.side_dir.glob("spans-*.log"))
        for line in path.read_text().splitlines()
    ]
    assert len(spans) == 8
    assert supervisor.pid not in {s["pid"] for s in spans}  # (written by its workers)
