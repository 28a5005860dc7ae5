"""``python -m examples.search_reindex``: documents saved while an editor
types, each indexed once per burst of saves (``client.debounce``).

The story: "guide" is saved 20 times, 100 ms apart; "faq" once, half a
second in; "changelog" every 300 ms for 8 s. Every save calls
``client.debounce(reindex, doc, version, key=f"reindex-{doc}", ...)``:
the 20 saves of "guide" make one run, started a second after the last
one, which indexes version 20; the one save of "faq" is indexed a second
later, while "guide" is still being saved. The saves of "changelog" never
pause for a second, so ``max_delay`` starts its run 5 s after the first
save, in the middle of the burst, with the version saved last by then;
the saves after that make another run, indexed after the last save.

It prints each run a save opens and each indexing as they come, then
counts, from the index, how many times each document was indexed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import perdure

from .index import DELAY, MAX_DELAY, index_document, index_path, reindex

# document: (how many saves, seconds between two, seconds in when the first comes)
EDITS = {"guide": (20, 0.1, 0.0), "faq": (1, 0.0, 0.5), "changelog": (27, 0.3, 0.0)}


def say(began: float, text: str, at: float | None = None) -> None:
    print(f"{(at or time.time()) - began:6.2f}s  {text}", flush=True)


async def save(client: perdure.Client, doc_id: str, version: int) -> perdure.WorkflowHandle[int]:
    """What the editor calls on every save: re-index, once the saves pause."""
    return await client.debounce(
        reindex, doc_id, version, key=f"reindex-{doc_id}", delay=DELAY, max_delay=MAX_DELAY
    )


async def edit(client: perdure.Client, began: float, doc_id: str) -> list[int]:
    """Save ``doc_id`` as ``EDITS`` says, printing the runs the saves make
    and when they are due; wait for the runs."""
    saves, every, first = EDITS[doc_id]
    runs: dict[str, perdure.WorkflowHandle[int]] = {}
    capped: set[str] = set()
    for version in range(1, saves + 1):
        await asyncio.sleep(max(0.0, began + first + (version - 1) * every - time.time()))
        saved_at = time.time()
        handle = await save(client, doc_id, version)
        run = f"run …{handle.id[-8:]}"
        starts_at = (await handle.describe()).starts_at
        due = f"due at {starts_at.timestamp() - began:.2f}s" if starts_at else "taken already"
        if handle.id not in runs:
            taken = f"run …{list(runs)[-1][-8:]} was taken, so " if runs else ""
            say(began, f"{doc_id} v{version} saved: {taken}{run} {due}")
            runs[handle.id] = handle
        elif (
            starts_at
            and starts_at.timestamp() < saved_at + DELAY.total_seconds() - 0.01
            and handle.id not in capped  # (max_delay holds the start back: said once)
        ):
            capped.add(handle.id)
            say(began, f"{doc_id} v{version} saved: {run} stays {due} (max_delay)")
        elif version == saves:
            say(began, f"{doc_id} v{version} saved, the last of {saves}: {run} now {due}")
    return [await handle.result(timeout=60) for handle in runs.values()]


async def watch(began: float, stop: asyncio.Event) -> None:
    """Print each line the index gets, as it comes."""
    seen = 0
    while True:
        stopping = stop.is_set()
        path = index_path()
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines[seen:]:
            entry = json.loads(line)
            say(began, f"indexed {entry['doc']} at version {entry['version']}", at=entry["at"])
        seen = len(lines)
        if stopping:
            return
        await asyncio.sleep(0.05)


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


async def story(folder: Path) -> int:
    os.environ["SEARCH_DIR"] = str(folder)
    index_path().unlink(missing_ok=True)
    client = await perdure.Client.connect(f"sqlite:///{folder / 'search.db'}")
    client.poll_interval = 0.05
    print(
        f"each save: client.debounce(reindex, doc, version, key='reindex-<doc>', "
        f"delay={DELAY.total_seconds():g}s, max_delay={MAX_DELAY.total_seconds():g}s)"
    )
    async with (
        client,
        perdure.Worker(
            client, workflows=[reindex], activities=[index_document], poll_interval=0.05
        ),
    ):
        began = time.time()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(began, stop))
        await asyncio.gather(*(edit(client, began, doc_id) for doc_id in EDITS))
        stop.set()
        await watcher
    indexed = [json.loads(line) for line in index_path().read_text().splitlines()]
    for doc_id, (saves, _every, _first) in EDITS.items():
        versions = [str(e["version"]) for e in indexed if e["doc"] == doc_id]
        at = f"at version {versions[0]}" if len(versions) == 1 else "at versions "
        if len(versions) > 1:
            at += ", ".join(versions[:-1]) + f" and {versions[-1]}"
        print(f"{doc_id}: {saves} save{'s' * (saves > 1)}, indexed {times(len(versions))}, {at}")
    print(f"{sum(e[0] for e in EDITS.values())} saves, {len(indexed)} indexings ({index_path()})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the search index go")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-search-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder))


if __name__ == "__main__":
    sys.exit(main())
