"""Where this example's spans go: OpenTelemetry's SDK, set up as an
application would, with an exporter that appends each finished span as a
JSON line to ``spans.jsonl`` in ``$TRACED_CHECKOUT_DIR`` (so that the story,
its worker processes and its test read one file). ``interceptor()`` is what
``perdure worker --interceptor examples.traced_checkout.spans:interceptor``
loads: it sets the SDK up in the worker's process and returns perdure's
TracingInterceptor. In your project, configure your own exporter (OTLP to a
collector, Jaeger, Honeycomb...) here instead."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from perdure.contrib.opentelemetry import TracingInterceptor

DIR_ENV = "TRACED_CHECKOUT_DIR"


def spans_file() -> Path:
    return Path(os.environ[DIR_ENV]) / "spans.jsonl"


class JsonLines(SpanExporter):
    """Each span as one line, written with one ``write`` to a file opened for
    appending: processes share the file without interleaving."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(_record(s)) + "\n" for s in spans).encode()
        fd = os.open(spans_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


def _record(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "trace": f"{span.context.trace_id:032x}",
        "span": f"{span.context.span_id:016x}",
        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "pid": os.getpid(),
        "attributes": dict(span.attributes or {}),
    }


def interceptor() -> TracingInterceptor:
    """Set up the SDK in this process (the global provider, so that the
    activities' own ``trace.get_tracer`` reaches it) and return the
    interceptor that puts perdure's starts and attempts in the trace."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLines()))
    trace.set_tracer_provider(provider)
    return TracingInterceptor()


def read() -> list[dict[str, Any]]:
    path = spans_file()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
