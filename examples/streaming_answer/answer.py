"""A question answered by a model whose tokens stream to the asker: a worker
module (``perdure worker examples.streaming_answer.answer``).

The workflow writes its progress to the run's stream ``progress``
(``workflow.write_stream``: recorded with its turns, so each value is there
once, however often the code is replayed) and asks the model, an activity
that writes each token to the stream ``answer`` as the model produces it
(``activity.write_stream``). A client reads both as they grow
(``handle.read_stream``). If the model call's worker dies mid-answer, another
worker calls the model again and its tokens are written again (an activity
runs at least once); each value says which attempt wrote it (its ``source``
in ``handle.stream_page``), so an app can start the answer over when the
attempt changes. The answer the workflow returns is the attempt that
completed.

``$ANSWER_DIR/model-calls.jsonl`` counts what really ran: a line when a model
call starts and one when it has answered.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from perdure import RetryPolicy, activity, workflow

from .model import get_model


def log_call(event: str, question: str, tokens: int = 0) -> None:
    folder = Path(os.environ.get("ANSWER_DIR", "answer-world"))
    folder.mkdir(parents=True, exist_ok=True)
    info = activity.info()
    line = {"event": event, "question": question, "tokens": tokens, "pid": os.getpid(),
            "attempt": info.attempt}  # fmt: skip
    with (folder / "model-calls.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


# Model calls fail for boring reasons (rate limits, timeouts): retry them.
@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), max_attempts=5),
    start_to_close_timeout=timedelta(minutes=2),
)
async def ask_model(question: str) -> str:
    """The model's answer; each token is written to the stream ``answer`` as
    it comes. (Called outside a worker, it just returns the answer.)"""
    if activity.in_activity():
        log_call("started", question)
    tokens = []
    async for token in get_model().stream(question):
        activity.write_stream("answer", token)  # (returns at once; written in order)
        tokens.append(token)
    if activity.in_activity():
        log_call("answered", question, len(tokens))
    return "".join(tokens)


@workflow.defn
async def answer_question(question: str) -> str:
    """Ask the model; return its answer. Clients read the tokens on the
    stream ``answer`` and the steps on ``progress``."""
    workflow.write_stream("progress", "question received")
    workflow.write_stream("progress", "asking the model")
    answer = await ask_model(question)
    # Every token the call wrote is in the stream before its result is
    # recorded: closing the stream now cuts none off. Readers stop here.
    workflow.close_stream("answer")
    workflow.write_stream("progress", f"answered in {len(answer.split())} words")
    workflow.close_stream("progress")
    return answer
