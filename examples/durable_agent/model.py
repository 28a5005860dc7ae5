"""The model side of the agent: chat messages, the ``ChatModel`` interface, and a
scripted fake model so the example runs offline and deterministically.

To use a real model, write a class with the same ``complete`` method and return
it from :func:`get_model`. The messages are shaped like the OpenAI and Anthropic
chat APIs (a role, text content, tool calls with JSON arguments, tool results
that name the call they answer), so an adapter is a translation, e.g.::

    class OpenAIModel:
        def __init__(self, model: str = "gpt-4o-mini") -> None:
            from openai import AsyncOpenAI
            self.client, self.model = AsyncOpenAI(), model

        async def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Message:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=[m.to_openai() for m in messages],
                tools=[{"type": "function", "function": t.__dict__} for t in tools],
            )
            return Message.from_openai(response.choices[0].message)

(``to_openai``/``from_openai`` are yours to write: a few lines each.) The model
call is an activity, so its answer is recorded: a crash after it returns never
pays for the same completion twice, and replay never calls the model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Message:
    role: str  # "system", "user", "assistant" or "tool"
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for role "tool": the call this answers


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON Schema, as the chat APIs take it


class ChatModel(Protocol):
    async def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Message:
        """Return the assistant's next message: text, or tool calls to run."""
        ...


class ScriptedModel:
    """A fake support-desk model: look the order up, refund it, then answer.

    It reads only the conversation, so the same conversation gets the same
    reply: the tests can count on it, and so can you when reading the output.
    """

    async def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Message:
        results = [m for m in messages if m.role == "tool"]
        asked = next(m.content for m in messages if m.role == "user")
        order_id = re.search(r"order[- ](\w[\w-]*)", asked) or re.search(r"(\S+)$", asked)
        order = order_id.group(1) if order_id else "unknown"
        if not results:
            call = ToolCall("call-1", "lookup_order", {"order_id": order})
            return Message("assistant", "Let me look that order up.", [call])
        last = results[-1]
        if last.tool_call_id == "call-1":
            found = json.loads(last.content)
            if found.get("status") != "delivered damaged":
                return Message("assistant", f"Order {order} looks fine to me: {found['status']}.")
            call = ToolCall("call-2", "issue_refund", {"order_id": order, "cents": found["cents"]})
            return Message("assistant", "The parcel arrived damaged; I will refund it.", [call])
        if last.content.startswith("denied"):
            return Message("assistant", f"I could not refund order {order}: {last.content}.")
        refund = json.loads(last.content)
        return Message(
            "assistant",
            f"Done: order {order} is refunded ({refund['cents'] / 100:.2f} EUR, "
            f"refund {refund['refund_id']}). Sorry about the parcel!",
        )


def get_model() -> ChatModel:
    """The model the worker uses: ``$AGENT_MODEL`` picks it (only ``scripted`` here)."""
    name = os.environ.get("AGENT_MODEL", "scripted")
    if name == "scripted":
        return ScriptedModel()
    raise ValueError(f"unknown $AGENT_MODEL {name!r}: add your adapter in get_model()")
