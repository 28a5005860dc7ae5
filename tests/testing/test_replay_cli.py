"""``perdure replay`` through the real entry point (``python -m perdure``): the
pre-deploy check fails on an incompatible change and passes a patched one."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from toolkit_support import wait_until

import perdure
from perdure.testing import WorkflowEnvironment

HEADER = """
from datetime import timedelta
from perdure import activity, workflow

@activity.defn
async def reserve(item: str) -> str:
    return f"reserved {item}"

@activity.defn
async def audit(item: str) -> str:
    return f"audited {item}"
"""

VERSIONS = {
    "v1": """
@workflow.defn(name="shop")
async def shop(item: str) -> str:
    r = await reserve(item)
    paid = await workflow.wait_signal("pay", timeout=timedelta(days=3))
    return f"{r}, paid={paid}"
""",
    # An audit step inserted before an already-recorded step: incompatible.
    "v2_incompatible": """
@workflow.defn(name="shop")
async def shop(item: str) -> str:
    await audit(item)
    r = await reserve(item)
    paid = await workflow.wait_signal("pay", timeout=timedelta(days=3))
    return f"{r}, paid={paid}"
""",
    # Other arguments to a recorded step: compatible, but the step gets the old result.
    "v4_other_arguments": """
@workflow.defn(name="shop")
async def shop(item: str) -> str:
    r = await reserve(item.upper())
    paid = await workflow.wait_signal("pay", timeout=timedelta(days=3))
    return f"{r}, paid={paid}"
""",
    # The same change, guarded: old histories take the old path.
    "v3_patched": """
@workflow.defn(name="shop")
async def shop(item: str) -> str:
    if workflow.patched("audit-first"):
        await audit(item)
    r = await reserve(item)
    paid = await workflow.wait_signal("pay", timeout=timedelta(days=3))
    return f"{r}, paid={paid}"
""",
}


def write_versions(root: Path) -> dict[str, Path]:
    paths = {}
    for version, body in VERSIONS.items():
        folder = root / version
        folder.mkdir()
        paths[version] = folder / "shop.py"
        paths[version].write_text(textwrap.dedent(HEADER) + textwrap.dedent(body))
    return paths


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replay(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_DB"}
    env["COLUMNS"] = "200"  # keep rich from wrapping the lines the tests look for
    return subprocess.run(
        [sys.executable, "-m", "perdure", "replay", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def versions(tmp_path: Path) -> dict[str, Path]:
    return write_versions(tmp_path)


@pytest.fixture
async def history_file(versions: dict[str, Path], tmp_path: Path) -> Path:
    """A v1 run: reserved, then paid by signal; saved as `handle.history()` JSON."""
    v1 = load(versions["v1"], "shop_v1_for_history")
    async with WorkflowEnvironment([v1.shop], [v1.reserve, v1.audit]) as env:
        handle = await env.start(v1.shop, "lamp", id="order-1")
        await handle.signal("pay", True)
        assert await handle.result() == "reserved lamp, paid=True"
        path = tmp_path / "order-1.json"
        path.write_text(json.dumps(await handle.history(), indent=1))
    return path


@pytest.fixture
async def database(versions: dict[str, Path], tmp_path: Path) -> str:
    """A SQLite file holding one closed and one open v1 run."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    v1 = load(versions["v1"], "shop_v1_for_db")
    client = await perdure.Client.connect(url)
    async with client, perdure.Worker(client, [v1.shop], [v1.reserve], poll_interval=0.02):
        done = await client.start(v1.shop, "lamp", id="closed-order")
        await done.signal("pay", True)
        assert await done.result(timeout=10) == "reserved lamp, paid=True"
        waiting = await client.start(v1.shop, "desk", id="open-order")

        async def is_waiting() -> bool:
            return (await waiting.describe()).waiting_signals == ["pay"]

        await wait_until(is_waiting, what="the open run's signal wait")
    return url


def test_history_replays_on_the_code_that_wrote_it(
    versions: dict[str, Path], history_file: Path
) -> None:
    done = replay(versions["v1"], "--history", history_file, cwd=history_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 compatible, 0 incompatible" in done.stdout


def test_an_incompatible_change_exits_1_naming_the_first_mismatch(
    versions: dict[str, Path], history_file: Path
) -> None:
    done = replay(versions["v2_incompatible"], "--history", history_file, cwd=history_file.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INCOMPATIBLE order-1 (shop, run " in done.stdout
    assert "history recorded ScheduleActivity 'reserve' (ref 1)" in done.stdout
    assert "issued ScheduleActivity 'audit' (ref 1)" in done.stdout
    assert "shop.py:" in done.stdout  # the line of code that diverged
    assert "0 compatible, 1 incompatible" in done.stdout


def test_a_change_guarded_by_patched_replays(versions: dict[str, Path], history_file: Path) -> None:
    done = replay(versions["v3_patched"], "--history", history_file, cwd=history_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 compatible, 0 incompatible" in done.stdout


def test_other_arguments_to_a_step_pass_with_a_warning(
    versions: dict[str, Path], history_file: Path
) -> None:
    done = replay(
        versions["v4_other_arguments"], "--history", history_file, cwd=history_file.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OTHER ARGUMENTS order-1" in done.stdout
    assert "recorded with ('lamp',), replayed with ('LAMP',)" in done.stdout
    as_json = replay(
        versions["v4_other_arguments"], "--history", history_file, "--json", cwd=history_file.parent
    )
    [row] = json.loads(as_json.stdout)
    assert row["ok"] and len(row["warnings"]) == 1


def test_db_mode_replays_open_and_closed_runs(versions: dict[str, Path], database: str) -> None:
    cwd = versions["v1"].parent
    bad = replay(versions["v2_incompatible"], "--db", database, cwd=cwd)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "INCOMPATIBLE closed-order" in bad.stdout and "INCOMPATIBLE open-order" in bad.stdout

    good = replay(versions["v3_patched"], "--db", database, "--workflow", "shop", cwd=cwd)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "replayed 2 run(s) of 1 workflow type(s): 2 compatible" in good.stdout

    as_json = replay(
        versions["v2_incompatible"], "--db", database, "--since", "1h", "--json", cwd=cwd
    )
    assert as_json.returncode == 1
    rows: list[dict[str, Any]] = json.loads(as_json.stdout)
    assert {(r["workflow_id"], r["ok"]) for r in rows} == {
        ("closed-order", False),
        ("open-order", False),
    }
    assert all(r["error_type"] == "NonDeterminismError" for r in rows)

    later = replay(versions["v2_incompatible"], "--db", database, "--since", "2999-01-01", cwd=cwd)
    assert later.returncode == 0
    assert "no runs of shop to replay" in later.stderr


async def test_db_mode_replays_the_runs_of_one_build(
    versions: dict[str, Path], database: str
) -> None:
    """Before moving a build's runs to new code (perdure build move), replay
    just those: the open order, pinned to build 1 here, not the closed one."""
    client = await perdure.Client.connect(database)
    async with client:
        await client.get_handle("open-order").set_build_id("b1")
    cwd = versions["v1"].parent
    bad = replay(versions["v2_incompatible"], "--db", database, "--build-id", "b1", cwd=cwd)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "INCOMPATIBLE open-order" in bad.stdout and "closed-order" not in bad.stdout
    good = replay(versions["v3_patched"], "--db", database, "--build-id", "b1", cwd=cwd)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "replayed 1 run(s) of 1 workflow type(s): 1 compatible" in good.stdout
    none = replay(versions["v1"], "--db", database, "--build-id", "b2", cwd=cwd)
    assert none.returncode == 0
    assert "no runs of shop pinned to build b2 to replay" in none.stderr


def test_usage_errors_exit_2(
    versions: dict[str, Path], history_file: Path, database: str, tmp_path: Path
) -> None:
    v1 = versions["v1"]
    cases: list[tuple[list[str | Path], str]] = [
        ([v1], "give --history FILE.json or --db URL"),
        ([v1, "--history", history_file, "--db", database], "not both"),
        ([v1, "--history", history_file, "--workflow", "shop"], "do not apply to --history"),
        ([v1, "--history", history_file, "--build-id", "b1"], "do not apply to --history"),
        ([v1, "--db", database, "--build-id", "x" * 201], "at most 200 bytes"),
        ([v1, "--history", tmp_path / "missing.json"], "cannot read history file"),
        ([v1, "--db", database, "--workflow", "nope"], "'nope' is not among"),
        ([v1, "--db", database, "--since", "yesterday-ish"], "--since"),
        ([tmp_path / "nothing.py", "--db", database], "no such file"),
    ]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"not": "a list"}')
    cases.append(([v1, "--history", bad_json], "list of event objects"))
    for args, message in cases:
        done = replay(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)


def test_a_missing_database_is_a_database_error(versions: dict[str, Path], tmp_path: Path) -> None:
    done = replay(versions["v1"], "--db", f"sqlite:///{tmp_path / 'nope.db'}", cwd=tmp_path)
    assert done.returncode == 4
    assert "does not exist" in done.stderr
    assert not (tmp_path / "nope.db").exists()  # a typo must not create an empty database
