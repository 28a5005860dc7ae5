"""The worker builds page (#/builds, docs/ui.md): each queue's builds with
the current one, the ramp, the open runs and the live workers, and the
CLI's cues (a build whose runs wait for a worker, in amber; one that can
be shut down); an admin ramps a build, stops the ramp and makes a build
current, and sees what the server refuses; a share being typed survives
the page's refresh; a read token sees no controls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import surface_workflows as wf
from surface_helpers import spawn, wait_for

import perdure

ADMIN, READ = "a" * 24, "r" * 24
NO_RAMP = "\N{EN DASH}"  # (the ramp column of a build that does not ramp)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    """A browser, the browser tests' stack and its folder; skips the test
    without chromium, as they do."""
    import browser_support as bs  # (importing it skips without chromium)

    folder: Path = tmp_path_factory.mktemp("builds-ui")
    for browser in bs.launch():
        for stack in bs.serve(folder, [wf.__file__], ADMIN, READ):
            yield browser, stack, folder


def builds(client: perdure.SyncClient, queue: str) -> list[tuple[str, bool, float | None]]:
    return [(b.build_id, b.current, b.ramp) for b in client.builds(queue)]


def sign_in(page: Any, token: str) -> None:
    """Give the page ``token``: in the dialog the page opened (its first
    401), or in the one the top bar's Token button opens."""
    from playwright.sync_api import expect

    if token == READ:
        expect(page.locator("#token-dialog")).to_be_visible()
    else:
        page.click("#token-button")
    page.fill("#token-input", token)
    page.click("#token-save")
    role = "admin" if token == ADMIN else "read"
    expect(page.locator("#token-button")).to_have_text(f"Token: {role}")


def answer_with(page: Any, body: Any) -> None:
    """Answer the page's ``GET /api/builds`` with ``body``, not the server's."""
    page.route("**/api/builds", lambda route: route.fulfill(json=body))


def test_the_page_lists_each_queues_builds_with_the_clis_cues(ui: tuple[Any, Any, Path]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, stack, folder = ui
    with perdure.SyncClient.connect(stack.db) as client:
        # ui-orders: o1 current, with a run pinned to it and no worker of it
        # (the run waits), o2 ramping at 10% before any worker of it.
        client.set_current_build("ui-orders", "o1")
        client.start("awaits_an_event", "x", id="ui-builds-pinned", task_queue="ui-orders")
        client.get_handle("ui-builds-pinned").set_build_id("o1")
        client.set_ramping_build("ui-orders", "o2", 10)
        # ui-mail: m1's worker lives on after m2 was made current, with no run
        # left: it can be shut down.
        worker = spawn(
            [
                "worker",
                wf.__file__,
                "--db",
                stack.db,
                "--task-queue",
                "ui-mail",
                "--build-id",
                "m1",
            ],
            folder / "m1.log",
        )
        try:
            wait_for(
                lambda: [(b.build_id, b.workers) for b in client.builds("ui-mail")] == [("m1", 1)],
                20,
                "the worker of build m1",
            )
            client.set_current_build("ui-mail", "m2")
            for page in bs.new_page(browser):
                page.goto(f"{stack.open_url}#/")
                page.click("#nav-builds")
                listed = client.builds_by_queue()  # (ui-ramp too, if its test ran first)
                count = sum(len(found) for found in listed.values())
                expect(page.locator("#build-count")).to_have_text(
                    f"{count} builds on {len(listed)} queues"
                )
                sections = page.locator("#builds section")
                expect(sections).to_have_count(len(listed))
                expect(sections.nth(0)).to_have_attribute("data-queue", "ui-mail")

                orders = page.locator("section[data-queue='ui-orders']")
                o1 = orders.locator("tr[data-build='o1']")
                expect(o1.locator("td").nth(1)).to_have_text("current")
                expect(o1.locator("td.open-runs")).to_have_text("1they wait")
                expect(o1).to_have_class("waits")
                expect(o1.locator("td.workers")).to_have_text("0")
                expect(o1.locator("[data-action]")).to_have_count(0)  # (the current build)
                o2 = orders.locator("tr[data-build='o2']")
                expect(o2.locator("td.ramp")).to_have_text("10%")
                expect(o2.locator("td").nth(3)).to_have_text("never")
                expect(o2.locator("[data-action='stop-ramp']")).to_be_visible()
                expect(orders.locator("p.waits")).to_have_text(
                    "Build o1 has 1 open run(s) and no live worker: they wait. Start a "
                    "worker of it (perdure worker ... --build-id o1), or move them (perdure "
                    "build move ID BUILD, after perdure replay ... --build-id o1)."
                )

                mail = page.locator("section[data-queue='ui-mail']")
                m1 = mail.locator("tr[data-build='m1']")
                expect(m1.locator("td.open-runs")).to_have_text("0can be shut down")
                expect(m1.locator("td.workers")).to_have_text("1")
                expect(m1.locator("td.ramp")).to_have_text(NO_RAMP)
                expect(mail.locator("tr[data-build='m2'] td").nth(1)).to_have_text("current")
                expect(mail.locator("p.waits")).to_have_count(0)
        finally:
            assert worker.stop() == 0, worker.output()


def test_an_admin_ramps_stops_the_ramp_and_makes_a_build_current(
    ui: tuple[Any, Any, Path],
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, stack, _ = ui
    with perdure.SyncClient.connect(stack.db) as client:
        client.set_current_build("ui-ramp", "r2")
        client.set_current_build("ui-ramp", "r1")  # (r2: a build beside the current one)
        for page in bs.new_page(browser):
            page.goto(f"{stack.auth_url}#/builds")
            sign_in(page, READ)  # a read token sees the builds, and no control
            section = page.locator("section[data-queue='ui-ramp']")
            r2 = section.locator("tr[data-build='r2']")
            expect(r2.locator("td.workers")).to_have_text("0")
            expect(page.locator("#builds button, #builds input")).to_have_count(0)

            sign_in(page, ADMIN)
            expect(section.locator("tr[data-build='r1'] [data-action]")).to_have_count(0)
            share = r2.locator("input[name='percent']")
            share.fill("25")
            share.evaluate("field => { field.dataset.drawn = 'before'; }")
            # A refresh draws the row again, and keeps what is typed, and the focus.
            expect(r2.locator("input[data-drawn='before']")).to_have_count(0)
            expect(share).to_have_value("25")
            expect(share).to_be_focused()
            r2.locator("[data-action='ramp']").click()
            expect(r2.locator("td.ramp")).to_have_text("25%")
            expect(page.locator(".toast-ok").last).to_contain_text("Build r2 ramps on ui-ramp")
            assert builds(client, "ui-ramp") == [("r1", True, None), ("r2", False, 25.0)]

            r2.locator("[data-action='stop-ramp']").click()
            expect(r2.locator("td.ramp")).to_have_text(NO_RAMP)
            expect(r2.locator("[data-action='stop-ramp']")).to_have_count(0)
            assert builds(client, "ui-ramp") == [("r1", True, None), ("r2", False, None)]

            # A share past 100 is refused by the server, and said on the page.
            r2.locator("input[name='percent']").fill("150")
            r2.locator("[data-action='ramp']").click()
            expect(page.locator(".toast-error").last).to_contain_text(
                "Cannot ramp r2: body.percent: Input should be less than or equal to 100"
            )
            expect(r2.locator("input[name='percent']")).to_have_value("150")  # (kept)
            assert builds(client, "ui-ramp") == [("r1", True, None), ("r2", False, None)]

            page.once("dialog", lambda dialog: dialog.accept())
            r2.locator("[data-action='make-current']").click()
            expect(r2.locator("td").nth(1)).to_have_text("current")
            expect(r2.locator("[data-action]")).to_have_count(0)
            r1 = section.locator("tr[data-build='r1']")
            expect(r1.locator("[data-action='make-current']")).to_be_visible()
            assert builds(client, "ui-ramp") == [("r2", True, None), ("r1", False, None)]

            # r1 made current meanwhile by a client, while the page still
            # shows r2 as current (its refreshes answered with the builds as
            # they were): ramping r1 is refused.
            auth = {"Authorization": f"Bearer {ADMIN}"}
            before = page.request.get(f"{stack.auth_url}api/builds", headers=auth).json()
            answer_with(page, before)
            page.reload()
            expect(r1.locator("input[name='percent']")).to_be_visible()
            client.set_current_build("ui-ramp", "r1")
            r1.locator("input[name='percent']").fill("5")
            r1.locator("[data-action='ramp']").click()
            expect(page.locator(".toast-error").last).to_contain_text(
                "Cannot ramp r1: build 'r1' is the current build of task queue 'ui-ramp'"
            )
            page.unroute("**/api/builds")
            page.reload()
            expect(r1.locator("td").nth(1)).to_have_text("current")
            assert builds(client, "ui-ramp") == [("r1", True, None), ("r2", False, None)]
