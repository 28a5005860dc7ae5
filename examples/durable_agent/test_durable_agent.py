"""The durable agent: the approval branches on virtual time, and a real worker
SIGKILLed mid-conversation after which no model call is repeated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import perdure
from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .agent import APPROVAL_TIMEOUT, call_model, run_tool, support_agent
from .model import Message, ScriptedModel

REQUEST = "My order o-7 arrived damaged, refund please"


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkflowEnvironment]:
    monkeypatch.setenv("AGENT_DIR", str(tmp_path))
    monkeypatch.delenv("AGENT_TOOL_SECONDS", raising=False)
    monkeypatch.delenv("AGENT_MODEL", raising=False)
    async with WorkflowEnvironment([support_agent], [call_model, run_tool]) as env:
        yield env


async def waiting_for_approval(handle: perdure.WorkflowHandle[object]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await handle.describe()).waiting_signals != ["approval"]:
        assert loop.time() < deadline, await handle.describe()
        await asyncio.sleep(0.01)


async def test_approved_refund(env: WorkflowEnvironment, tmp_path: Path) -> None:
    handle = await env.start(support_agent, REQUEST, id="agent-ok")
    await waiting_for_approval(handle)
    assert await handle.state("approval_request") == {
        "tool": "issue_refund",
        "arguments": {"order_id": "o-7", "cents": 4599},
    }
    await handle.signal("approval", {"approved": True, "by": "ops"})
    result = await handle.result()
    assert result.answer.startswith("Done: order o-7 is refunded (45.99 EUR, refund re_")
    assert result.model_calls == 3 and result.tool_calls == ["lookup_order", "issue_refund"]
    assert len(lines(tmp_path / "model-calls.jsonl")) == 3


async def test_denied_refund_never_runs_the_tool(env: WorkflowEnvironment, tmp_path: Path) -> None:
    handle = await env.start(support_agent, REQUEST, id="agent-no")
    await waiting_for_approval(handle)
    await handle.signal("approval", {"approved": False, "by": "ops"})
    result = await handle.result()
    assert result.answer == "I could not refund order o-7: denied by a human."
    assert result.tool_calls == ["lookup_order"]
    assert [t["tool"] for t in lines(tmp_path / "tool-calls.jsonl")] == ["lookup_order"]


async def test_no_answer_in_a_day_counts_as_denied(env: WorkflowEnvironment) -> None:
    start = env.now()
    result = await env.execute(support_agent, REQUEST, id="agent-late")
    assert result.tool_calls == ["lookup_order"] and "denied" in result.answer
    assert env.now() - start >= APPROVAL_TIMEOUT  # a virtual day


async def test_the_scripted_model_is_a_pure_function_of_the_conversation() -> None:
    model = ScriptedModel()
    conversation = [Message("user", "order o-9 is fine?")]
    first = await model.complete(conversation, [])
    assert first == await model.complete(conversation, [])
    assert first.tool_calls[0].arguments == {"order_id": "o-9"}


@pytest.mark.slow
def test_sigkill_mid_conversation_repeats_no_model_call(tmp_path: Path) -> None:
    """``python -m examples.durable_agent``: worker #1 is SIGKILLed while the
    lookup tool runs (after model call 1 was recorded); worker #2 finishes. Each
    model call ran once — the first in worker #1, the rest in worker #2 — and only
    the interrupted tool call ran twice."""
    printed = run_story("durable_agent", tmp_path, clear_env=("AGENT_",))
    assert "kill -9 worker #1" in printed and "no model call was repeated." in printed

    calls = lines(tmp_path / "model-calls.jsonl")
    tools = lines(tmp_path / "tool-calls.jsonl")
    first_pid, second_pid = tools[0]["pid"], tools[-1]["pid"]
    assert first_pid != second_pid
    assert [(c["pid"], c["attempt"]) for c in calls] == [
        (first_pid, 1),
        (second_pid, 1),
        (second_pid, 1),
    ]
    assert len({c["key"] for c in calls}) == 3
    assert [(t["tool"], t["pid"]) for t in tools] == [
        ("lookup_order", first_pid),  # cut short by the SIGKILL
        ("lookup_order", second_pid),  # the one step in flight, run again
        ("issue_refund", second_pid),
    ]
    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'agent.db'}") as client:
        history = client.get_handle("agent-1").history()
    scheduled = {e["ref"]: e["name"] for e in history if e["type"] == "ActivityScheduled"}
    completed = [scheduled[e["ref"]] for e in history if e["type"] == "ActivityCompleted"]
    assert completed.count("call_model") == 3
