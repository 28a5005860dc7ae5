"""The benchmark workloads as a Restate service, for ``peer_restate.py``.

Runs under the Restate peer venv (``benchmarks/.peers/restate-venv``, made by
``peer_restate.py``): ``python restate_service.py --port 19080``. Hypercorn
serves it on 127.0.0.1 only, HTTP/2 cleartext, as Restate's server expects.

Service "Bench", the same workloads as workloads.py:
  steps(k)      k durable steps (``ctx.run_typed``), each returning {"i": i, "ok": True}
  sleeper()     a durable sleep of one hour
  recover(req)  {"side": path, "k": 20}: k steps that each note their start in the
                side file, then sleep 0.1 s (for the recovery measurement)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from datetime import timedelta
from typing import Any

import restate

bench = restate.Service("Bench")


async def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


@bench.handler()
async def steps(ctx: restate.Context, k: int) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for i in range(k):
        last = await ctx.run_typed(f"step-{i}", step, restate.RunOptions(), i)
    return {"k": k, "last": last}


@bench.handler()
async def sleeper(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(hours=1))
    return "woke"


async def slow_step(side: str, i: int) -> int:
    with open(side, "a") as f:
        f.write(f"start {i} {os.getpid()} {time.time()}\n")
    await asyncio.sleep(0.1)
    return i


@bench.handler()
async def recover(ctx: restate.Context, req: dict[str, Any]) -> int:
    total = 0
    for i in range(int(req["k"])):
        total += await ctx.run_typed(f"step-{i}", slow_step, restate.RunOptions(), req["side"], i)
    return total


app = restate.app(services=[bench])


def main() -> None:
    import hypercorn.asyncio
    import hypercorn.config
    from restate.server import install_shutdown_hook

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=19080)
    args = parser.parse_args()
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    # Hypercorn allows 100 HTTP/2 streams per connection by default; the server
    # keeps one stream open per running invocation (1,000 sleepers, 64 in flight).
    config.h2_max_concurrent_streams = 2**31 - 1
    config.accesslog = None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            install_shutdown_hook(loop, stop.set, sig)
        await hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
