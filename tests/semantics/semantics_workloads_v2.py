"""Version 2 of ``versioned_flow``: a new audit step, guarded by a patch so that
runs started on version 1 keep replaying (and finishing) on the old branch."""

from __future__ import annotations

import os

from semantics_workloads import step

from perdure import workflow

if "PERDURE_TEST_DIR" in os.environ:
    with open(os.path.join(os.environ["PERDURE_TEST_DIR"], f"ready-{os.getpid()}"), "w") as f:
        f.write("ready\n")


@workflow.defn
async def versioned_flow(tag: str) -> str:
    if workflow.patched("audit-first"):
        await step(f"{tag}-audit")
        first = await step(f"{tag}-a")
        await workflow.wait_signal("go")
        return f"{first} / v2"
    first = await step(f"{tag}-a")
    await workflow.wait_signal("go")
    return f"{first} / v1"
