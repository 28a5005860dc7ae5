"""A tracing interceptor for crash tests' worker processes
(``perdure worker ... --interceptor tests/crash/span_file.py:interceptor``):
perdure's TracingInterceptor on an SDK provider that appends each finished
span, as one JSON line, to ``$PERDURE_TEST_DIR/spans-<pid>.log`` as it
ends (fsynced: a span written is a span that ended before any SIGKILL)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from perdure.contrib.opentelemetry import TracingInterceptor


class _FileExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        path = os.path.join(os.environ["PERDURE_TEST_DIR"], f"spans-{os.getpid()}.log")
        with open(path, "a") as f:
            for span in spans:
                record = {
                    "pid": os.getpid(),
                    "name": span.name,
                    "trace_id": span.context.trace_id,
                    "span_id": span.context.span_id,
                    "parent": span.parent.span_id if span.parent else None,
                    "attributes": dict(span.attributes or {}),
                }
                f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return SpanExportResult.SUCCESS


def interceptor() -> TracingInterceptor:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_FileExporter()))
    return TracingInterceptor(tracer_provider=provider)
