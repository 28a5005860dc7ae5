"""A chat session as a workflow: a worker module
(``perdure worker examples.chat_session.chat``).

Each user message is an update, ``await handle.update("message", text)``, and
its answer is the assistant's reply. The workflow keeps the conversation and
calls the model as an activity: once a reply is recorded it is never paid for
again (not after a crash, not for a caller's retry with the same update id). A
message it cannot take is rejected, saying why. After ``messages_per_run``
replies it asks the model for a one-sentence summary and continues as new with
it, so its history stays bounded; a message sent meanwhile is answered by the
next run. (A retry finds its reply in the run that answered it, or in the run
after it; one that comes later still is taken as a new message.)

``$CHAT_DIR/model-calls.jsonl`` counts what really ran: a line when a model
call starts and one when it answers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

from perdure import RetryPolicy, activity, workflow

from .model import SUMMARIZE, Message, get_model

SYSTEM_PROMPT = "You are a friendly travel assistant. Keep your answers short."
MAX_CHARS = 1000
IDLE_TIMEOUT = timedelta(days=1)  # a day without a message ends the session


class Reply(TypedDict):
    text: str
    number: int  # the message's number in the session, counted across runs
    run: int  # the run that answered: 1, then 2 after the first continue-as-new, ...


@dataclass
class Carried:
    """What a run hands to the next when it continues as new."""

    summary: str = ""
    answered: int = 0  # messages answered by the runs before
    run: int = 1


def world() -> Path:
    folder = Path(os.environ.get("CHAT_DIR", "chat-world"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_call(event: str, messages: list[Message]) -> None:
    info = activity.info()
    line = {"event": event, "said": messages[-1].content[:60], "pid": os.getpid(),
            "attempt": info.attempt, "key": info.idempotency_key}  # fmt: skip
    with (world() / "model-calls.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


# Model calls fail for boring reasons (rate limits, timeouts): retry them.
@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), max_attempts=5),
    start_to_close_timeout=timedelta(minutes=2),
)
async def call_model(messages: list[Message]) -> str:
    log_call("started", messages)
    answer = await get_model().complete(messages)
    log_call("answered", messages)
    return answer


def problem_with(text: Any) -> str | None:
    """Why a message cannot be taken, or None."""
    if not isinstance(text, str):
        return f"a message is text, not {type(text).__name__}"
    if not text.strip():
        return "the message is empty: write something"
    if len(text) > MAX_CHARS:
        return f"a message has at most {MAX_CHARS:,} characters, this one {len(text):,}"
    return None


@workflow.defn
async def chat_session(messages_per_run: int = 20, carried: Carried | None = None) -> int:
    """Answer ``message`` updates until a day passes without one; return how
    many were answered."""
    carried = carried or Carried()
    conversation = [Message("system", SYSTEM_PROMPT)]
    if carried.summary:
        conversation.append(Message("system", f"Earlier in this chat: {carried.summary}"))
        workflow.set_state("summary", carried.summary)  # (handle.state("summary"))
    answered = carried.answered
    while True:
        try:
            request = await workflow.wait_update("message", timeout=IDLE_TIMEOUT)
        except TimeoutError:
            return answered
        problem = problem_with(request.payload)
        if problem is not None:
            request.reject(problem)
            continue
        conversation.append(Message("user", request.payload))
        answer = await call_model(conversation)
        conversation.append(Message("assistant", answer))
        answered += 1
        request.reply(Reply(text=answer, number=answered, run=carried.run))
        if answered - carried.answered >= messages_per_run:
            # Requests not yet taken stay queued: continue_as_new hands them on.
            summary = await call_model([*conversation, Message("user", SUMMARIZE)])
            workflow.continue_as_new(messages_per_run, Carried(summary, answered, carried.run + 1))
