"""A plain ``def`` activity blocked in a call that never returns, for the
worker process tests (``perdure worker`` loads this file). It writes the
file PERDURE_TEST_BLOCKED names once it blocks."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from perdure import activity, workflow


@activity.defn
def blocked_for_good(x: int) -> int:
    Path(os.environ["PERDURE_TEST_BLOCKED"]).write_text("blocked")
    threading.Event().wait()  # in C, with no timeout
    return x


@workflow.defn
async def waits_on_a_blocked_call(x: int) -> int:
    return await blocked_for_good(x)


@workflow.defn
async def spins_for_good(x: int) -> int:
    Path(os.environ["PERDURE_TEST_BLOCKED"]).write_text("spinning")
    while x:  # never awaits: holds the worker's event loop
        pass
    return x


@activity.defn
async def holds_the_loop(x: int) -> int:
    Path(os.environ["PERDURE_TEST_BLOCKED"]).write_text("holding")
    time.sleep(2.5)  # blocking work in an async activity: no lease is renewed meanwhile
    return x


@workflow.defn
async def waits_on_a_loop_holder(x: int) -> int:
    return await holds_the_loop(x)
