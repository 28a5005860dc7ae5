"""The worker module: one model, two kinds of work. A customer's question
(``answer``) and the nightly re-indexing of documents (``reindex``) each
make one call of the model (``model_call``), on the task queue ``model``,
which the GPU serves one call at a time (its limits: ``MODEL_LIMITS``).

Nothing in the code says what goes first: the runs' **priorities** do,
given where they are started (``client.start(..., priority=)``) and changed
by an operator while they wait (``handle.set_priority``). The model call
inherits its run's priority, so it is queued at it.

The "model" keeps its books in ``$LANES_DIR/served.jsonl``: one line per
call, in the order it served them, with the priority the call had.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from perdure import activity, workflow

MODEL_QUEUE = "model"
MODEL_LIMITS = {"max_running": 1}  # one GPU: one call at a time, across every worker
MODEL_SECONDS = 0.02  # how long a call takes


def served_path() -> Path:
    return Path(os.environ["LANES_DIR"]) / "served.jsonl"


@activity.defn(task_queue=MODEL_QUEUE)
async def model_call(kind: str, subject: str) -> str:
    """One call of the model (a fake one), noted in its books."""
    await asyncio.sleep(MODEL_SECONDS)
    line = {"kind": kind, "subject": subject, "priority": activity.info().priority}
    with open(served_path(), "a", encoding="utf-8") as books:
        books.write(json.dumps(line) + "\n")
    return f"{kind} of {subject}: done"


@workflow.defn
async def answer(question: str) -> str:
    """A customer waits for this one."""
    return await model_call("answer", question)


@workflow.defn
async def reindex(document: str) -> str:
    """Nobody waits for this one: it may run whenever the model is free."""
    return await model_call("reindex", document)
