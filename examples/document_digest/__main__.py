"""``python -m examples.document_digest``: twelve documents summarised by a
model that allows two requests at once and five a second.

The program sets the ``model`` task queue's limits once, then runs a worker
for the workflow and two workers for the model's queue (each with a
connection of its own, as two machines would have). The digest asks for
all the summaries at once; the limits hold both model workers together to
the provider's terms, so the provider refuses nothing. The first summary is
shown as soon as the workflow publishes it (``handle.wait_state``).

``--no-limits`` runs the same without the queue's limits: the provider
refuses calls (429), which the activity's retries then make good, a call
at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import perdure

from .digest import MODEL_LIMITS, MODEL_QUEUE, digest, summarise

DOCUMENTS = {
    f"doc-{i:02}": f"Report {i} on the quarterly figures of region {i % 4} and what they mean"
    for i in range(1, 13)
}


async def story(folder: Path, limits: bool) -> int:
    os.environ["DIGEST_DIR"] = str(folder)
    url = f"sqlite:///{folder / 'digest.db'}"
    client = await perdure.Client.connect(url)
    if limits:
        set_to = await client.set_queue_limits(MODEL_QUEUE, **MODEL_LIMITS)  # type: ignore[arg-type]
        print(f"task queue {MODEL_QUEUE!r}: {set_to}, across every worker")
    else:
        await client.remove_queue_limits(MODEL_QUEUE)
        print(f"task queue {MODEL_QUEUE!r}: no limits")
    model_clients = [await perdure.Client.connect(url) for _ in range(2)]
    started = time.monotonic()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                perdure.Worker(client, workflows=[digest], poll_interval=0.05)
            )
            for model_client in model_clients:
                await stack.enter_async_context(
                    perdure.Worker(
                        model_client,
                        activities=[summarise],
                        task_queue=MODEL_QUEUE,
                        poll_interval=0.05,
                    )
                )
            handle = await client.start(digest, DOCUMENTS, id=f"digest-{int(time.time())}")
            first = await handle.wait_state("first", timeout=60)
            print(f"first summary, while the others are asked for: {first}")
            summaries = await handle.result(timeout=120)
    finally:
        for model_client in model_clients:
            await model_client.close()
        await client.close()
    took = time.monotonic() - started
    print(f"{len(summaries)} summaries in {took:.1f}s; the last: {summaries[-1]}")
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    answered = Counter(c["status"] for c in calls)
    most = max(c.get("in_flight", 0) for c in calls)
    print(
        f"the model answered {answered[200]} calls, at most {most} at once, "
        f"and refused {answered[429]} (429)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the model's books go")
    parser.add_argument(
        "--no-limits", action="store_true", help="run without the model queue's limits"
    )
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-digest-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder, limits=not args.no_limits))


if __name__ == "__main__":
    sys.exit(main())
