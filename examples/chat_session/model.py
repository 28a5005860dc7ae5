"""The model side of the chat: messages, the ``ChatModel`` interface, and a
scripted fake travel assistant so the example runs offline and deterministically.

To use a real model, write a class with the same ``complete`` method (a list of
role/content messages in, the assistant's text out: the shape of the OpenAI and
Anthropic chat APIs) and return it from :func:`get_model`.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import Protocol

SUMMARIZE = "Summarize our conversation in one sentence."


@dataclass
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


class ChatModel(Protocol):
    async def complete(self, messages: list[Message]) -> str:
        """Return the assistant's answer to the last message."""
        ...


# What the scripted assistant can talk about: a word in the message, the topic
# it puts in a summary (which contains the word, so summaries keep their topics).
TOPICS = {"pack": "what to pack", "eat": "where to eat", "plan": "a plan for the day"}


class ScriptedModel:
    """A fake travel assistant. It reads only the conversation (the earlier
    summary included), so the same conversation gets the same answer, and it
    takes ``seconds`` to answer, like a real model (a window to crash in)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    async def complete(self, messages: list[Message]) -> str:
        await asyncio.sleep(self.seconds)
        told = [m for m in messages if m.role != "assistant"]  # what the user said, summaries
        name = _last(r"\b(?:I'm|I am|user is) ([A-Z]\w+)", told) or "friend"
        city = _last(r"\b(?:in|to) ([A-Z]\w+)", told) or "your city"
        asked = messages[-1].content
        if asked == SUMMARIZE:
            talked = ", ".join(t for word, t in TOPICS.items() if _last(rf"\b({word})\b", told))
            return f"The user is {name}, going to {city}; we talked about {talked or 'nothing'}."
        if re.search(r"\bI'm|\bI am", asked):
            return f"Nice to meet you, {name}! {city} is a fine choice. What shall we plan first?"
        if "name" in asked:
            user_said = [m for m in messages if m.role == "user"]
            source = "" if _last(r"\b(I'm|I am)\b", user_said) else ", says my summary of our chat"
            return f"You are {name}{source}."
        for word in TOPICS:
            if re.search(rf"\b{word}\b", asked):
                return REPLIES[word].format(name=name, city=city)
        return f"I am a scripted model, {name}: ask me what to pack, where to eat, or for a plan."


REPLIES = {
    "pack": "For {city}: comfortable shoes (it is all hills), a light jacket, and sunscreen.",
    "eat": "In {city}, ask for the tasca the locals queue at, and keep room for dessert.",
    "plan": "Saturday in {city}, {name}: the old town on foot in the morning, a long "
    "lunch, a museum after it, and a viewpoint at sunset.",
}


def _last(pattern: str, messages: list[Message]) -> str | None:
    """The first group of the last match of ``pattern`` in ``messages``."""
    found = [m[1] for message in messages for m in re.finditer(pattern, message.content)]
    return found[-1] if found else None


def get_model() -> ChatModel:
    """The model the worker uses: ``$CHAT_MODEL`` picks it (only ``scripted``
    here); ``$CHAT_MODEL_SECONDS`` is how long the scripted one takes."""
    name = os.environ.get("CHAT_MODEL", "scripted")
    if name == "scripted":
        return ScriptedModel(float(os.environ.get("CHAT_MODEL_SECONDS", "0")))
    raise ValueError(f"unknown $CHAT_MODEL {name!r}: add your adapter in get_model()")
