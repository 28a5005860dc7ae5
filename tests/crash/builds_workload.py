"""Two releases of one workflow type for the worker-build crash tests
(``perdure worker tests/crash/builds_workload.py --build-id ...``): which
one a process loads is ``$PERDURE_TEST_CODE`` ("1" or "2"). Release 2 checks
the stock before it reserves, so a history release 1 recorded does not
replay on it. Each execution of ``record`` is logged, before it returns,
to ``$PERDURE_TEST_DIR/exec-<pid>.log`` with the workflow id, the step, the
attempt and the idempotency key (as tests/crash/workloads.py's steps are:
crash_harness.Execution), and ``ready-<pid>`` is written on import."""

from __future__ import annotations

import os

from workloads import TEST_DIR_ENV, _append

from perdure import activity, workflow

CODE = os.environ["PERDURE_TEST_CODE"]
STEPS = {"check": 0, "reserve": 1, "ship": 2}


@activity.defn
async def record(what: str) -> str:
    info = activity.info()
    _append(
        os.path.join(os.environ[TEST_DIR_ENV], f"exec-{os.getpid()}.log"),
        {
            "pid": os.getpid(),
            "wf": info.workflow_id,
            "step": STEPS[what],
            "key": info.idempotency_key,
            "attempt": info.attempt,
            "activity_id": info.activity_id,
        },
    )
    return f"{what}@{CODE}"


if CODE == "1":

    @workflow.defn(name="order")
    async def order() -> list[str]:
        reserved = await record("reserve")
        note = await workflow.wait_signal("ship")
        return [reserved, note, await record("ship")]

else:

    @workflow.defn(name="order")
    async def order() -> list[str]:
        checked = await record("check")
        reserved = await record("reserve")
        note = await workflow.wait_signal("ship")
        return [checked, reserved, note, await record("ship")]


_append(os.path.join(os.environ[TEST_DIR_ENV], f"ready-{os.getpid()}"), {"pid": os.getpid()})
