"""``/api/metrics``: ``Client.stats`` in Prometheus's text format (version
0.0.4), written by hand: a few gauges need no client library.

Imports the public Client API only.
"""

from __future__ import annotations

from perdure.client import BuildInfo, Stats

__all__ = ["CONTENT_TYPE", "prometheus_text"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample's value: a count as an integer, seconds to the microsecond."""
    if isinstance(value, int):
        return str(value)
    return repr(round(value, 6))


def prometheus_text(stats: Stats, builds: dict[str, list[BuildInfo]] | None = None) -> str:
    """Every gauge of ``stats`` and of the worker ``builds`` of each queue
    (``Client.builds_by_queue``), each with its HELP and TYPE lines."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            inside = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            sample = f"{name}{{{inside}}}" if inside else name
            lines.append(f"{sample} {_number(value)}")

    gauge("perdure_runs_open", "Workflow runs not yet ended.", [({}, stats.open_runs)])
    gauge(
        "perdure_runs_retrying",
        "Open runs whose latest workflow task failed (retried with backoff).",
        [({}, stats.retrying_runs)],
    )
    gauge("perdure_timers", "Durable timers set.", [({}, stats.timers)])
    gauge(
        "perdure_timer_lag_seconds",
        "How long past its time the first timer is (0 if none is due).",
        [({}, stats.timer_lag)],
    )
    # (A build's label on the workflow turns of the runs pinned to it only.)
    by_queue = [
        (
            {
                "queue": b.task_queue,
                "kind": b.kind,
                **({"build": b.build_id} if b.build_id else {}),
            },
            b,
        )
        for b in stats.backlog
    ]
    gauge(
        "perdure_tasks_due",
        "Tasks due and waiting for a worker, by task queue and kind (workflow, activity).",
        [(labels, b.due) for labels, b in by_queue],
    )
    gauge(
        "perdure_tasks_due_by_priority",
        "Tasks due and waiting for a worker, by task queue, kind and priority (1 first).",
        [
            ({**labels, "priority": str(priority)}, count)
            for labels, b in by_queue
            for priority, count in sorted(b.due_by_priority.items())
        ],
    )
    gauge(
        "perdure_tasks_running",
        "Tasks leased to a worker, by task queue and kind.",
        [(labels, b.running) for labels, b in by_queue],
    )
    gauge(
        "perdure_task_lag_seconds",
        "How long the oldest due task has waited past its due time, by task queue and kind.",
        [(labels, b.lag) for labels, b in by_queue],
    )
    gauge(
        "perdure_activities_paused",
        "Activities an operator paused (no attempt of them starts), by task queue.",
        [({"queue": b.task_queue}, b.paused) for b in stats.backlog if b.kind == "activity"],
    )
    gauge(
        "perdure_workers",
        "Live workers, by the task queue they serve.",
        [({"queue": q}, n) for q, n in stats.workers.items()],
    )
    of_builds = [
        ({"queue": queue, "build": b.build_id}, b)
        for queue, found in (builds or {}).items()
        for b in found
    ]
    gauge(
        "perdure_build_current",
        "1 for the worker build that takes a task queue's new runs, 0 for its other builds.",
        [(labels, int(b.current)) for labels, b in of_builds],
    )
    gauge(
        "perdure_build_ramp_percent",
        "The share of a task queue's new runs, in percent, its ramping build takes.",
        [(labels, b.ramp) for labels, b in of_builds if b.ramp is not None],
    )
    gauge(
        "perdure_build_runs_open",
        "Open runs pinned to a worker build, by task queue and build.",
        [(labels, b.open_runs) for labels, b in of_builds],
    )
    gauge(
        "perdure_build_workers",
        "Live workers of a worker build, by task queue and build.",
        [(labels, b.workers) for labels, b in of_builds],
    )
    return "\n".join(lines) + "\n"
