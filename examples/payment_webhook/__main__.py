"""``python -m examples.payment_webhook``: a checkout whose charge is answered
by the payment provider's webhook, minutes later, while no worker runs.

1. A worker process serves ``payments``. Three checkouts start; each one's
   ``charge`` sends the provider a request with its task token, and ends
   with ``activity.raise_complete_async()``: the charge waits for the
   webhook, as a row in the database.
2. The worker is killed (SIGKILL). Nothing is lost: ``describe()`` shows each
   charge awaiting completion.
3. The provider answers, and the webhook handler completes each waiting
   attempt with its token: one charge succeeds, one card is declined (the
   checkout reports it), one answer is a provider error (the attempt fails,
   to be sent again).
4. A new worker starts. The charged order ships; the failed attempt's retry
   sends the request again with the same idempotency key and a new token,
   and the provider's answer completes it. A repeated delivery is ignored.
   The provider's ledger shows each order charged once.

Options: ``--folder DIR`` keeps the database and the provider's files there
(default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import perdure

from .. import worker_process
from ..worker_process import wait_for
from . import provider
from .payments import checkout
from .webhook import handle_delivery

ORDERS = [("o-1001", 4200), ("o-1002-declined", 1999), ("o-1003-flaky", 12500)]
LEASE_TIMEOUT = 1.0


def spawn_worker(number: int, url: str, folder: Path) -> subprocess.Popen[bytes]:
    env = {provider.DIR_ENV: str(folder)}
    log = folder / f"worker-{number}.log"
    return worker_process.spawn_worker(
        "examples.payment_webhook.payments", url, log, env, LEASE_TIMEOUT
    )


async def deliver(client: perdure.Client, answered: set[str]) -> None:
    """The provider answers the requests it has not answered; the webhook
    handler applies each delivery."""
    for delivery in provider.process(answered):
        order = next(r["order"] for r in provider.requests() if r["token"] == delivery["token"])
        outcome = await handle_delivery(client, delivery)
        print(f"  webhook {delivery['status']:<9} for {order}: {outcome}")


async def story(folder: Path) -> int:
    os.environ[provider.DIR_ENV] = str(folder)
    url = f"sqlite:///{folder / 'payments.db'}"
    print(f"world folder: {folder}")
    client = await perdure.Client.connect(url)
    workers = [spawn_worker(1, url, folder)]
    answered: set[str] = set()
    try:
        handles = [await client.start(checkout, o, c, id=f"checkout-{o}") for o, c in ORDERS]
        print(f"worker #1 (pid {workers[0].pid}) serves three checkouts")

        async def all_waiting() -> bool:
            for handle in handles:
                pending = (await handle.describe()).pending_activities
                if not (pending and pending[0].awaiting_completion):
                    return False
            return True

        deadline = time.monotonic() + 60
        while not await all_waiting():
            if time.monotonic() > deadline:
                raise SystemExit("gave up after 60s waiting for the charges to wait")
            await asyncio.sleep(0.05)
        print(f"  the provider has {len(provider.requests())} charge requests; each charge waits")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        print("kill -9 worker #1: no worker runs now")
        for handle in handles:
            [pending] = (await handle.describe()).pending_activities
            waiting = pending.awaiting_completion
            print(f"  {handle.id}: {pending.activity_type} awaiting completion: {waiting}")
        print("the provider answers (no worker is needed to take an answer):")
        await deliver(client, answered)
        workers.append(spawn_worker(2, url, folder))
        print(f"worker #2 (pid {workers[1].pid}) starts")
        await wait_for("the retried request", lambda: len(provider.requests()) == len(ORDERS) + 1)
        print("  the failed attempt's retry sent its request again (same key, new token)")
        await deliver(client, answered)
        print("the provider delivers its first answer again:")
        first = provider.requests()[0]
        again = {"token": first["token"], "status": "succeeded", "charge": "ch_0001", "cents": 4200}
        print(f"  webhook succeeded for {first['order']}: {await handle_delivery(client, again)}")
        print("results:")
        for handle in handles:
            print(f"  {await handle.result(timeout=60)}")
    finally:
        worker_process.stop(workers)
        await client.close()
    ledger = provider.ledger()
    print(f"the provider's ledger: {len(ledger)} charges")
    for line in ledger:
        order = next(r["order"] for r in provider.requests() if r["key"] == line["key"])
        print(f"  {line['id']}: {line['cents']} cents for {order}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the database and the provider's files go")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-payments-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder))


if __name__ == "__main__":
    sys.exit(main())
