"""Client.batch("update_options"): change the priority or the fairness key
of every open run a filter matches (each id's latest), as one run's
``set_priority`` and ``set_fairness_key`` do, each recorded in its history;
a dry run changes nothing; a run that ended meanwhile is skipped; bad
options are refused with what is wrong, and change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import workflow


@workflow.defn
async def tenant_job(tag: str) -> str:
    await workflow.wait_signal("go", timeout=timedelta(hours=1))
    return f"{tag} as {workflow.info().fairness_key} at {workflow.info().priority}"


async def _waiting(client: perdure.Client, ids: list[str]) -> None:
    for workflow_id in ids:
        handle = client.get_handle(workflow_id)

        async def waits(h: Any = handle) -> bool:
            return bool((await h.describe()).waiting_signals)

        await wait_until(waits, what=f"{workflow_id} to wait for its signal")


async def _options(client: perdure.Client, workflow_id: str) -> tuple[int, str | None]:
    d = await client.get_handle(workflow_id).describe()
    return d.priority, d.fairness_key


async def test_the_matching_open_runs_take_the_new_priority_and_key(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [tenant_job], []):
        for n in range(3):
            await client.start(
                tenant_job, "a", id=f"acme-{n}", fairness_key="acme", search_attributes={"t": "a"}
            )
        await client.start(tenant_job, "b", id="globex-0", fairness_key="globex")
        await _waiting(client, ["acme-0", "acme-1", "acme-2", "globex-0"])
        await client.get_handle("acme-2").signal("go", None)  # (ended: not matched)
        assert await client.get_handle("acme-2").result(timeout=30) == "a as acme at 3"

        seen = await client.batch(
            "update_options",
            search_attributes={"t": "a"},
            new_options={"priority": 1},
            dry_run=True,
        )
        assert [r.id for r in seen.matched] == ["acme-1", "acme-0"] and not seen.done
        assert await _options(client, "acme-0") == (3, "acme")  # (the dry run did nothing)

        moved = await client.batch(
            "update_options",
            search_attributes={"t": "a"},
            new_options={"priority": 1, "fairness_key": "acme-gold"},
        )
        assert sorted(moved.done) == ["acme-0", "acme-1"]
        assert (moved.action, moved.skipped, moved.failed) == ("update_options", {}, {})
        for workflow_id in ("acme-0", "acme-1"):
            assert await _options(client, workflow_id) == (1, "acme-gold")
            handle = client.get_handle(workflow_id)

            async def recorded(h: Any = handle) -> bool:  # (by the run's next turn)
                types = {e["type"] for e in await h.history()}
                return {"PriorityChanged", "FairnessKeyChanged"} <= types

            await wait_until(recorded, what=f"{workflow_id}'s history to record both changes")
        assert await _options(client, "globex-0") == (3, "globex")
        assert await _options(client, "acme-2") == (3, "acme")

        # None takes the key away; the runs see it where they run.
        unkeyed = await client.batch(
            "update_options", search="acme-", new_options={"fairness_key": None}
        )
        assert sorted(unkeyed.done) == ["acme-0", "acme-1"]
        await client.get_handle("acme-0").signal("go", None)
        assert await client.get_handle("acme-0").result(timeout=30) == "a as None at 1"
        await client.get_handle("acme-1").signal("go", None)
        await client.get_handle("globex-0").signal("go", None)
        assert await client.get_handle("globex-0").result(timeout=30) == "b as globex at 3"


async def test_a_run_that_ends_meanwhile_is_skipped(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [tenant_job], []):
        for n in range(2):
            await client.start(tenant_job, "c", id=f"c-{n}")
        await _waiting(client, ["c-0", "c-1"])
        real_list = client.list

        async def list_then_end_one(*args: Any, **kwargs: Any) -> list[Any]:
            found = await real_list(*args, **kwargs)
            if any(r.id == "c-0" for r in found):
                await client.get_handle("c-0").signal("go", None)
                await client.get_handle("c-0").result(timeout=30)
            return found

        monkeypatch.setattr(client, "list", list_then_end_one)
        done = await client.batch("update_options", search="c-", new_options={"priority": 5})
        monkeypatch.undo()
        assert (sorted(done.done), done.skipped) == (["c-1"], {"c-0": "it has ended"})
        assert await _options(client, "c-1") == (5, None)
        await client.get_handle("c-1").signal("go", None)


async def test_bad_options_are_refused_and_change_nothing(client: perdure.Client) -> None:
    async with fast_worker(client, [tenant_job], []):
        await client.start(tenant_job, "d", id="d-0", fairness_key="acme")
        await _waiting(client, ["d-0"])
        bad: list[tuple[str, dict[str, Any], type[Exception], str]] = [
            ("update_options", {}, ValueError, "update_options needs new_options: a mapping"),
            ("update_options", {"new_options": {}}, ValueError, "needs new_options"),
            ("update_options", {"new_options": {"queue": "x"}}, ValueError, "no option queue"),
            (
                "update_options",
                {"new_options": {"priority": 0}},
                ValueError,
                r"new_options\['priority'\] must be an int from 1",
            ),
            ("update_options", {"new_options": {"priority": None}}, TypeError, "not None"),
            ("update_options", {"new_options": {"priority": "1"}}, TypeError, "must be an int"),
            (
                "update_options",
                {"new_options": {"fairness_key": ""}},
                ValueError,
                r"new_options\['fairness_key'\] must be a non-empty string",
            ),
            (
                "update_options",
                {"new_options": {"priority": 2}, "reason": "why"},
                ValueError,
                "reason goes with cancel, terminate and reset",
            ),
            (
                "update_options",
                {"new_options": {"priority": 2}, "status": "failed"},
                ValueError,
                "only open runs can be changed",
            ),
            ("cancel", {"new_options": {"priority": 2}}, ValueError, "goes with update_options"),
        ]
        for action, options, error, message in bad:
            with pytest.raises(error, match=message):
                await client.batch(action, search="d-", **options)  # type: ignore[arg-type]
        assert await _options(client, "d-0") == (3, "acme")
        await client.get_handle("d-0").signal("go", None)
