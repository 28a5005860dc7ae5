"""The agent loop as a workflow: a worker module
(``perdure worker examples.durable_agent.agent``).

Every model call and every tool call is an activity, so each is recorded in the
history once it returns. After a crash the new worker replays the history: the
recorded model answers are reused (no tokens paid twice, no different answer the
second time), and only the step that was in flight runs again. A risky tool
(``issue_refund``) waits for a human's ``approval`` signal first.

Side files in ``$AGENT_DIR`` count what really ran: ``model-calls.jsonl`` and
``tool-calls.jsonl``, one line per execution. ``$AGENT_TOOL_SECONDS`` makes the
order lookup slow (a window to crash in).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from perdure import ApplicationError, RetryPolicy, activity, workflow

from .model import Message, ToolSpec, get_model

SYSTEM_PROMPT = "You are a support agent. Use the tools; refunds need a human's approval."
RISKY_TOOLS = {"issue_refund"}
APPROVAL_TIMEOUT = timedelta(hours=24)

TOOLS = [
    ToolSpec(
        "lookup_order",
        "Find an order and its delivery status.",
        {"type": "object", "properties": {"order_id": {"type": "string"}}},
    ),
    ToolSpec(
        "issue_refund",
        "Refund an order to the customer's card.",
        {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "cents": {"type": "integer"}},
        },
    ),
]


@dataclass
class AgentResult:
    answer: str
    model_calls: int
    tool_calls: list[str]


def world() -> Path:
    folder = Path(os.environ.get("AGENT_DIR", "agent-world"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_line(file: str, **fields: Any) -> None:
    info = activity.info()
    fields.update(attempt=info.attempt, key=info.idempotency_key, pid=os.getpid())
    with (world() / file).open("a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


# Model calls fail for boring reasons (rate limits, timeouts): retry them.
MODEL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), max_attempts=5)


@activity.defn(retry=MODEL_RETRY, start_to_close_timeout=timedelta(minutes=2))
async def call_model(messages: list[Message]) -> Message:
    log_line("model-calls.jsonl", messages=len(messages))
    return await get_model().complete(messages, TOOLS)


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(seconds=1), max_attempts=5))
async def run_tool(name: str, arguments: dict[str, Any]) -> str:
    """Run one tool; its result (JSON text) goes back to the model."""
    log_line("tool-calls.jsonl", tool=name)
    if name == "lookup_order":
        await asyncio.sleep(float(os.environ.get("AGENT_TOOL_SECONDS", "0")))
        return json.dumps({"order_id": arguments["order_id"], "status": "delivered damaged",
                           "cents": 4599})  # fmt: skip
    if name == "issue_refund":
        # The key makes a repeated refund (after a crash) a no-op at the bank.
        key = activity.info().idempotency_key
        refund_id = "re_" + hashlib.sha256(key.encode()).hexdigest()[:10]
        return json.dumps({"refund_id": refund_id, "cents": arguments["cents"]})
    raise ApplicationError(f"unknown tool {name!r}", non_retryable=True)


@workflow.defn
async def support_agent(request: str, max_steps: int = 8) -> AgentResult:
    messages = [Message("system", SYSTEM_PROMPT), Message("user", request)]
    tools_run: list[str] = []
    for step in range(1, max_steps + 1):
        workflow.set_state("status", f"thinking (model call {step})")
        reply = await call_model(messages)
        messages.append(reply)
        workflow.set_state("transcript", [f"{m.role}: {m.content}" for m in messages[1:]])
        if not reply.tool_calls:
            workflow.set_state("status", "answered")
            return AgentResult(reply.content, step, tools_run)
        for call in reply.tool_calls:
            if call.name in RISKY_TOOLS and not await approved(call.name, call.arguments):
                messages.append(Message("tool", "denied by a human", tool_call_id=call.id))
                continue
            workflow.set_state("status", f"running {call.name}")
            result = await run_tool(call.name, call.arguments)
            tools_run.append(call.name)
            messages.append(Message("tool", result, tool_call_id=call.id))
    raise ApplicationError(f"no answer after {max_steps} model calls", non_retryable=True)


async def approved(tool: str, arguments: dict[str, Any]) -> bool:
    """Ask a human (``approval`` signal: ``{"approved": true, "by": "..."}``).
    Waiting costs nothing: the run is only rows until the answer comes."""
    workflow.set_state("status", "waiting for approval")
    workflow.set_state("approval_request", {"tool": tool, "arguments": arguments})
    try:
        decision = await workflow.wait_signal("approval", timeout=APPROVAL_TIMEOUT)
    except TimeoutError:
        return False
    workflow.set_state("approval_request", None)
    return bool(decision and decision.get("approved"))
