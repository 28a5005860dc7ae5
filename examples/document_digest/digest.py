"""The worker module: a digest of documents, each summarised by a model
that allows two requests at once and five a second.

``summarise`` runs on the task queue ``model``, whose limits (set once:
see ``MODEL_LIMITS`` and ``__main__.py``) hold every worker of that queue
to the provider's terms together. The workflow asks for the first
summary and publishes it as soon as it is back (``set_state``), so that
whoever started the digest can show something early
(``handle.wait_state``); then it asks for all the others at once.

The "model" keeps its books in ``$DIGEST_DIR``: each call appends a line to
``calls.jsonl``, and a third call while two are in flight is refused with
a 429, as a provider would.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path

from perdure import RetryPolicy, activity, workflow

MODEL_QUEUE = "model"
# The provider's terms: at most two requests in flight, five a second.
MODEL_LIMITS = {"max_running": 2, "max_starts": 5, "per": timedelta(seconds=1)}
MODEL_SECONDS = 0.05  # how long the model thinks

_in_flight = {"now": 0}


class TooManyRequests(Exception):
    """The provider's 429: retried by the activity's policy."""


def _books() -> Path:
    return Path(os.environ["DIGEST_DIR"]) / "calls.jsonl"


def _note(record: dict[str, object]) -> None:
    with open(_books(), "a", encoding="utf-8") as books:
        books.write(json.dumps(record) + "\n")


@activity.defn(
    task_queue=MODEL_QUEUE,
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=200), max_attempts=20),
)
async def summarise(title: str, text: str) -> str:
    """One model call (a fake one: the text's first words, in capitals)."""
    if _in_flight["now"] >= MODEL_LIMITS["max_running"]:
        _note({"title": title, "status": 429, "at": time.time()})
        raise TooManyRequests(f"429: {_in_flight['now']} requests already in flight")
    _in_flight["now"] += 1
    try:
        _note({"title": title, "status": 200, "in_flight": _in_flight["now"], "at": time.time()})
        await asyncio.sleep(MODEL_SECONDS)
        return f"{title}: {' '.join(text.split()[:4]).upper()}…"
    finally:
        _in_flight["now"] -= 1


@workflow.defn
async def digest(documents: dict[str, str]) -> list[str]:
    """Every document summarised, in the order given. The first summary is
    published as soon as it is back (``first``), then the others are asked
    for all at once."""
    titles = list(documents)
    first = await summarise(titles[0], documents[titles[0]])
    workflow.set_state("first", first)
    rest = await asyncio.gather(*(summarise(t, documents[t]) for t in titles[1:]))
    workflow.set_state("done", 1 + len(rest))
    return [first, *rest]
