"""The search index, rebuilt once per burst of saves (``client.debounce``):
a burst within the delay makes one indexing, of the last version; saves
that never pause are indexed within ``max_delay`` of the first, and the
saves after that make another run; two documents do not wait for each
other. On the time-skipping ``WorkflowEnvironment`` (seconds of saves in
milliseconds), with the real activity writing the index; and the program
itself, on the real clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import perdure
from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .index import DELAY, MAX_DELAY, index_document, reindex


def indexed(folder: Path, doc_id: str) -> list[int]:
    """The versions of ``doc_id`` the index received, in order."""
    path = folder / "index.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e["version"] for e in map(json.loads, lines) if e["doc"] == doc_id]


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkflowEnvironment]:
    monkeypatch.setenv("SEARCH_DIR", str(tmp_path))
    async with WorkflowEnvironment(workflows=[reindex], activities=[index_document]) as env:
        yield env


async def until(env: WorkflowEnvironment, at: datetime) -> None:
    """Let virtual time reach ``at`` (virtual time also runs at real speed:
    a schedule of saves by absolute times keeps the test's own work from
    piling up into it)."""
    await env.sleep(max(at - env.now(), timedelta(0)))


async def save(env: WorkflowEnvironment, doc_id: str, version: int) -> perdure.WorkflowHandle[int]:
    return await env.debounce(
        reindex, doc_id, version, key=f"reindex-{doc_id}", delay=DELAY, max_delay=MAX_DELAY
    )


async def test_a_burst_of_saves_is_indexed_once_at_the_last_version(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    handles = []
    first_save = env.now()
    for version in range(1, 21):  # 20 saves, 100 ms apart
        await until(env, first_save + (version - 1) * timedelta(milliseconds=100))
        last_save = env.now()
        handles.append(await save(env, "guide", version))
    assert len({(h.id, h.run_id) for h in handles}) == 1  # every save: the same run
    assert indexed(tmp_path, "guide") == []  # (not yet: the delay runs from the last save)

    assert await handles[0].result() == 20
    assert indexed(tmp_path, "guide") == [20]
    assert env.now() - last_save >= DELAY

    # The run is over: the next save makes another, with its own version.
    again = await save(env, "guide", 21)
    assert again.id != handles[0].id
    assert await again.result() == 21
    assert indexed(tmp_path, "guide") == [20, 21]


async def test_saves_that_never_pause_are_indexed_within_max_delay(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    first_save = env.now()
    every = timedelta(milliseconds=300)  # never the second's pause DELAY waits for
    handles = []
    seen_at = None  # when, looking before each save, the index first had the changelog
    for version in range(1, 28):  # 8 s of saves
        await until(env, first_save + (version - 1) * every)
        if seen_at is None and indexed(tmp_path, "changelog"):
            seen_at = env.now()
        handles.append(await save(env, "changelog", version))
    assert seen_at is not None, "nothing indexed during the burst"
    assert MAX_DELAY <= seen_at - first_save < MAX_DELAY + every

    # The saves up to 5 s (0 s, 0.3 s, ... 4.8 s) made the first run, which
    # indexed the last of them; those after it was taken made another.
    runs = list(dict.fromkeys(h.id for h in handles))
    assert len(runs) == 2
    assert [h.id for h in handles] == [runs[0]] * 17 + [runs[1]] * 10
    assert await handles[0].result() == 17
    assert await handles[-1].result() == 27
    assert indexed(tmp_path, "changelog") == [17, 27]


async def test_two_documents_do_not_wait_for_each_other(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    guide, faq = [], []
    first_save = env.now()
    for version in range(1, 21):  # guide: 20 saves, 100 ms apart
        await until(env, first_save + (version - 1) * timedelta(milliseconds=100))
        guide.append(await save(env, "guide", version))
        if version == 5:
            faq.append(await save(env, "faq", 1))  # faq: one save, 0.4 s in
    await until(env, first_save + timedelta(seconds=2))
    # faq was indexed a second after its save, while guide was being saved;
    # guide's saves neither joined faq's run nor were held back by it.
    assert indexed(tmp_path, "faq") == [1]
    assert indexed(tmp_path, "guide") == []
    assert await guide[-1].result() == 20
    assert {h.id for h in guide} == {guide[0].id} != {faq[0].id}
    assert await faq[0].result() == 1
    assert indexed(tmp_path, "faq") == [1] and indexed(tmp_path, "guide") == [20]
    lines = (tmp_path / "index.jsonl").read_text().splitlines()
    assert [json.loads(line)["doc"] for line in lines] == ["faq", "guide"]


@pytest.mark.slow
def test_the_story_program(tmp_path: Path) -> None:
    """``python -m examples.search_reindex``, on the real clock (about 9 s)."""
    out = run_story("search_reindex", tmp_path, clear_env=("SEARCH_",))
    assert indexed(tmp_path, "guide") == [20]
    assert indexed(tmp_path, "faq") == [1]
    # On a machine slow enough to stall the saves for a second, the burst
    # may be cut once more; max_delay makes it at least twice, 27 the last.
    changelog = indexed(tmp_path, "changelog")
    assert len(changelog) >= 2 and changelog[-1] == 27 and changelog == sorted(changelog)
    assert "guide: 20 saves, indexed once, at version 20" in out
    assert "faq: 1 save, indexed once, at version 1" in out
    assert "changelog: 27 saves, indexed " in out and "(max_delay)" in out
