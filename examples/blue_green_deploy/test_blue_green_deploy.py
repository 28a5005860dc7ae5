"""The blue-green deploy example: with build ids, the order started on
release 1 ships on release 1 and the one started after the deploy runs
release 2; as a canary first, release 2 takes the orders whose ids fall in
its share; without build ids, release 2 meets release 1's history and the
order waits with a NonDeterminismError."""

from __future__ import annotations

from pathlib import Path

import pytest

from perdure._store.records import in_ramp

from ..story import run_story


@pytest.mark.slow
def test_each_order_ships_on_the_release_that_started_it(tmp_path: Path) -> None:
    out = run_story("blue_green_deploy", tmp_path)
    assert "o-1: ['release 1: reserve'], waiting for its approval; build 2026.12.1" in out, out
    assert "o-1: o-1 shipped by release 1 (approved by Ada)" in out, out
    assert "o-2: o-2 shipped by release 2 (approved by Grace)" in out, out
    assert "build 2026.12.1 (old): 0 open orders" in out, out
    assert "steps of o-1: ['release 1: reserve', 'release 1: ship']" in out, out
    assert (
        "steps of o-2: ['release 2: check_fraud', 'release 2: reserve', 'release 2: ship']"
    ) in out, out


@pytest.mark.slow
def test_without_builds_the_new_release_meets_the_old_history(tmp_path: Path) -> None:
    out = run_story("blue_green_deploy", tmp_path, "--no-builds")
    assert "o-1 is stuck: non-determinism in workflow 'order' 'o-1'" in out, out
    assert "o-2: o-2 shipped by release 2 (approved by Grace)" in out, out
    assert "steps of o-1: ['release 1: reserve']" in out, out


@pytest.mark.slow
def test_a_canary_takes_the_orders_whose_ids_fall_in_its_share(tmp_path: Path) -> None:
    out = run_story("blue_green_deploy", tmp_path, "--canary", "50")
    assert "ramping release 2: it takes 50% of the new orders beside release 1" in out, out
    sides = {order: in_ramp(order, 50) for order in ("c-1", "c-2", "c-3", "c-4")}
    assert set(sides.values()) == {True, False}  # (both releases take some)
    for order, ramped in sides.items():
        release, build = (2, "2026.12.2") if ramped else (1, "2026.12.1")
        assert f"{order}: build {build}," in out, out
        assert f"{order}: {order} shipped by release {release} (approved by Barbara)" in out, out
    assert "release 2 is made current: its ramp ends, it takes every new order" in out, out
    assert "o-2: o-2 shipped by release 2 (approved by Grace)" in out, out
    assert "o-1: o-1 shipped by release 1 (approved by Ada)" in out, out
