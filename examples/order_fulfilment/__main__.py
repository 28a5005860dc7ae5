"""``python -m examples.order_fulfilment``: kill a worker while it charges a card.

1. A worker process starts; an order is placed.
2. The payment provider charges the card, and while its answer is on the way
   back the worker is killed with SIGKILL (no cleanup, like a power cut).
3. A second worker takes over once the first one's lease expires. The charge
   activity runs again, with the same idempotency key: the provider returns the
   first charge. The flaky label API fails twice and is retried.
4. The receipt, the attempts and the provider's ledger: one charge.

Options: ``--folder DIR`` keeps the database and the world files there
(default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import perdure

from ..worker_process import wait_for
from .payments import PaymentProvider
from .shop import Order, fulfil_order

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_TIMEOUT = 2.0  # how long a dead worker's claim on the charge lasts
DEADLINE = 60.0


def spawn_worker(number: int, url: str, folder: Path) -> subprocess.Popen[bytes]:
    """``perdure worker examples.order_fulfilment.shop`` in a new process."""
    env = {
        **os.environ,
        "SHOP_DIR": str(folder),
        "SHOP_RESPONSE_DELAY": "1.5",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "perdure", "worker", "examples.order_fulfilment.shop",
        "--db", url, "--lease-timeout", str(LEASE_TIMEOUT), "--poll-interval", "0.05",
        "--log-level", "WARNING",
    ]  # fmt: skip
    with (folder / f"worker-{number}.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


async def story(folder: Path) -> int:
    url = f"sqlite:///{folder / 'shop.db'}"
    payments = PaymentProvider(folder / "payments.db")
    order = Order("order-1001", "ada@example.com", "4242 4242 4242 4242", ["lamp", "mug"], 4599)
    print(f"world folder: {folder}")

    client = await perdure.Client.connect(url)
    first = spawn_worker(1, url, folder)
    second = None
    try:
        handle = await client.start(fulfil_order, order, id=order.order_id)
        print(
            f"placed {order.order_id} for {order.cents / 100:.2f} EUR; worker #1 is pid {first.pid}"
        )

        await wait_for("the charge", lambda: payments.charges(order.order_id))
        charge = payments.charges(order.order_id)[0]
        print(f"the provider charged the card: {charge.charge_id} (key {charge.idempotency_key})")
        print("its answer is still on the way back to worker #1 ... kill -9 worker #1")
        first.send_signal(signal.SIGKILL)
        first.wait()

        second = spawn_worker(2, url, folder)
        print(
            f"worker #2 (pid {second.pid}) takes over once #1's lease lapses ({LEASE_TIMEOUT:g}s)"
        )
        receipt = await handle.result(timeout=DEADLINE)
        print(f"order fulfilled: {receipt}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        await client.close()

    attempts = [
        json.loads(line) for line in (folder / "activity-log.jsonl").read_text().splitlines()
    ]
    print("\nactivity attempts (attempt number, worker pid):")
    for name, runs in Counter(a["activity"] for a in attempts).items():
        detail = ", ".join(
            f"#{a['attempt']} pid {a['pid']}" for a in attempts if a["activity"] == name
        )
        print(f"  {name:<24} ran {runs}x  ({detail})")
    charges = payments.charges(order.order_id)
    requests = payments.requests(charge.idempotency_key)
    print(f"\nthe provider received {requests} charge request(s) with key {charge.idempotency_key}")
    print(f"and moved money {len(charges)} time(s): {[c.charge_id for c in charges]}")
    if len(charges) == 1 and receipt.charge_id == charge.charge_id:
        print("charged exactly once.")
        return 0
    print("charged more than once!")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.order_fulfilment")
    parser.add_argument("--folder", type=Path, help="where to keep the database and world files")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-order-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder.resolve()))


if __name__ == "__main__":
    sys.exit(main())
