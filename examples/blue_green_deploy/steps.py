"""The log both releases' steps write: one JSON line per step run, to the
file ``$SHOP_LOG`` names."""

from __future__ import annotations

import json
import os


def logged(release: str, step: str, order: str) -> str:
    with open(os.environ["SHOP_LOG"], "a") as log:
        log.write(json.dumps({"release": release, "step": step, "order": order}) + "\n")
    return f"{step} {order}"
