"""The chat session: replies, rejections, retries and the continue-as-new on
the time-skipping environment, and a real worker SIGKILLed while the model
thinks, after which a retry with the same update id gets the one reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .chat import IDLE_TIMEOUT, call_model, chat_session

HELLO = "Hi! I'm Ada, planning a weekend in Lisbon."


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def started(folder: Path) -> list[str]:
    """What the model was asked, one entry per call that started."""
    return [c["said"] for c in lines(folder / "model-calls.jsonl") if c["event"] == "started"]


def requests(history: list[dict[str, Any]]) -> list[str]:
    """The update ids of the messages a run's history holds, in order."""
    return [
        e["payload"]["update_id"]
        for e in history
        if e["type"] == "SignalReceived" and e["name"] == "perdure.update:message"
    ]


def replied(history: list[dict[str, Any]]) -> list[str]:
    """The update ids of the messages a run answered (or rejected), in order."""
    return [e["update_id"] for e in history if e["type"] == "UpdateReplied"]


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkflowEnvironment]:
    monkeypatch.setenv("CHAT_DIR", str(tmp_path))
    monkeypatch.delenv("CHAT_MODEL_SECONDS", raising=False)
    monkeypatch.delenv("CHAT_MODEL", raising=False)
    async with WorkflowEnvironment([chat_session], [call_model]) as env:
        yield env


async def test_the_first_message_starts_the_session_and_each_gets_its_reply(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    first = await env.client.update_with_start(
        chat_session, id="chat-1", update="message", update_payload=HELLO
    )
    session = env.get_handle("chat-1")
    second = await session.update("message", "What should I pack?")
    assert first == {
        "text": "Nice to meet you, Ada! Lisbon is a fine choice. What shall we plan first?",
        "number": 1,
        "run": 1,
    }
    assert second["text"].startswith("For Lisbon: comfortable shoes")
    assert second["number"] == 2
    assert started(tmp_path) == [HELLO, "What should I pack?"]


async def test_a_message_it_cannot_take_is_rejected_saying_why(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    await env.client.update_with_start(
        chat_session, id="chat-2", update="message", update_payload=HELLO
    )
    session = env.get_handle("chat-2")
    for message, why in [
        ("  ", "the message is empty: write something"),
        ("x" * 1001, "a message has at most 1,000 characters, this one 1,001"),
        (42, "a message is text, not int"),
    ]:
        with pytest.raises(perdure.UpdateRejectedError, match=why):
            await session.update("message", message)
    # The model was not asked, and the session goes on.
    assert (await session.update("message", "Where should I eat?"))["number"] == 2
    assert started(tmp_path) == [HELLO, "Where should I eat?"]


async def test_a_retry_with_the_same_update_id_gets_the_first_reply(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    await env.client.update_with_start(
        chat_session, id="chat-3", update="message", update_payload=HELLO
    )
    session = env.get_handle("chat-3")
    first = await session.update("message", "Make me a plan.", update_id="m-2")
    again = await session.update("message", "Make me a plan.", update_id="m-2")
    assert first == again and first["number"] == 2
    assert started(tmp_path) == [HELLO, "Make me a plan."]  # paid for once


async def test_after_n_messages_it_continues_as_new_with_a_summary(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    await env.client.update_with_start(
        chat_session, 2, id="chat-4", update="message", update_payload=HELLO
    )
    session = env.get_handle("chat-4")
    await session.update("message", "What should I pack?")
    reply = await session.update("message", "What's my name again?")

    # The new run knows Ada only from the summary the model wrote.
    assert reply == {"text": "You are Ada, says my summary of our chat.", "number": 3, "run": 2}
    summary = "The user is Ada, going to Lisbon; we talked about what to pack."
    assert await session.state("summary") == summary
    assert len(await env.client.list(workflow="chat_session")) == 2
    run = await session.describe()
    assert run.input["args"] == [2, {"summary": summary, "answered": 2, "run": 2}]
    assert started(tmp_path) == [
        HELLO,
        "What should I pack?",
        "Summarize our conversation in one sentence.",
        "What's my name again?",
    ]


async def test_a_message_in_flight_at_the_continue_as_new_is_answered_by_the_next_run(
    env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_MODEL_SECONDS", "0.2")  # (the worker runs in this process)
    first = asyncio.ensure_future(
        env.client.update_with_start(
            chat_session, 1, id="chat-5", update="message", update_payload=HELLO
        )
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not started(tmp_path):
        assert loop.time() < deadline, "the model was never called"
        await asyncio.sleep(0.01)
    session = env.get_handle("chat-5")
    late = asyncio.ensure_future(session.update("message", "What's my name?", update_id="late"))

    assert (await first)["run"] == 1
    assert await late == {
        "text": "You are Ada, says my summary of our chat.",
        "number": 2,
        "run": 2,
    }
    # Run 1 had the request queued, unanswered, when it continued as new.
    runs = await env.client.list(workflow="chat_session")
    histories = [await env.get_handle("chat-5", r.run_id).history() for r in reversed(runs)]
    hello = requests(histories[0])[0]
    assert [requests(h) for h in histories] == [[hello, "late"], ["late"]]
    assert [replied(h) for h in histories] == [[hello], ["late"]]


async def test_a_day_of_silence_ends_the_session(env: WorkflowEnvironment) -> None:
    began = env.now()
    await env.client.update_with_start(
        chat_session, id="chat-6", update="message", update_payload=HELLO
    )
    assert await env.get_handle("chat-6").result() == 1  # messages answered
    assert env.now() - began >= IDLE_TIMEOUT  # a virtual day


@pytest.mark.slow
def test_sigkill_while_the_model_thinks_then_a_retry_gets_the_one_reply(tmp_path: Path) -> None:
    """``python -m examples.chat_session``: worker #1 is SIGKILLed once the
    model call for the plan (update ada-6) has started; the app's call times
    out, and its retry with the same update id, served by worker #2, gets the
    one reply. Every other model call ran once; that one at most once per worker."""
    printed = run_story("chat_session", tmp_path, clear_env=("CHAT_",))
    assert "kill -9 worker #1" in printed and "No other model call was repeated." in printed
    assert "rejected update 'message': a message has at most 1,000 characters" in printed
    assert "assistant (message 4, run 2): You are Ada, says my summary" in printed
    assert "assistant (message 5, run 2): Saturday in Lisbon, Ada:" in printed

    calls = lines(tmp_path / "model-calls.jsonl")
    first_pid = calls[0]["pid"]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_key.setdefault(call["key"], []).append(call)
    *others, plan = by_key.values()
    assert [call[0]["said"] for call in others] == [
        "Hi! I'm Ada, planning a weekend in Lisbon.",
        "What should I pack?",
        "Where should I eat?",
        "Summarize our conversation in one sentence.",
        "What's my name again?",
    ]
    assert all(
        [(c["event"], c["pid"]) for c in call] == [("started", first_pid), ("answered", first_pid)]
        for call in others
    )
    # The plan's call: started by worker #1 and cut short (then worker #2 ran
    # it again), or recorded before the kill (then it ran once).
    assert plan[0]["said"] == "Make me a plan for Saturday." and plan[0]["pid"] == first_pid
    starts = [c for c in plan if c["event"] == "started"]
    assert len(starts) <= 2 and plan[-1]["event"] == "answered"
    if len(starts) == 2:
        assert starts[1]["pid"] != first_pid and plan[-1]["pid"] == starts[1]["pid"]

    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'chat.db'}") as client:
        runs = reversed(client.list(workflow="chat_session"))
        first, second = [client.get_handle("chat-ada", r.run_id).history() for r in runs]
    # Run 1 took four messages (one rejected) and had ada-5 queued when it
    # continued as new; run 2 answered it, then ada-6 once. (*) The retry
    # sends ada-6 again, unless it finds the answer already recorded.
    assert requests(first) == ["ada-1", "ada-2", "ada-3", "ada-4", "ada-5"]
    assert replied(first) == ["ada-1", "ada-2", "ada-3", "ada-4"]
    assert requests(second) in (["ada-5", "ada-6", "ada-6"], ["ada-5", "ada-6"])  # (*)
    assert replied(second) == ["ada-5", "ada-6"]
