"""The workflow page names the worker build a run is pinned to
(docs/versioning.md), and nothing for a run that is not pinned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import surface_workflows as wf

import perdure


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """A browser page maker, the open server's URL and the database (the
    browser tests' stack); skips the test without chromium, as they do."""
    import browser_support as bs  # (importing it skips without chromium)

    folder: Path = tmp_path_factory.mktemp("build-ui")
    for browser in bs.launch():
        for stack in bs.serve(folder, [wf.__file__], "a" * 24, "r" * 24):
            yield browser, stack.open_url, stack.db


def test_the_workflow_page_shows_a_pinned_runs_build(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        # (On a queue no worker serves: they stay open, and so pinned.)
        client.start("awaits_an_event", "x", id="ui-b-pinned", task_queue="nobody")
        client.get_handle("ui-b-pinned").set_build_id("2026.12.1")
        client.start("awaits_an_event", "y", id="ui-b-plain", task_queue="nobody")
    for page in bs.new_page(browser):
        page.goto(f"{url}#/workflows/ui-b-pinned")
        expect(page.locator("#wf-build")).to_have_text("build 2026.12.1")
        page.goto(f"{url}#/workflows/ui-b-plain")
        expect(page.locator(".wf-meta")).to_contain_text("task queue nobody")
        expect(page.locator("#wf-build")).to_have_count(0)
