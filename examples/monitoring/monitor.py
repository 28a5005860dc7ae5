"""A workflow that checks a disk's free space every interval, for ever.

An endless loop would grow an endless history (and an endless replay). So when
``workflow.info().history_length`` passes ``max_history`` the run rolls over with
``workflow.continue_as_new``: same workflow id, a fresh history, the running
totals passed on as arguments. Clients follow it by workflow id: ``describe()``,
``state("latest")``, ``signal("stop")`` reach whichever run is current.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta

from perdure import RetryPolicy, activity, workflow


@dataclass
class MonitorConfig:
    path: str = "/"
    every_seconds: float = 60.0
    min_free_percent: float = 10.0
    max_history: int = 500  # events per run before it continues as new


@dataclass
class Health:
    path: str
    free_percent: float
    status: str  # "ok" or "low"


@dataclass
class Totals:
    checks: int = 0
    alerts: int = 0
    runs: int = 1  # how many runs of the continue-as-new chain so far
    last_status: str = "ok"


@activity.defn(retry=RetryPolicy(max_attempts=3), start_to_close_timeout=timedelta(seconds=10))
def check_disk(path: str, min_free_percent: float) -> Health:
    """A plain ``def`` activity: it runs in the worker's thread pool."""
    usage = shutil.disk_usage(path)
    free = round(100.0 * usage.free / usage.total, 2)
    return Health(path, free, "ok" if free >= min_free_percent else "low")


@activity.defn
async def send_alert(health: Health) -> None:
    """Page someone (here: the worker's log)."""
    print(f"ALERT: {health.path} has only {health.free_percent}% free", flush=True)


@workflow.defn
async def monitor(config: MonitorConfig, totals: Totals | None = None) -> Totals:
    """Check, publish, wait; alert when the status turns bad; stop on "stop"."""
    totals = totals or Totals()
    while True:
        health = await check_disk(config.path, config.min_free_percent)
        totals.checks += 1
        if health.status != "ok" and totals.last_status == "ok":
            await send_alert(health)
            totals.alerts += 1
        totals.last_status = health.status
        workflow.set_state("latest", health)
        workflow.set_state("totals", totals)
        try:
            # A durable wait that doubles as the interval timer.
            await workflow.wait_signal("stop", timeout=config.every_seconds)
            return totals
        except TimeoutError:
            pass
        if workflow.info().history_length >= config.max_history:
            totals.runs += 1
            workflow.continue_as_new(config, totals)
