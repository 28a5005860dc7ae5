"""A workflow's streams in the web UI, in headless Chromium (Debian's
``chromium``, driven by Playwright): the Streams section lists each stream
(key, values, closed), shows the chosen one's values (a stream of strings as
its text) and follows it live through the API's event stream, which the page
reads with fetch and the token in a header (a read token is enough). A real
``perdure server`` (open, and one with tokens) and ``perdure worker``
(serving this file's workflow) run in subprocesses.

Skipped when chromium is absent, except in CI (``CI=true``), where it must
run: ``make chromium`` installs it (as tests/surfaces/test_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from browser_support import Stack, launch, new_page, serve  # (skips without chromium)
from playwright.sync_api import Browser, Page, expect
from surface_helpers import wait_for

import perdure
from perdure import activity, workflow

ADMIN, READ = "admin-token-for-stream-tests", "read-token-for-stream-tests"

# ---------------------------------------------------------------- the worker's code

NOTES = "notes/é 1"  # a key that needs encoding: a slash, a space, unicode


@activity.defn
def opening(words: list[str]) -> int:
    """Writes the story's first words to ``answer``, one value each."""
    for word in words:
        activity.write_stream("answer", word)
    return len(words)


@workflow.defn
async def storyteller(title: str) -> str:
    """Writes a note, the first words (by an activity), then each ``say``
    signal's text to ``answer``; a ``say`` of null closes it. Then waits for
    ``finish``."""
    workflow.write_stream(NOTES, {"title": title})
    await opening(["Once", " upon"])
    while (said := await workflow.wait_signal("say", timeout=timedelta(days=1))) is not None:
        workflow.write_stream("answer", said)
    workflow.close_stream("answer")
    await workflow.wait_signal("finish", timeout=timedelta(days=1))
    return "told"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database with a worker, an open server and a server with tokens: the URLs."""
    yield from serve(tmp_path_factory.mktemp("streams-ui"), [__file__], ADMIN, READ)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


def started(client: perdure.SyncClient, ident: str) -> perdure.SyncWorkflowHandle[Any]:
    client.start("storyteller", "a tale", id=ident)
    handle = client.get_handle(ident)
    wait_for(lambda: handle.describe().waiting_signals == ["say"], 20, f"{ident} to wait")
    return handle


# ---------------------------------------------------------------- tests


def test_the_streams_section_follows_a_stream_live(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        handle = started(client, "ui-story-1")
        # Events come as they are written: not at the page's 2 s refresh.
        page.goto(stack.open_url + "#/workflows/ui-story-1")
        table = page.locator("#streams-table")
        expect(table.locator("tbody tr")).to_have_count(2)
        answer = table.locator("tr[data-key='answer']")
        expect(answer).to_have_class("chosen")  # (the first, by key)
        expect(answer).to_contain_text("2")
        expect(answer).to_contain_text("open")
        expect(page.locator("#stream-text")).to_have_text("Once upon")
        expect(page.locator("#stream-state")).to_have_text("following…")

        handle.signal("say", " a time")
        expect(page.locator("#stream-text")).to_have_text("Once upon a time")
        handle.signal("say", ", there was")
        expect(page.locator("#stream-text")).to_have_text("Once upon a time, there was")
        expect(answer).to_contain_text("4")
        page.locator("#streams details summary").click()
        values = page.locator("#stream-values li")
        expect(values).to_have_count(4)
        expect(values.nth(2)).to_have_attribute("data-position", "2")
        expect(values.nth(2)).to_contain_text('" a time"')
        handle.signal("say", ".")  # (the list stays open as values come)
        expect(values.nth(4)).to_be_visible()
        expect(values.nth(4)).to_contain_text('"."')

        # Another stream, its key needing encoding: its values (not strings: a list).
        table.locator("tr", has_text=NOTES).click()
        expect(table.locator("tr.chosen")).to_have_attribute("data-key", NOTES)
        expect(page.locator("#stream-values li")).to_have_count(1)
        expect(page.locator("#stream-values")).to_contain_text('{"title":"a tale"}')
        expect(page.locator("#stream-text")).to_have_count(0)

        # Back to the first; the workflow closes it: its end.
        answer.click()
        expect(page.locator("#stream-text")).to_have_text("Once upon a time, there was.")
        handle.signal("say", None)
        expect(page.locator("#stream-state")).to_have_text("ended")
        expect(answer).to_contain_text("closed")
        handle.signal("finish")
        assert handle.result(timeout=20) == "told"
        expect(page.locator(".wf-title .badge")).to_have_text("completed")
        expect(table.locator("tr", has_text=NOTES)).to_contain_text("ended with the run")


def test_a_read_token_follows_a_stream(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        handle = started(client, "ui-story-2")
        page.goto(f"{stack.auth_url}#/workflows/ui-story-2")
        expect(page.locator("#token-dialog")).to_be_visible()  # 401: the UI asks for a token
        page.fill("#token-input", READ)
        page.click("#token-save")
        expect(page.locator("#stream-text")).to_have_text("Once upon")
        handle.signal("say", " a midnight")
        expect(page.locator("#stream-text")).to_have_text("Once upon a midnight")
        handle.terminate("the end")
        expect(page.locator("#stream-state")).to_have_text("ended")
        expect(page.locator("#streams-table tr[data-key='answer']")).to_contain_text(
            "ended with the run"
        )


def test_a_run_without_streams_says_so(stack: Stack, page: Page) -> None:
    with perdure.SyncClient.connect(stack.db) as client:
        client.start("no_worker_runs_this", id="ui-story-none")
    page.goto(stack.open_url + "#/workflows/ui-story-none")
    expect(page.locator("#streams-none")).to_contain_text("workflow.write_stream")
    expect(page.locator("#streams h2")).to_have_text("Streams (0)")
