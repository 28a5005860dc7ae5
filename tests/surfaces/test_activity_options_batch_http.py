"""``POST /api/batch/activities/update-options`` in process (httpx over ASGI),
on SQLite and PostgreSQL, with a worker of tests/surfaces/async_workflows.py
(``keeps_retrying``'s activity ``down_for_ever`` fails every 50 ms for ever;
``awaits_an_answer_for_ever``'s ``ask_without_a_deadline`` awaits completion
for ever): a dry run lists the activities and changes nothing; a real run
changes the options of each activity of the type named, paused or not, and
no other type's; one whose new options are refused is reported failed while
the others are changed; bad bodies are a 422 saying what is wrong and change
nothing; only an admin token may; the OpenAPI document describes the body
with the one-activity route's option fields. (The choosing itself:
tests/e2e/test_activity_batch.py; the other actions: test_activity_batch_http.py.)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import async_workflows as aw
import httpx
import pytest
import test_activity_batch_http as batch_http
from api_both import ADMIN, BASE, READ, eventually
from test_activity_batch_http import named, started

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

# The activity batch module's fixture: the client, with an in-process worker.
served = batch_http.served

pytestmark = pytest.mark.both_databases

ROUTE = "/api/batch/activities/update-options"
OPTIONS = {
    "start_to_close_timeout",
    "schedule_to_close_timeout",
    "heartbeat_timeout",
    "retry_initial_interval",
    "retry_backoff",
    "retry_max_interval",
    "retry_max_attempts",
    "task_queue",
}


async def change(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await api.post(ROUTE, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def options(client: perdure.Client, ident: str) -> tuple[Any, ...]:
    """The run's one pending activity's options, as describe() shows them."""
    [a] = (await client.get_handle(ident).describe()).pending_activities
    return (a.retry_policy, a.start_to_close_timeout, a.heartbeat_timeout, a.task_queue)


async def paused_and_idle(api: httpx.AsyncClient, ident: str) -> None:
    """Pause the run's activity by id, and wait until no attempt of it runs."""
    answer = await api.post(f"/api/workflows/{ident}/activities/1/pause")
    assert answer.status_code == 200, answer.text

    async def idle() -> bool:
        [shown] = (await api.get(f"/api/workflows/{ident}")).json()["pending_activities"]
        return shown["paused"] and not shown["running"]

    await eventually(idle, f"{ident}'s activity to be paused and idle")


async def test_a_dry_run_lists_the_activities_and_changes_nothing(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(
        served,
        {
            "dry-1": aw.keeps_retrying,
            "dry-2": aw.keeps_retrying,
            "dry-3": aw.awaits_an_answer_for_ever,
        },
    )
    before = {ident: await options(served, ident) for ident in ("dry-1", "dry-2", "dry-3")}

    found = await change(
        api,
        activity_type="down_for_ever",
        start_to_close_timeout=120,
        retry_max_attempts=7,
        dry_run=True,
    )
    assert (found["action"], found["dry_run"]) == ("update_options", True)
    assert named(found["matched"]) == [("dry-1", 1), ("dry-2", 1)]
    assert found["done"] == found["skipped"] == found["failed"] == []
    for row in found["matched"]:
        # Each row is describe()'s pending activity, with its options before the change.
        assert (row["activity_type"], row["start_to_close_timeout"]) == ("down_for_ever", None)
        assert row["run_id"] == (await served.get_handle(row["workflow_id"]).describe()).run_id
    # Any type, of the runs the search names: the one awaiting completion too.
    every = await change(api, search="dry-", heartbeat_timeout=30, dry_run=True)
    assert named(every["matched"]) == [("dry-1", 1), ("dry-2", 1), ("dry-3", 1)]
    limited = await change(api, search="dry-", heartbeat_timeout=30, limit=1, dry_run=True)
    assert len(limited["matched"]) == 1
    assert {ident: await options(served, ident) for ident in before} == before


async def test_each_activity_of_the_type_gets_the_new_options_paused_or_not(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(
        served,
        {
            "pay-1": aw.keeps_retrying,
            "pay-2": aw.keeps_retrying,
            "ask-1": aw.awaits_an_answer_for_ever,
        },
    )
    await paused_and_idle(api, "pay-2")
    other = await options(served, "ask-1")

    changed = await change(
        api,
        activity_type="down_for_ever",
        start_to_close_timeout=120,
        retry_initial_interval=0.05,
        retry_max_interval=0.5,
        retry_backoff=1.5,
        retry_max_attempts=10_000,
    )
    assert (changed["action"], changed["dry_run"]) == ("update_options", False)
    assert named(changed["matched"]) == named(changed["done"]) == [("pay-1", 1), ("pay-2", 1)]
    assert changed["skipped"] == changed["failed"] == []
    for ident in ("pay-1", "pay-2"):
        [a] = (await served.get_handle(ident).describe()).pending_activities
        assert a.start_to_close_timeout == timedelta(minutes=2)
        assert a.retry_policy == perdure.RetryPolicy(
            initial_interval=timedelta(milliseconds=50),
            backoff=1.5,
            max_interval=timedelta(milliseconds=500),
            max_attempts=10_000,
        )
    [still] = (await served.get_handle("pay-2").describe()).pending_activities
    assert still.paused  # (a change of options leaves a paused one paused)
    assert await options(served, "ask-1") == other  # (another type: left alone)


async def test_an_activity_whose_change_is_refused_is_failed_and_the_others_are_done(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(served, {"mix-1": aw.keeps_retrying, "mix-2": aw.awaits_an_answer_for_ever})
    # mix-1 has made attempts and none runs: max_attempts 1 would allow it no more.
    # mix-2's first attempt awaits completion: it runs, so 1 is allowed.
    await paused_and_idle(api, "mix-1")
    kept = await options(served, "mix-1")

    changed = await change(api, search="mix-", retry_max_attempts=1, heartbeat_timeout=60)
    assert named(changed["matched"]) == [("mix-1", 1), ("mix-2", 1)]
    assert named(changed["done"]) == [("mix-2", 1)]
    [failed] = changed["failed"]
    assert (failed["workflow_id"], failed["activity_id"]) == ("mix-1", 1)
    assert "none is running: max_attempts 1 would allow no more" in failed["error"], failed
    assert changed["skipped"] == []
    assert await options(served, "mix-1") == kept  # (refused: nothing of it changed)
    [a] = (await served.get_handle("mix-2").describe()).pending_activities
    assert a.retry_policy is not None and a.retry_policy.max_attempts == 1
    assert a.heartbeat_timeout == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Nothing named, or nothing to change: refused before anything is chosen.
        ({"heartbeat_timeout": 30}, "name which activities to change the options of: give"),
        ({"activity_type": "", "search": "", "heartbeat_timeout": 30}, "name which activities"),
        ({"activity_type": "down_for_ever"}, "update_options changes nothing: give at least one"),
        ({"search": "kept", "task_queue": None}, "update_options changes nothing"),
        # An option no route takes, or another action's.
        ({"search": "kept", "start_to_close": 5}, "body.start_to_close: Extra inputs are not"),
        ({"search": "kept", "reset_attempts": True}, "body.reset_attempts: Extra inputs are not"),
        ({"search": "kept", "new_options": {"task_queue": "q"}}, "body.new_options: Extra"),
        # A value out of range or of the wrong kind (strict, as the one-activity route).
        ({"search": "kept", "start_to_close_timeout": -5}, "body.start_to_close_timeout: Input"),
        ({"search": "kept", "retry_initial_interval": 0}, "body.retry_initial_interval: Input"),
        ({"search": "kept", "retry_backoff": 0.5}, "body.retry_backoff: Input should be greater"),
        ({"search": "kept", "retry_max_attempts": -1}, "body.retry_max_attempts: Input should"),
        ({"search": "kept", "heartbeat_timeout": "30"}, "body.heartbeat_timeout: Input should"),
        ({"search": "kept", "task_queue": "a\x00b"}, "task_queue must not hold the NUL"),
        ({"search": "kept", "heartbeat_timeout": 30, "limit": 0}, "body.limit: Input should"),
        ({"since": "yesterday", "heartbeat_timeout": 30}, "since: cannot read time 'yesterday'"),
    ],
)
async def test_bad_input_is_422_saying_what_is_wrong_and_changes_nothing(
    served: perdure.Client, api: httpx.AsyncClient, body: Any, message: str
) -> None:
    await started(served, {"kept": aw.keeps_retrying})
    before = await options(served, "kept")
    answer = await api.post(ROUTE, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    said = error["detail"] if isinstance(error["detail"], str) else error["message"]
    assert said.startswith(message), error
    assert await options(served, "kept") == before


async def test_a_malformed_request_is_422_and_a_get_405(api: httpx.AsyncClient) -> None:
    bodies: list[Any] = [None, [], {"search": "x", "dry_run": "yes"}]
    for body in bodies:
        answer = await api.post(ROUTE, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["message"].startswith("body"), (body, answer.json())
    not_json = await api.post(ROUTE, content=b"{search")
    assert not_json.status_code == 422
    assert not_json.json()["message"].startswith("the request body is not valid JSON")
    # The action's name in a URL is hyphenated (as the CLI's update-options).
    snake = await api.post("/api/batch/activities/update_options", json={"search": "x"})
    assert snake.status_code == 422
    assert snake.json()["message"].startswith("path.action: Input should be 'pause'")
    # A GET names the method the route takes (the web UI's files would answer 404).
    got = await api.get(ROUTE)
    assert (got.status_code, got.headers["allow"]) == (405, "POST"), got.text


async def test_only_an_admin_token_may_even_a_dry_run(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(served, {"tok-1": aw.keeps_retrying})
    before = await options(served, "tok-1")
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    body = {"activity_type": "down_for_ever", "heartbeat_timeout": 30, "dry_run": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        none = await http.post(ROUTE, json=body)
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        read = {"Authorization": f"Bearer {READ}"}
        for dry_run in (True, False):
            refused = await http.post(ROUTE, json={**body, "dry_run": dry_run}, headers=read)
            assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        admin = {"Authorization": f"Bearer {ADMIN}"}
        answer = await http.post(ROUTE, json=body, headers=admin)
        assert answer.status_code == 200, answer.text
        assert named(answer.json()["matched"]) == [("tok-1", 1)]
    assert await options(served, "tok-1") == before


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    route = spec["paths"][ROUTE]["post"]
    assert "parameters" not in route
    body = route["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        *("type", "since", "until", "search", "attr", "retrying", "build_id"),
        "activity_type",
        *OPTIONS,
        *("limit", "dry_run"),
    }
    assert body["additionalProperties"] is False
    # The options are the one-activity route's fields, but for what a refusal is.
    one = spec["paths"]["/api/workflows/{workflow_id}/activities/{activity_id}/options"]
    fields = one["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(fields) == OPTIONS
    for name in OPTIONS - {"retry_max_attempts"}:
        assert body["properties"][name] == fields[name], name
    attempts = body["properties"]["retry_max_attempts"]
    assert "is failed" in attempts["description"]
    assert attempts["anyOf"] == fields["retry_max_attempts"]["anyOf"]
    assert set(route["responses"]) == {"200", "401", "403", "422", "503"}
    ok = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ActivityOptionsBatchOut"}
    out = spec["components"]["schemas"]["ActivityOptionsBatchOut"]["properties"]
    assert out["action"]["const"] == "update_options"
    assert out["matched"]["items"] == {"$ref": "#/components/schemas/MatchedActivityOut"}
    # The other actions keep their route: "update-options" is not one of them.
    actions = spec["paths"]["/api/batch/activities/{action}"]["post"]["parameters"][0]
    assert actions["schema"]["enum"] == ["pause", "unpause", "reset"]
