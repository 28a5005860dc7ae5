"""The payment provider, faked in files so that the example runs offline and
its tests can count what really happened (``PAYMENTS_DIR``):

- ``requests.jsonl``: each charge request a ``charge`` attempt submitted,
  with its idempotency key and the task token to answer it with;
- ``ledger.jsonl``: the money the provider moved, one line per charge. A
  request whose key was charged already is answered with that charge again,
  and moves no money (the provider deduplicates by key, as real ones do).

``process`` answers the requests not answered yet, as webhook deliveries;
an order id decides the answer: "declined" in it declines the card; "flaky"
answers its first request with a provider error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DIR_ENV = "PAYMENTS_DIR"


def _folder() -> Path:
    return Path(os.environ[DIR_ENV])


def _lines(name: str) -> list[dict[str, Any]]:
    path = _folder() / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _append(name: str, record: dict[str, Any]) -> None:
    with (_folder() / name).open("a") as out:
        out.write(json.dumps(record) + "\n")
        out.flush()
        os.fsync(out.fileno())


def submit(order_id: str, cents: int, *, key: str, token: str) -> None:
    """A charge request, sent by the ``charge`` activity."""
    _append("requests.jsonl", {"order": order_id, "cents": cents, "key": key, "token": token})


def requests() -> list[dict[str, Any]]:
    return _lines("requests.jsonl")


def ledger() -> list[dict[str, Any]]:
    return _lines("ledger.jsonl")


def process(answered: set[str]) -> list[dict[str, Any]]:
    """The webhook deliveries for the requests whose tokens are not in
    ``answered`` (which it extends): each ``{"token", "status", ...}``."""
    deliveries = []
    for request in requests():
        if request["token"] in answered:
            continue
        answered.add(request["token"])
        tries = sum(1 for r in requests() if r["key"] == request["key"])
        if "declined" in request["order"]:
            deliveries.append({"token": request["token"], "status": "declined"})
        elif "flaky" in request["order"] and tries == 1:
            deliveries.append({"token": request["token"], "status": "error"})
        else:
            charged = next((c for c in ledger() if c["key"] == request["key"]), None)
            if charged is None:
                charged = {"key": request["key"], "id": f"ch_{len(ledger()) + 1:04}"}
                charged["cents"] = request["cents"]
                _append("ledger.jsonl", charged)
            deliveries.append(
                {"token": request["token"], "status": "succeeded", "charge": charged["id"],
                 "cents": charged["cents"]}
            )  # fmt: skip
    return deliveries
