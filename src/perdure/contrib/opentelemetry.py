"""Tracing with OpenTelemetry: ``TracingInterceptor``.

Give it to the client that starts runs and to the one its workers use
(``Client.connect(interceptors=[TracingInterceptor()])``, or ``perdure
worker --interceptor perdure.contrib.opentelemetry:TracingInterceptor``).
Then:

- starting a run makes a span ``StartWorkflow:<type>`` (kind CLIENT), a
  child of whatever span is current where the start is called (a web
  request's, say); its context is written into the run's headers with the
  configured propagator (W3C ``traceparent`` by default), so it lasts as
  long as the run, across crashes and workers;
- each activity attempt, wherever and whenever it runs, is a span
  ``RunActivity:<name>`` (kind SERVER), a child of that start span, current
  while the activity runs (a ``def`` activity's thread included), so the
  activity's own instrumented calls (HTTP clients, database drivers) join
  the trace. A failed attempt's span records the exception and has status
  ERROR (a stopped attempt's, ``CancelledError``, too); a retry is a new
  span with the next ``perdure.attempt``. An attempt whose function called
  ``activity.raise_complete_async()`` ends its span without an error, with
  ``perdure.completes_async`` set.

Children and the run continued as new inherit the headers: their activities
join the same trace. Workflow code makes no spans (it is replayed).

Needs ``opentelemetry-api`` (``pip install 'perdure[otel]'``); an SDK and
an exporter are the application's to set up, as for any library.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator

from perdure.activity import CompleteAsyncError
from perdure.interceptors import ActivityCall, ActivityNext, Interceptor, WorkflowStart

__all__ = ["TracingInterceptor"]


class TracingInterceptor(Interceptor):
    """Spans for starts and activity attempts, linked through each run's
    headers. ``tracer_provider``: the global one if not given;
    ``propagator``: the global text-map propagator if not given."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._tracer = trace.get_tracer("perdure", tracer_provider=tracer_provider)
        self._propagator = propagator

    def _propagation(self) -> TextMapPropagator:
        # (Read at each use: an application sets the global one after imports.)
        return self._propagator or propagate.get_global_textmap()

    def start_workflow(self, start: WorkflowStart) -> None:
        with self._tracer.start_as_current_span(
            f"StartWorkflow:{start.workflow_type}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "perdure.workflow_type": start.workflow_type,
                "perdure.workflow_id": start.workflow_id,
                "perdure.run_id": start.run_id,
                "perdure.task_queue": start.task_queue,
            },
        ):
            self._propagation().inject(start.headers)

    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        info = call.info
        parent = self._propagation().extract(call.headers)
        with self._tracer.start_as_current_span(
            f"RunActivity:{info.activity_type}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "perdure.workflow_type": info.workflow_type,
                "perdure.workflow_id": info.workflow_id,
                "perdure.run_id": info.run_id,
                "perdure.activity_type": info.activity_type,
                "perdure.activity_id": info.activity_id,
                "perdure.attempt": info.attempt,
                "perdure.task_queue": info.task_queue,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call_next(call)
            except CompleteAsyncError:
                # Not a failure: another process will give the outcome.
                span.set_attribute("perdure.completes_async", True)
                raise
            except BaseException as exc:  # (CancelledError too: a stopped attempt)
                span.record_exception(exc)
                span.set_status(
                    trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                )
                raise
