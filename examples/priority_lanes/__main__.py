"""``python -m examples.priority_lanes``: a customer's question goes before
a nightly batch on a model that serves one call at a time.

The story: twelve documents are queued for re-indexing at priority 5 (the
batch); a customer asks a question at priority 1; an operator sees that
one document of the batch is wanted soon and moves its run to priority 2
(``set_priority``). Only then does the model's worker start, one call at
a time: it serves the question first, then the moved document, then the
rest of the batch in the order it came.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import perdure

from .lanes import MODEL_LIMITS, MODEL_QUEUE, answer, model_call, reindex

BATCH = [f"doc-{i:02}" for i in range(1, 13)]


async def _until_waiting(client: perdure.Client, count: int) -> perdure.queues.QueueInfo:
    deadline = time.monotonic() + 30
    while (info := await client.describe_queue(MODEL_QUEUE)).waiting < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} calls never waited on {MODEL_QUEUE!r}: {info}")
        await asyncio.sleep(0.02)
    return info


async def story(folder: Path) -> int:
    os.environ["LANES_DIR"] = str(folder)
    client = await perdure.Client.connect(f"sqlite:///{folder / 'lanes.db'}")
    await client.set_queue_limits(MODEL_QUEUE, **MODEL_LIMITS)  # type: ignore[arg-type]
    async with client, perdure.Worker(client, workflows=[answer, reindex], poll_interval=0.05):
        batch = [await client.start(reindex, doc, id=f"reindex-{doc}", priority=5) for doc in BATCH]
        await _until_waiting(client, len(BATCH))
        print(f"the nightly batch: {len(BATCH)} documents to re-index, at priority 5")
        question = await client.start(answer, "where is my order?", id="question-1", priority=1)
        print("a customer asks a question, at priority 1")
        wanted = batch[6]
        await _until_waiting(client, len(BATCH) + 1)
        await wanted.set_priority(2)
        print(f"an operator moves {wanted.id} to priority 2 (set_priority)")
        info = await client.describe_queue(MODEL_QUEUE)
        lanes = ", ".join(f"priority {p}: {n}" for p, n in sorted(info.waiting_by_priority.items()))
        print(f"waiting on {MODEL_QUEUE!r}: {info.waiting} ({lanes})")
        print("the model's worker starts (one call at a time)")
        async with perdure.Worker(
            client, activities=[model_call], task_queue=MODEL_QUEUE, poll_interval=0.05
        ):
            print(f"the customer's answer: {await question.result(timeout=60)}")
            for handle in batch:
                await handle.result(timeout=60)
    served = [json.loads(line) for line in (folder / "served.jsonl").read_text().splitlines()]
    order = [f"{s['subject']} (p{s['priority']})" for s in served]
    print("the model served, in order: " + ", ".join(order))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the model's books go")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-lanes-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder))


if __name__ == "__main__":
    sys.exit(main())
