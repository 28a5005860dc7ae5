"""Workflows for the PostgreSQL tests, loaded by ``perdure worker`` in subprocesses.

Imports only perdure and the standard library. Writes ``ready-<pid>`` to
``$PERDURE_TEST_DIR`` on import, as the crash harness expects.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from perdure import workflow


@workflow.defn
async def sleeper(seconds: float) -> float:
    """One durable timer of ``seconds``; returns how long workflow time moved."""
    before = workflow.now()
    await workflow.sleep(timedelta(seconds=seconds))
    return (workflow.now() - before).total_seconds()


if "PERDURE_TEST_DIR" in os.environ:
    ready = os.path.join(os.environ["PERDURE_TEST_DIR"], f"ready-{os.getpid()}")
    with open(ready, "w") as f:
        f.write(json.dumps({"pid": os.getpid()}))
