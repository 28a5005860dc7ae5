"""The stock-reservation example: with a transactional activity, a worker
SIGKILLed between the reservation's commit and the record of its
completion leaves the stock taken once (the retry finds the record); with
the same SQL in a plain activity, twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..story import run_story


@pytest.mark.slow
def test_the_stock_is_taken_once_across_the_kill(tmp_path: Path) -> None:
    out = run_story("stock_reservation", tmp_path)
    assert "attempts of each step: [2, 1, 1]" in out, out
    assert "stock now: {'desk': 1, 'lamp': 3}" in out, out
    assert "movements: [('o-1', 'lamp', -2), ('o-1', 'desk', -1)]" in out, out
    assert "each line was taken off the shelf once" in out, out


@pytest.mark.slow
def test_a_plain_activity_takes_it_twice(tmp_path: Path) -> None:
    out = run_story("stock_reservation", tmp_path, "--plain")
    assert "attempts of each step: [2, 1, 1]" in out, out
    assert "stock now: {'desk': 1, 'lamp': 1}" in out, out
    assert "the lamps were taken off the shelf twice" in out, out
