"""Search attributes at scale: what they cost a start, and how fast a
listing finds runs by them.

Usage (a fresh database each time)::

    python benchmarks/attributes.py --url sqlite:////tmp/attrs.db --runs 100000
    python benchmarks/attributes.py --url postgresql://postgres@127.0.0.1:5432/perdure_attrs

Starts ``--runs`` runs (queued: no worker), half without search attributes
and half with four (``customer``: one of 5,000; ``region``: one of three;
``amount``: a number from 0 to 9,999, spread evenly over time; ``day``: an
ISO date, later for later runs), in alternating batches, and reports starts
per second for each half; then lists runs by one attribute, by two (in both
orders: the listing walks the one the fewest runs hold), by a value nobody
has, by ranges (``AttributeRange``: a narrow one, whose rows the listing
walks and sorts; a wide one, for which it walks the runs newest first; one
beside a value; a string range; one that holds only the oldest runs, the
runs' walk's worst case), and with no filter, each the median of 20
listings of up to 100 runs; then counts the runs each filter matches
(``Client.count``), the median of 5 counts each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date, timedelta
from typing import Any

import perdure
from perdure import AttributeRange, workflow

BATCH = 1000


@workflow.defn(name="bench_order")
async def order(n: int) -> None:
    pass


def attributes(n: int, runs: int) -> dict[str, Any]:
    day = date(2026, 1, 1) + timedelta(days=n * 365 // runs)
    return {
        "customer": f"c-{n % 5000}",
        "region": ("eu", "us", "ap")[n % 3],
        "amount": n * 7919 % 10000,
        "day": day.isoformat(),
    }


async def main(url: str, runs: int) -> None:
    client = await perdure.Client.connect(url)
    spent = {False: 0.0, True: 0.0}
    started = {False: 0, True: 0}
    for base in range(0, runs, BATCH):
        tagged = (base // BATCH) % 2 == 1
        numbers = range(base, min(runs, base + BATCH))
        began = time.perf_counter()
        await asyncio.gather(
            *(
                client.start(
                    order, n, id=f"o-{n}", search_attributes=attributes(n, runs) if tagged else None
                )
                for n in numbers
            )
        )
        spent[tagged] += time.perf_counter() - began
        started[tagged] += len(numbers)
    for tagged in (False, True):
        rate = started[tagged] / spent[tagged] if spent[tagged] else 0.0
        print(f"starts {'with' if tagged else 'without'} attributes: {rate:,.0f}/s")
    if url.startswith("postgres"):
        # The planner's statistics of the tables just filled, as autovacuum's
        # analyze would gather them within a minute of the load (without,
        # it guessed a value held by 16,667 rows held by two: 67 ms, not 1).
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    queries: list[dict[str, Any] | None] = [
        {"customer": "c-1"},
        {"region": "eu"},
        {"customer": "c-1", "region": "us"},
        {"region": "us", "customer": "c-1"},
        {"customer": "nobody"},
        {"amount": AttributeRange(ge=9990)},
        {"amount": AttributeRange(ge=1000, lt=1100)},
        {"amount": AttributeRange(ge=5000)},
        {"amount": AttributeRange(ge=9000), "region": "eu"},
        {"amount": AttributeRange(gt=10**6)},
        {"day": AttributeRange(ge="2026-12-31")},
        {"day": AttributeRange(lt="2026-01-15")},
        None,
    ]
    for query in queries:
        times = []
        for _ in range(20):
            began = time.perf_counter()
            found = await client.list(search_attributes=query, limit=100)
            times.append(time.perf_counter() - began)
        median = statistics.median(times) * 1000
        print(f"list {query or 'unfiltered'}: {len(found)} runs, {median:.2f} ms")
    for query in queries:  # (Client.count: every matching run, not a page)
        times = []
        for _ in range(5):
            began = time.perf_counter()
            counted = await client.count(search_attributes=query)
            times.append(time.perf_counter() - began)
        median = statistics.median(times) * 1000
        print(f"count {query or 'unfiltered'}: {counted.count} runs, {median:.2f} ms")
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a fresh database")
    parser.add_argument("--runs", type=int, default=100_000)
    options = parser.parse_args()
    asyncio.run(main(options.url, options.runs))
