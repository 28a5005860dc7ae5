"""The model side of the example: the ``StreamingModel`` interface and a scripted
fake so the example runs offline and deterministically.

To use a real model, write a class with the same ``stream`` method (a question
in, the answer's text pieces out as the model produces them: the shape of the
OpenAI and Anthropic streaming APIs) and return it from :func:`get_model`.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Protocol


class StreamingModel(Protocol):
    def stream(self, question: str) -> AsyncIterator[str]:
        """The answer's tokens, as the model produces them."""
        ...


ANSWERS = {
    "sky": "Sunlight is made of every colour. The air's molecules scatter the short"
    " waves of blue light far more than the long waves of red, so blue light reaches"
    " your eyes from every part of the sky, and the sky looks blue.",
    "sunset": "At sunset the light crosses much more air to reach you: most of the"
    " blue is scattered away on the way, and the reds and oranges are what is left.",
}


def tokens_of(text: str) -> list[str]:
    """A text as the scripted model sends it: a word and its trailing space at a
    time (real models send smaller pieces; joined, they are the text)."""
    return re.findall(r"\S+\s*", text)


class ScriptedModel:
    """A fake model that knows two answers. The same question gets the same
    tokens, one every ``seconds`` (like a real model: a window to crash in)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    async def stream(self, question: str) -> AsyncIterator[str]:
        topic = next((word for word in ANSWERS if word in question.lower()), None)
        text = ANSWERS[topic] if topic else "I am a scripted model: ask me why the sky is blue."
        for token in tokens_of(text):
            await asyncio.sleep(self.seconds)
            yield token


def get_model() -> StreamingModel:
    """The model the worker uses: ``$ANSWER_MODEL`` picks it (only ``scripted``
    here); ``$ANSWER_TOKEN_SECONDS`` is how long the scripted one takes a token."""
    name = os.environ.get("ANSWER_MODEL", "scripted")
    if name == "scripted":
        return ScriptedModel(float(os.environ.get("ANSWER_TOKEN_SECONDS", "0")))
    raise ValueError(f"unknown $ANSWER_MODEL {name!r}: add your adapter in get_model()")
