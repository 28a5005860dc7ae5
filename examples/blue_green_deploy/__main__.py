"""``python -m examples.blue_green_deploy``: a deploy that changes an order
workflow's steps while an order is in flight, each release's workers
started with a build id (docs/versioning.md, "Pinning runs to a build").

1. Release 1's worker starts (``--build-id 2026.12.1``). Order o-1 starts:
   the stock is reserved, and it waits for its approval. Its first turn
   pinned it to release 1.
2. Release 2 is deployed: its worker starts (``--build-id 2026.12.2``) and
   its build becomes the current one; release 1's worker takes no new
   orders from its next heartbeat on. Release 2 checks for fraud before it
   reserves: it could not replay o-1's history.
3. Order o-2 starts: release 2 runs it.
4. Both are approved: o-1 ships on release 1, o-2 on release 2. The builds
   of the queue are printed: release 1 has no open order left, and its
   worker is stopped.

``--canary PERCENT`` deploys release 2 as a canary first (docs/versioning.md,
"Ramping a new build"): before its worker starts, release 2 is set to take
PERCENT of the new orders beside release 1 (``perdure build ramp orders
2026.12.2 PERCENT``). Orders c-1 to c-4 start: release 1's worker hands
those whose ids fall in the share to release 2, and runs the others. Then
release 2 is made current (``perdure build set-current``) and the story goes
on from step 3.

``--no-builds`` tells the same deploy without build ids, as a rolling
deploy: release 1's worker stops once release 2's has started, and o-1's
next turn goes to release 2, whose code does not replay o-1's history: the
run waits with a ``NonDeterminismError``. ``--folder DIR`` keeps the
database and the log there (default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import perdure

from .. import worker_process

QUEUE = "orders"
LEASE_TIMEOUT = 1.5  # (a worker looks at its queue's builds every third of it)
BUILDS = {1: "2026.12.1", 2: "2026.12.2"}


def spawn_release(
    number: int, url: str, folder: Path, with_build: bool
) -> worker_process.subprocess.Popen[bytes]:
    build = ["--build-id", BUILDS[number]] if with_build else []
    return worker_process.spawn_worker(
        f"examples.blue_green_deploy.release_{number}",
        url,
        folder / f"release-{number}.log",
        {"SHOP_LOG": str(folder / "steps.log")},
        LEASE_TIMEOUT,
        "--task-queue", QUEUE, "--log-level", "INFO", *build,
    )  # fmt: skip


def steps(folder: Path, order: str) -> list[str]:
    """The steps run for ``order``, each as "<release>: <step>"."""
    logged = worker_process.lines(folder / "steps.log")
    return [f"{s['release']}: {s['step']}" for s in logged if s["order"] == order]


CANARY_ORDERS = ("c-1", "c-2", "c-3", "c-4")


async def ramp_release_2(
    client: perdure.Client,
    url: str,
    folder: Path,
    percent: float,
    workers: list[worker_process.subprocess.Popen[bytes]],
) -> None:
    """Release 2 as a canary: set to take ``percent`` of the new orders,
    then its worker started; the canary orders run on either release, as
    their ids fall, and are approved."""
    print(f"ramping release 2: it takes {percent:g}% of the new orders beside release 1")
    await client.set_ramping_build(QUEUE, BUILDS[2], percent)
    log = folder / "release-1.log"
    await worker_process.wait_for(
        "release 1's worker to see the ramp",
        lambda: log.exists() and "ramps: it takes" in log.read_text(),
    )
    workers.append(spawn_release(2, url, folder, True))
    handles = [await client.start("order", o, id=o, task_queue=QUEUE) for o in CANARY_ORDERS]
    for order in CANARY_ORDERS:
        await worker_process.wait_for(
            f"{order} to wait for its approval",
            lambda o=order: any(s.endswith(": reserve") for s in steps(folder, o)),
        )
    for handle in handles:
        build = (await handle.describe()).build_id
        print(f"{handle.id}: build {build}, steps {steps(folder, handle.id)}")
        await handle.signal("approval", "approved by Barbara")
        print(f"{handle.id}: {await handle.result(timeout=60)}")


async def story(folder: Path, with_builds: bool, canary: float | None = None) -> int:
    url = f"sqlite:///{folder / 'shop.db'}"
    print(f"world folder: {folder}; {'with' if with_builds else 'without'} build ids")
    client = await perdure.Client.connect(url)
    first = spawn_release(1, url, folder, with_builds)
    workers = [first]
    try:
        old = await client.start("order", "o-1", id="o-1", task_queue=QUEUE)
        await worker_process.wait_for("o-1 to wait for its approval", lambda: steps(folder, "o-1"))
        described = await old.describe()
        print(f"o-1: {steps(folder, 'o-1')}, waiting for its approval; build {described.build_id}")

        log = folder / "release-1.log"
        if canary is not None:
            await ramp_release_2(client, url, folder, canary, workers)
            await client.set_current_build(QUEUE, BUILDS[2])
            print("release 2 is made current: its ramp ends, it takes every new order")
        else:
            print("deploying release 2")
            workers.append(spawn_release(2, url, folder, with_builds))
        if with_builds:
            await worker_process.wait_for(
                "release 1's worker to see release 2 current",
                lambda: log.exists() and "is current now" in log.read_text(),
            )
            print("release 1's worker takes no new orders: release 2 is the current build")
        else:
            worker_process.stop([first])
            print("release 1's worker stopped (a rolling deploy)")

        new = await client.start("order", "o-2", id="o-2", task_queue=QUEUE)
        await worker_process.wait_for(
            "o-2 to wait for its approval", lambda: steps(folder, "o-2")[1:]
        )
        print(f"o-2: {steps(folder, 'o-2')}, waiting for its approval")

        await old.signal("approval", "approved by Ada")
        await new.signal("approval", "approved by Grace")
        print(f"o-2: {await new.result(timeout=60)}")
        if with_builds:
            print(f"o-1: {await old.result(timeout=60)}")
            for build in await client.builds(QUEUE):
                current = "current" if build.current else "old"
                print(f"build {build.build_id} ({current}): {build.open_runs} open orders")
            worker_process.stop([first])
            print("release 1 has no open order left: its worker is stopped")
        else:

            async def failing() -> bool:
                return (await old.describe()).last_error is not None

            deadline = asyncio.get_running_loop().time() + 60
            while not await failing():
                if asyncio.get_running_loop().time() > deadline:
                    raise SystemExit("gave up waiting for o-1's turn to fail")
                await asyncio.sleep(0.05)
            error = (await old.describe()).last_error or ""
            print(f"o-1 is stuck: {error.splitlines()[0][:140]}")
        print(f"steps of o-1: {steps(folder, 'o-1')}")
        print(f"steps of o-2: {steps(folder, 'o-2')}")
    finally:
        worker_process.stop(workers)
        await client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the log go")
    parser.add_argument("--no-builds", action="store_true", help="workers without build ids")
    parser.add_argument(
        "--canary", type=float, metavar="PERCENT", help="ramp release 2 to PERCENT first"
    )
    args = parser.parse_args()
    if args.canary is not None and args.no_builds:
        parser.error("--canary needs build ids: leave out --no-builds")
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-deploy-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder, with_builds=not args.no_builds, canary=args.canary))


if __name__ == "__main__":
    sys.exit(main())
