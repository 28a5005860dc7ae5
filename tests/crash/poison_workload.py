"""An activity that kills the worker process running it (``perdure worker
tests/crash/poison_workload.py``), as one that runs it out of memory or
crashes in native code would: its first ``$PERDURE_TEST_KILLS`` attempts
SIGKILL their own process once they have logged their start (to
``$PERDURE_TEST_DIR/exec-<pid>.log``, as tests/crash/workloads.py's steps
do); the next one returns. ``ready-<pid>`` is written on import."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

from workloads import TEST_DIR_ENV, _append

from perdure import RetryPolicy, activity, workflow

KILLS = int(os.environ.get("PERDURE_TEST_KILLS", "2"))
BACKOFF = timedelta(seconds=4)  # the retry policy's first interval


@activity.defn(retry=RetryPolicy(initial_interval=BACKOFF, backoff=2.0))
async def poison(n: int) -> str:
    info = activity.info()
    _append(
        os.path.join(os.environ[TEST_DIR_ENV], f"exec-{os.getpid()}.log"),
        {
            "pid": os.getpid(),
            "wf": info.workflow_id,
            "step": n,
            "key": info.idempotency_key,
            "attempt": info.attempt,
            "activity_id": info.activity_id,
        },
    )
    if info.attempt <= KILLS:
        os.kill(os.getpid(), signal.SIGKILL)
    return f"survived attempt {info.attempt}"


@workflow.defn
async def takes_poison(n: int) -> str:
    return await poison(n)


_append(os.path.join(os.environ[TEST_DIR_ENV], f"ready-{os.getpid()}"), {"pid": os.getpid()})
