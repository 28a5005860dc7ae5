"""``python -m examples.durable_agent``: an agent survives a SIGKILL mid-conversation.

1. A worker process runs the agent: the model asks to look the order up.
2. While the (slow) lookup runs, the worker is killed with SIGKILL.
3. A second worker takes over: it replays the recorded model answer — the model
   is not called again — and re-runs only the lookup that was cut short.
4. The model wants to refund: a risky tool, so the agent waits for a human.
   This program approves, as an operator would with
   ``perdure signal agent-1 approval --payload '{"approved": true, "by": "ops"}'``
   (``--deny`` refuses instead).
5. The answer, and the count of model calls: each one ran exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import perdure

from .. import worker_process
from ..worker_process import lines, wait_for
from .agent import support_agent

LEASE_TIMEOUT = 2.0
DEADLINE = 60.0


def spawn_worker(number: int, url: str, folder: Path) -> subprocess.Popen[bytes]:
    """``perdure worker examples.durable_agent.agent`` in a new process."""
    env = {"AGENT_DIR": str(folder), "AGENT_TOOL_SECONDS": "2"}
    log = folder / f"worker-{number}.log"
    return worker_process.spawn_worker("examples.durable_agent.agent", url, log, env, LEASE_TIMEOUT)


async def story(folder: Path, approve: bool) -> int:
    url = f"sqlite:///{folder / 'agent.db'}"
    model_calls, tool_calls = folder / "model-calls.jsonl", folder / "tool-calls.jsonl"
    print(f"world folder: {folder}")
    client = await perdure.Client.connect(url)
    first = spawn_worker(1, url, folder)
    second = None
    try:
        request = "My order o-1001 arrived damaged. Can I get a refund?"
        handle = await client.start(support_agent, request, id="agent-1")
        print(f"user: {request}")

        await wait_for("the order lookup", lambda: lines(tool_calls))
        print(f"model calls so far: {len(lines(model_calls))}; the lookup tool is running")
        print("kill -9 worker #1, mid-conversation")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = spawn_worker(2, url, folder)
        print(f"worker #2 (pid {second.pid}) takes over after the lease ({LEASE_TIMEOUT:g}s)")

        async def waiting() -> bool:
            return (await handle.describe()).waiting_signals == ["approval"]

        deadline = time.monotonic() + DEADLINE
        while not await waiting():
            if time.monotonic() > deadline:
                raise SystemExit("the agent never asked for approval")
            await asyncio.sleep(0.05)
        print(f"the agent asks a human: {await handle.state('approval_request')}")
        decision = {"approved": approve, "by": "ops"}
        print(f"$ perdure signal agent-1 approval --payload '{json.dumps(decision)}'")
        await handle.signal("approval", decision)

        result = await handle.result(timeout=DEADLINE)
        print("\ntranscript:")
        for line in await handle.state("transcript"):
            print(f"  {line}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        await client.close()

    calls = lines(model_calls)
    print(f"\nmodel calls: {result.model_calls} in the conversation, {len(calls)} made:")
    for call in calls:
        print(f"  {call['messages']} messages in, pid {call['pid']}, attempt {call['attempt']}")
    print("tool runs:", [f"{t['tool']} (pid {t['pid']})" for t in lines(tool_calls)])
    repeated = len(calls) != len({c["key"] for c in calls})
    print("a model call was repeated!" if repeated else "no model call was repeated.")
    return 1 if repeated or len(calls) != result.model_calls else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.durable_agent")
    parser.add_argument("--folder", type=Path, help="where the database and side files go")
    parser.add_argument("--deny", action="store_true", help="refuse the refund")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-agent-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve(), approve=not args.deny))


if __name__ == "__main__":
    sys.exit(main())
