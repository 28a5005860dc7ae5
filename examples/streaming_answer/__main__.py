"""``python -m examples.streaming_answer``: a model's answer, token by token.

1. A worker process serves ``answer_question``. The app starts a run and reads
   the stream ``answer`` as it grows (``handle.read_stream``), printing each
   token as it comes.
2. Mid-answer, the worker is killed with SIGKILL. The reader waits; a second
   worker starts, and once the first one's lease on the model call has run
   out it calls the model again: the reader gets the answer from its start
   again, and reads on until the workflow closes the stream.
3. The stream read again with ``handle.stream_page``: each token's ``source``
   says which attempt wrote it, so the first attempt's partial answer and the
   retry's whole one are told apart.
4. The stream ``progress``, written by the workflow itself: each value once,
   although the second worker replayed the code that wrote the first ones.

Options: ``--folder DIR`` keeps the database and the model's call log there
(default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
from itertools import groupby
from pathlib import Path
from typing import Any

import perdure
from perdure.client import StreamEntry

from .. import worker_process
from ..worker_process import lines, wait_for
from .answer import answer_question

QUESTION = "Why is the sky blue?"
LEASE_TIMEOUT = 1.0  # how long a dead worker's claim on the model call lasts
TOKEN_SECONDS = 0.05  # the scripted model's pace
KILL_AFTER = 6  # tokens the reader has printed when worker #1 is killed
DEADLINE = 60.0


def spawn_worker(number: int, url: str, folder: Path) -> subprocess.Popen[bytes]:
    """``perdure worker examples.streaming_answer.answer`` in a new process."""
    env = {"ANSWER_DIR": str(folder), "ANSWER_TOKEN_SECONDS": str(TOKEN_SECONDS)}
    log = folder / f"worker-{number}.log"
    return worker_process.spawn_worker(
        "examples.streaming_answer.answer", url, log, env, LEASE_TIMEOUT
    )


class Console:
    """The reader's tokens run on in one line; the story's own lines break it."""

    def __init__(self) -> None:
        self.in_line = False

    def token(self, text: str) -> None:
        if not self.in_line:
            print("reader: ", end="")
            self.in_line = True
        print(text, end="", flush=True)

    def say(self, text: str) -> None:
        if self.in_line:
            print()
            self.in_line = False
        print(text, flush=True)


async def read_all(handle: perdure.WorkflowHandle[Any], key: str) -> list[StreamEntry]:
    """Every entry of the stream ``key``, a page at a time."""
    entries: list[StreamEntry] = []
    start = 0
    while True:
        page = await handle.stream_page(key, start, limit=100)
        entries += page.entries
        start = page.next_start
        if page.finished or not page.entries:
            return entries


async def story(folder: Path) -> int:
    url = f"sqlite:///{folder / 'answer.db'}"
    console = Console()
    print(f"world folder: {folder}")
    client = await perdure.Client.connect(url)
    workers = [spawn_worker(1, url, folder)]
    try:
        print(f"worker #1 is pid {workers[0].pid}\n\nasker: {QUESTION}")
        handle = await client.start(answer_question, QUESTION, id="answer-1")
        seen: list[str] = []

        async def reader() -> None:
            async for token in handle.read_stream("answer", timeout=DEADLINE):
                seen.append(token)
                console.token(token)

        reading = asyncio.ensure_future(reader())
        await wait_for(f"{KILL_AFTER} tokens", lambda: len(seen) >= KILL_AFTER or reading.done())
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        console.say(f"  kill -9 worker #1, mid-answer (the reader has {len(seen)} tokens)")
        workers.append(spawn_worker(2, url, folder))
        console.say(
            f"  worker #2 (pid {workers[1].pid}) starts; once worker #1's lease on the model"
            f" call has run out ({LEASE_TIMEOUT:g} s), it calls the model again"
        )
        await reading
        answer = await handle.result(timeout=DEADLINE)
        console.say(f"  the stream was closed: the reader read {len(seen)} tokens in all")
        tokens = await read_all(handle, "answer")
        progress = await read_all(handle, "progress")
        history = await handle.history()
    finally:
        worker_process.stop(workers)
        await client.close()
    calls = lines(folder / "model-calls.jsonl")
    return report(answer, seen, tokens, progress, history, calls, [p.pid for p in workers])


def report(
    answer: str,
    seen: list[str],
    tokens: list[StreamEntry],
    progress: list[StreamEntry],
    history: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    pids: list[int],
) -> int:
    """Print the streams as stream_page sees them; 1 if a check fails."""
    problems = []
    print("\nthe stream 'answer', read again with stream_page: who wrote each token")
    parts = [(source, list(run)) for source, run in groupby(tokens, lambda e: e.source)]
    for source, run in parts:
        text = "".join(e.value for e in run)
        print(f"  positions {run[0].position}-{run[-1].position}, {source}: {len(run)} tokens")
        print(f"    {text.strip()!r}")
    if [t.value for t in tokens] != seen:
        problems.append("the reader did not get the stream's tokens in order")
    sources = [source or "" for source, _ in parts]
    attempts = [s.rsplit(" attempt ", 1)[-1] if s.startswith("ask_model ") else s for s in sources]
    if attempts != ["1", "2"]:
        problems.append(f"expected attempt 1's tokens, then attempt 2's, not {sources}")
    else:
        cut, whole = ("".join(e.value for e in run) for _, run in parts)
        if whole == answer and answer.startswith(cut) and len(cut) < len(answer):
            print(
                "Attempt 1 was cut short by the kill; attempt 2 wrote the whole answer again,\n"
                "and it is the answer the workflow returned. The reader got both: an app that\n"
                "shows the answer as it comes starts over when the source changes."
            )
        else:
            problems.append("attempt 2's tokens are not the answer, or attempt 1's not a part")
    by_pid = {pid: n for n, pid in enumerate(pids, 1)}
    ran = [f"{c['event']} (attempt {c['attempt']}, worker #{by_pid.get(c['pid'])})" for c in calls]
    print(f"the model's call log: {', '.join(ran)}")

    print("\nthe stream 'progress', written by the workflow (source None):")
    for entry in progress:
        print(f"  position {entry.position}: {entry.value!r}, source={entry.source}")
    recorded = [e["value"] for e in history if e["type"] == "StreamWritten"]
    values = [e.value for e in progress]
    if values == recorded and len(set(values)) == len(values) == 3:
        print(
            "Worker #2 replayed the workflow's code from its history, the writes of the\n"
            "first two values included: they were not written again. Each value is there\n"
            f"once, as the history's {len(recorded)} StreamWritten events say."
        )
    else:
        problems.append(f"progress {values} is not the history's {recorded}, once each")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.streaming_answer")
    parser.add_argument("--folder", type=Path, help="where the database and side files go")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-answer-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve()))


if __name__ == "__main__":
    sys.exit(main())
