"""Record the golden histories by running the golden workflows for real.

Usage: ``python tests/golden/record.py`` (writes the histories of the current
history format, ``NAME_vN.json``, missing from tests/golden/histories/;
``--overwrite`` re-records the existing ones too). Each format's histories
stay: a newer perdure must keep replaying them all.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import golden_workflows as g  # noqa: E402

import perdure  # noqa: E402
from perdure import schedules  # noqa: E402
from perdure._history import HISTORY_FORMAT  # noqa: E402


async def main() -> None:
    client = await perdure.Client.connect("sqlite://:memory:")
    async with perdure.Worker(client, g.WORKFLOWS, g.ACTIVITIES, poll_interval=0.02):
        runs = {}
        h1 = await client.start(g.golden_order, g.Order("o-1", 1999), id="golden-approved")
        await asyncio.sleep(0.2)
        await h1.signal("approve", "yes")
        runs["order_approved"] = h1
        h2 = await client.start(g.golden_order, g.Order("o-2", 500), id="golden-timeout")
        runs["order_timeout"] = h2
        h3 = await client.start(g.golden_cancel, "o-3", id="golden-cancel")
        await asyncio.sleep(0.2)
        await h3.cancel()
        runs["cancel_saga"] = h3
        runs["activity_attempts"] = await client.start(g.golden_retries, 2, id="golden-retries")
        # A run made by a reset (session 42): the old run's first turn kept,
        # the second taken again, then WorkflowReset.
        h5 = await client.start(g.golden_retries, 2, id="golden-reset")
        await h5.result(timeout=20)
        first_done = next(e for e in await h5.history() if e["type"] == "ActivityCompleted")
        runs["reset_run"] = await h5.reset(to_event=first_done["seq"], reason="golden")
        # A schedule's run (session 43), from its start to its continue-as-new:
        # times, a pause, an unpause and a trigger.
        schedules.MAX_HISTORY = 40
        schedule = await client.create_schedule(
            "golden", g.golden_retries, 0, every=timedelta(seconds=1)
        )
        first = (await schedule.workflow_handle.describe()).run_id
        await asyncio.sleep(2.5)
        await schedule.pause("golden")
        await asyncio.sleep(1.5)
        await schedule.trigger()
        await schedule.unpause()
        while (await schedule.workflow_handle.describe()).run_id == first:
            await asyncio.sleep(0.1)
        runs["schedule"] = client.get_handle(schedule.workflow_handle.id, first)
        await schedule.delete()
        # Signals from workflow code (session 44): delivered, and one to nobody.
        await client.start(g.golden_mailbox, 2, id="golden-mailbox")
        runs["signal_workflow"] = await client.start(
            g.golden_notifier, "golden-mailbox", id="golden-notifier"
        )
        # Search attributes (session 45): a start's, then set, changed, removed.
        runs["search_attributes"] = await client.start(
            g.golden_tagged, "o-9", id="golden-tagged", search_attributes={"region": "eu"}
        )
        # A cancel request from workflow code (session 45): delivered, and one to nobody.
        await client.start(g.golden_mailbox, 1, id="golden-cancelled")
        runs["cancel_workflow"] = await client.start(
            g.golden_canceller, "golden-cancelled", id="golden-canceller"
        )
        # Updates (session 46): answered after an activity, rejected, retried.
        desk = await client.start(g.golden_desk, 3, id="golden-desk")
        await desk.update("ask", "o-10", update_id="golden-1")
        try:
            await desk.update("ask", "no", update_id="golden-2")
        except perdure.UpdateRejectedError:
            pass
        await desk.update("ask", "o-11", update_id="golden-3")
        runs["update"] = desk
        # Streams (session 47): values written and closed by the workflow.
        runs["stream"] = await client.start(g.golden_streamer, 3, id="golden-streamer")
        # Priorities (session 48): the run's, an activity's own, a child's own.
        runs["priority"] = await client.start(
            g.golden_prioritised, "o-12", id="golden-prioritised", priority=2
        )
        bumped = await client.start(g.golden_bumped, "o-13", id="golden-bumped", priority=4)
        await asyncio.sleep(0.2)
        await bumped.set_priority(2)
        await bumped.signal("go")
        runs["priority_changed"] = bumped
        rekeyed = await client.start(
            g.golden_rekeyed, "o-14", id="golden-rekeyed", fairness_key="acme"
        )
        await asyncio.sleep(0.2)
        await rekeyed.set_fairness_key("globex")
        await rekeyed.signal("go")
        runs["fairness_key_changed"] = rekeyed
        for name, handle in runs.items():
            try:
                await handle.result(timeout=20)
            except (perdure.WorkflowCancelledError, perdure.WorkflowTerminatedError):
                pass
            history = await handle.history()
            out = HERE / "histories" / f"{name}_v{HISTORY_FORMAT}.json"
            if out.exists() and "--overwrite" not in sys.argv:
                print(f"kept {out} (pass --overwrite to re-record it)")
                continue
            out.write_text(json.dumps(history, indent=1) + "\n")
            print(f"wrote {out} ({len(history)} events)")
    await client.close()


asyncio.run(main())
