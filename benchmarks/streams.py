"""Streams: how soon a value an activity writes reaches a reader, and how
many values a second one stream carries.

Usage::

    python benchmarks/streams.py --url sqlite:////tmp/streams.db
    python benchmarks/streams.py --url postgresql://postgres@127.0.0.1:5432/perdure_streams

One worker, its client and the reader in one process. ``paced``: an activity
writes ``--values`` values, one every ``--every`` ms (a model's tokens); each
carries the moment it was written, and the reader notes when it got it:
p50, p90 and p99 of that delay, in ms. ``burst``: an activity writes
``--values`` values as fast as it can; values per second from the first
write to the reader's last value, and the reader's CPU. Run by hand; never
a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time

import perdure
from perdure import activity, workflow


@activity.defn(name="bench_tokens")
async def tokens(count: int, every_ms: float) -> int:
    for n in range(count):
        activity.write_stream("tokens", [n, time.perf_counter()])
        if every_ms:
            await asyncio.sleep(every_ms / 1000)
    return count


@workflow.defn(name="bench_streamer")
async def streamer(count: int, every_ms: float) -> int:
    written = await tokens(count, every_ms)
    workflow.close_stream("tokens")
    return written


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, count: int, every_ms: float) -> dict[str, float]:
    client = await perdure.Client.connect(url)
    async with client, perdure.Worker(client, [streamer], [tokens]):
        handle = await client.start(streamer, count, every_ms)
        delays, first, got = [], None, 0
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        async for n, at in handle.read_stream("tokens", timeout=600):
            now = time.perf_counter()
            first = at if first is None else first
            delays.append((now - at) * 1000)
            got = n + 1
        wall = time.perf_counter() - (first or 0.0)
        used = resource.getrusage(resource.RUSAGE_SELF)
        assert await handle.result(timeout=60) == count == got
    cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {
        "values": count,
        "every_ms": every_ms,
        "delay_p50_ms": round(statistics.median(delays), 3),
        "delay_p90_ms": round(pct(delays, 0.9), 3),
        "delay_p99_ms": round(pct(delays, 0.99), 3),
        "values_per_s": round(count / wall),
        "cpu_us_per_value": round(cpu_s / count * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="sqlite:////tmp/perdure-streams-bench.db")
    parser.add_argument("--values", type=int, default=2000)
    parser.add_argument("--every", type=float, default=5.0, help="ms between paced writes")
    args = parser.parse_args()
    for mode, every in (("paced", args.every), ("burst", 0.0)):
        found = asyncio.run(measure(args.url, args.values, every))
        print(json.dumps({"mode": mode, "url": args.url.split("@")[-1], **found}))


if __name__ == "__main__":
    main()
