"""``python -m examples.chat_session``: a chat whose messages are updates.

1. A worker process serves the chat. Ada's first message starts the session
   (``update_with_start``); each ``update("message", text)`` returns the reply.
2. A message too long to take is rejected, and the caller is told why.
3. The session answers three messages per run, then continues as new with a
   summary. A message sent while the third is being answered is handed on and
   answered by the next run, which knows Ada from the summary.
4. While the model thinks about the next message, the worker is killed with
   SIGKILL; the app gives up waiting (``TimeoutError``), a second worker
   starts, and the app calls ``update`` again with the same ``update_id``.
5. The one reply, and the model's side of the story: which calls ran where.

Options: ``--folder DIR`` keeps the database and the world files there
(default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import perdure

from .. import worker_process
from ..worker_process import lines, wait_for
from .chat import Reply, chat_session

LEASE_TIMEOUT = 2.0  # how long a dead worker's claim on the model call lasts
GIVE_UP = 3.0  # seconds the app waits for a reply before it gives up
MESSAGES_PER_RUN = 3
DEADLINE = 60.0


def spawn_worker(number: int, url: str, folder: Path) -> subprocess.Popen[bytes]:
    """``perdure worker examples.chat_session.chat`` in a new process."""
    env = {"CHAT_DIR": str(folder), "CHAT_MODEL_SECONDS": "0.5"}
    log = folder / f"worker-{number}.log"
    return worker_process.spawn_worker("examples.chat_session.chat", url, log, env, LEASE_TIMEOUT)


def requests(history: list[dict[str, Any]], update_id: str) -> int:
    """How many requests with ``update_id`` a run's history holds."""
    return sum(
        e["type"] == "SignalReceived" and e["name"] == "perdure.update:message"
        and e["payload"]["update_id"] == update_id
        for e in history
    )  # fmt: skip


def show(reply: Reply) -> None:
    print(f"assistant (message {reply['number']}, run {reply['run']}): {reply['text']}")


async def story(folder: Path) -> int:
    url = f"sqlite:///{folder / 'chat.db'}"
    calls_file = folder / "model-calls.jsonl"

    def started(text: str) -> bool:
        return any(c["event"] == "started" and c["said"] == text for c in lines(calls_file))

    print(f"world folder: {folder}")
    client = await perdure.Client.connect(url)
    workers = [spawn_worker(1, url, folder)]
    try:
        text = "Hi! I'm Ada, planning a weekend in Lisbon."
        print(f"worker #1 is pid {workers[0].pid}\n\nada: {text}")
        reply = await client.update_with_start(
            chat_session, MESSAGES_PER_RUN, id="chat-ada",
            update="message", update_payload=text, update_id="ada-1",
        )  # fmt: skip
        show(reply)
        print("  (the first message started the session chat-ada)")
        session = client.get_handle("chat-ada")  # the latest run, from run to run
        print("ada: What should I pack?")
        show(await session.update("message", "What should I pack?", update_id="ada-2"))

        pasted = "Can you read my booking log? " + "GET /booking/42 200 OK\n" * 150
        print(f"ada: {pasted[:45]}... ({len(pasted):,} characters)")
        try:
            await session.update("message", pasted, update_id="ada-3")
        except perdure.UpdateRejectedError as refused:
            print(f"  {refused}")

        print("ada: Where should I eat?")
        third = asyncio.ensure_future(
            session.update("message", "Where should I eat?", update_id="ada-4")
        )
        await wait_for("the model call", lambda: started("Where should I eat?"))
        print("ada: What's my name again?  (sent while the model is still on the last one)")
        fourth = asyncio.ensure_future(
            session.update("message", "What's my name again?", update_id="ada-5")
        )
        show(await third)
        print(f"  run 1 has answered {MESSAGES_PER_RUN} messages: it continues as new")
        show(await fourth)
        print(f"  run 2 started from this summary: {await session.state('summary')!r}")

        text = "Make me a plan for Saturday."
        print(f"ada: {text}  (update_id 'ada-6')")
        first_try = asyncio.ensure_future(
            session.update("message", text, update_id="ada-6", timeout=GIVE_UP)
        )
        await wait_for("the model call", lambda: started(text))
        print("  the model is thinking; kill -9 worker #1")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        try:
            show(await first_try)
        except TimeoutError as gave_up:
            print(f"  the app gives up: {gave_up}")
        workers.append(spawn_worker(2, url, folder))
        print(f"  worker #2 (pid {workers[1].pid}) starts; the app asks again, same update_id")
        show(await session.update("message", text, update_id="ada-6", timeout=DEADLINE))
        sent = requests(await session.history(), "ada-6")
        tries = "the first try and the retry" if sent == 2 else "the retry found its answer"
        print(f"  ada-6 reached run 2 {sent}x ({tries}); it was taken and answered once")
        print("  (the session now waits for Ada's next message; a day of silence ends it)")
    finally:
        worker_process.stop(workers)
        await client.close()
    return model_side(lines(calls_file), {p.pid: n for n, p in enumerate(workers, 1)}, text)


def model_side(calls: list[dict[str, Any]], worker: dict[int, int], crashed: str) -> int:
    """Print each model call (one idempotency key: one activity, however often it
    ran) with where it ran; 1 if any call but the one cut short ran twice."""
    print("\nthe model's side (model-calls.jsonl): each call, and which worker did what")
    runs: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        runs.setdefault(call["key"], []).append(call)
    for events in runs.values():
        done = [f"#{worker[e['pid']]} {e['event']}" for e in events]
        print(f"  {str(events[0]['said'])[:45]:47}{', '.join(done)}")
    repeated = [e for e in runs.values() if sum(c["event"] == "started" for c in e) > 1]
    [plan] = [e for e in runs.values() if e[0]["said"] == crashed]
    ran = [worker[c["pid"]] for c in plan if c["event"] == "started"]
    answered = [worker[c["pid"]] for c in plan if c["event"] == "answered"]
    if ran == [1]:
        print("The kill came after worker #1's model call was recorded: no second call.")
    elif answered == [2]:
        print(
            "The plan's call ran twice: worker #1 was killed before the model answered, so\n"
            "nothing was recorded, and worker #2 ran the call again (an activity runs at\n"
            "least once). Its answer was recorded, and it is the one reply the app got."
        )
    else:
        print(
            "The plan's call ran twice: the model answered worker #1, but the kill came\n"
            "before the answer was recorded, so worker #2 ran the call again (at least once)."
        )
    others = [e for e in repeated if e is not plan]
    print("Another model call was repeated!" if others else "No other model call was repeated.")
    return 1 if others else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_session")
    parser.add_argument("--folder", type=Path, help="where the database and side files go")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-chat-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve()))


if __name__ == "__main__":
    sys.exit(main())
