"""``python -m examples.traced_checkout``: one checkout, traced with
OpenTelemetry from the web request that placed it to the payment API's
call, across a worker killed in the middle of that call.

1. The app (this process) sets up the OpenTelemetry SDK and connects with
   perdure's ``TracingInterceptor``; a worker process runs with
   ``--interceptor examples.traced_checkout.spans:interceptor``.
2. Inside the span of ``POST /checkout`` (the web request), the app starts
   the checkout: the start is a span of that trace, and its context is
   written into the run's headers, in the database.
3. The worker reserves the stock and calls the payment API, which hangs;
   the worker is killed (SIGKILL) during the call.
4. A second worker takes the run over and charges again (the same
   idempotency key: the API would see one charge), ships, and the child
   workflow sends the receipt.
5. The trace, read back from the spans every process exported, is printed
   as a tree: every attempt, in either worker, in the child too, sits
   under the start, in the request's trace. The killed attempt has no
   span (a span is exported when it ends), but the second attempt's does.

Options: ``--folder DIR`` keeps the database and the spans there (default: a
new temporary folder). Needs OpenTelemetry's SDK (``make demo`` installs it;
elsewhere ``pip install 'perdure[otel]' opentelemetry-sdk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry import trace

import perdure

from .. import worker_process
from ..worker_process import lines, wait_for
from . import spans
from .shop import checkout

LEASE_TIMEOUT = 1.0
INTERCEPTOR = "examples.traced_checkout.spans:interceptor"


def spawn_worker(
    number: int, url: str, folder: Path, charge_seconds: float
) -> subprocess.Popen[bytes]:
    env = {spans.DIR_ENV: str(folder), "TRACED_CHECKOUT_CHARGE_SECONDS": str(charge_seconds)}
    return worker_process.spawn_worker(
        "examples.traced_checkout.shop",
        url,
        folder / f"worker-{number}.log",
        env,
        LEASE_TIMEOUT,
        "--interceptor",
        INTERCEPTOR,
    )


def print_tree(records: list[dict[str, Any]], who: dict[int, str]) -> None:
    """The spans of one trace as a tree, each with its duration and process."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: r["start"]):
        children.setdefault(record["parent"], []).append(record)
    known = {r["span"] for r in records}

    def show(record: dict[str, Any], depth: int) -> None:
        took = (record["end"] - record["start"]) / 1e6
        attrs = record["attributes"]
        attempt = f" attempt {attrs['perdure.attempt']}" if "perdure.attempt" in attrs else ""
        run = f" ({attrs['perdure.workflow_id']})" if "perdure.workflow_id" in attrs else ""
        error = " ERROR" if record["status"] == "ERROR" else ""
        label = f"{record['name']}{attempt}{run}{error}"
        where = who.get(record["pid"], "?")
        print(f"  {'  ' * depth}{label:<{60 - 2 * depth}} {took:8.1f} ms  {where}")
        for child in children.get(record["span"], []):
            show(child, depth + 1)

    for root in (r for r in records if r["parent"] not in known):
        show(root, 0)


async def story(folder: Path) -> int:
    os.environ[spans.DIR_ENV] = str(folder)
    url = f"sqlite:///{folder / 'shop.db'}"
    print(f"world folder: {folder}")
    tracing = spans.interceptor()  # (the app's SDK set-up, and perdure's interceptor)
    client = await perdure.Client.connect(url, interceptors=[tracing])
    who = {os.getpid(): "the app"}
    workers = [spawn_worker(1, url, folder, charge_seconds=60.0)]
    who[workers[0].pid] = "worker #1"
    try:
        request_tracer = trace.get_tracer("web")
        with request_tracer.start_as_current_span(
            "POST /checkout", kind=trace.SpanKind.SERVER
        ) as request:
            handle = await client.start(checkout, "o-77", 4200, id="checkout-o-77")
        trace_id = f"{request.get_span_context().trace_id:032x}"
        print(f"the request's trace: {trace_id}; the run's headers hold its start's context")
        calls = folder / "calls.jsonl"
        await wait_for(
            "the charge's call", lambda: any(c["event"] == "charge requested" for c in lines(calls))
        )
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        print("kill -9 worker #1 while the payment API call hangs")
        workers.append(spawn_worker(2, url, folder, charge_seconds=0.05))
        who[workers[1].pid] = "worker #2"
        print("worker #2 starts, and takes the run over once worker #1's lease has run out")
        print(f"result: {await handle.result(timeout=60)}")
    finally:
        worker_process.stop(workers)
        await client.close()
    records = [r for r in spans.read() if r["trace"] == trace_id]
    print(f"the trace ({len(records)} spans, from {len({r['pid'] for r in records})} processes):")
    print_tree(records, who)
    charges = [c for c in lines(folder / "calls.jsonl") if c["event"] == "charge requested"]
    print(
        f"the payment API was called {len(charges)} times (attempts "
        f"{', '.join(str(c['attempt']) for c in charges)}); attempt 1 has no span: "
        "its worker died before the span ended"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the spans go")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-traced-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder))


if __name__ == "__main__":
    sys.exit(main())
