"""The streaming answer: the tokens and the progress a reader gets, on the
time-skipping environment (a model call that fails midway is retried and
writes its tokens again, under its new attempt), and a real worker SIGKILLed
mid-answer, after which the reader gets the retry's whole answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure.testing import WorkflowEnvironment

from ..story import run_story
from . import answer
from .answer import answer_question, ask_model
from .model import ANSWERS, ScriptedModel, tokens_of

QUESTION = "Why is the sky blue?"
SKY = tokens_of(ANSWERS["sky"])


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkflowEnvironment]:
    monkeypatch.setenv("ANSWER_DIR", str(tmp_path))
    monkeypatch.delenv("ANSWER_TOKEN_SECONDS", raising=False)
    monkeypatch.delenv("ANSWER_MODEL", raising=False)
    async with WorkflowEnvironment([answer_question], [ask_model]) as env:
        yield env


async def test_a_reader_gets_the_tokens_and_the_progress(env: WorkflowEnvironment) -> None:
    handle = await env.client.start(answer_question, QUESTION, id="answer-1")
    tokens = [token async for token in handle.read_stream("answer", timeout=30)]
    assert tokens == SKY  # (the stream ended: the workflow closed it)
    assert await handle.result() == ANSWERS["sky"]
    assert [value async for value in handle.read_stream("progress")] == [
        "question received",
        "asking the model",
        f"answered in {len(SKY)} words",
    ]
    page = await handle.stream_page("answer", start=40, limit=100)
    assert [e.position for e in page.entries] == list(range(40, len(SKY)))
    assert {e.source for e in page.entries} == {"ask_model (ref 1) attempt 1"}
    assert page.finished and page.next_start == len(SKY)
    assert {e.source for e in (await handle.stream_page("progress")).entries} == {None}
    assert [(s.key, s.length, s.closed) for s in await handle.streams()] == [
        ("answer", len(SKY), True),
        ("progress", 3, True),
    ]


class FailsOnce(ScriptedModel):
    """The scripted model, but its first answer breaks off after three tokens."""

    calls = 0

    async def stream(self, question: str) -> AsyncIterator[str]:
        FailsOnce.calls += 1
        sent = 0
        async for token in super().stream(question):
            if FailsOnce.calls == 1 and sent == 3:
                raise ConnectionError("the model's connection was reset")
            sent += 1
            yield token


async def test_a_retried_call_writes_its_tokens_again_under_its_attempt(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    FailsOnce.calls = 0
    monkeypatch.setattr(answer, "get_model", FailsOnce)  # (the worker runs in this process)
    handle = await env.client.start(answer_question, QUESTION, id="answer-2")
    assert await handle.result() == ANSWERS["sky"]  # (the retry's second of backoff skipped)
    entries = (await handle.stream_page("answer", limit=1000)).entries
    assert [(e.value, e.source) for e in entries] == [
        *[(t, "ask_model (ref 1) attempt 1") for t in SKY[:3]],
        *[(t, "ask_model (ref 1) attempt 2") for t in SKY],
    ]
    assert [e.position for e in entries] == list(range(3 + len(SKY)))
    calls = [(c["event"], c["attempt"]) for c in lines(tmp_path / "model-calls.jsonl")]
    assert calls == [("started", 1), ("started", 2), ("answered", 2)]


async def test_outside_a_worker_the_model_call_just_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSWER_DIR", str(tmp_path))
    assert await ask_model("And the sunset?") == ANSWERS["sunset"]
    assert not (tmp_path / "model-calls.jsonl").exists()


@pytest.mark.slow
def test_sigkill_mid_answer_then_the_retry_streams_the_whole_answer(tmp_path: Path) -> None:
    """``python -m examples.streaming_answer``: worker #1 is SIGKILLed once the
    reader has six tokens; worker #2 calls the model again. The reader got
    attempt 1's tokens, then attempt 2's whole answer, told apart by source;
    the workflow's progress values are there once each."""
    printed = run_story("streaming_answer", tmp_path, clear_env=("ANSWER_",))
    assert "kill -9 worker #1, mid-answer" in printed
    assert "Attempt 1 was cut short by the kill; attempt 2 wrote the whole answer" in printed
    assert "Each value is there\nonce, as the history's 3 StreamWritten events say." in printed
    assert "PROBLEM" not in printed

    calls = lines(tmp_path / "model-calls.jsonl")
    assert [(c["event"], c["attempt"]) for c in calls] == [
        ("started", 1),
        ("started", 2),
        ("answered", 2),
    ]
    assert calls[0]["pid"] != calls[1]["pid"] == calls[2]["pid"]
    assert calls[2]["tokens"] == len(SKY)

    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'answer.db'}") as client:
        handle = client.get_handle("answer-1")
        entries = handle.stream_page("answer", limit=1000).entries
        assert list(handle.read_stream("answer")) == [e.value for e in entries]
        progress = list(handle.read_stream("progress"))
        history = handle.history()
        heads = [(s.key, s.length, s.closed) for s in handle.streams()]
    cut = [e for e in entries if e.source == "ask_model (ref 1) attempt 1"]
    retry = [e for e in entries if e.source == "ask_model (ref 1) attempt 2"]
    # The kill came after the reader had 6 tokens, long before attempt 1's last.
    assert 6 <= len(cut) < len(SKY) and [e.value for e in cut] == SKY[: len(cut)]
    assert [e.value for e in retry] == SKY and cut + retry == entries
    assert progress == ["question received", "asking the model", f"answered in {len(SKY)} words"]
    assert [e["value"] for e in history if e["type"] == "StreamWritten"] == progress
    assert heads == [("answer", len(entries), True), ("progress", 3, True)]
