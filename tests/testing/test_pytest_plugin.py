"""The pytest plugin: the ``perdure`` marker and the ``perdure_env`` and
``perdure_client`` fixtures (here, in this repo's auto mode; and in a fresh
pytest run in strict mode, where its errors can be seen)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toolkit_support import THREE_DAYS, Charge, charge_card, greet, pays, waits_for_approval

import perdure
from perdure.testing import WorkflowEnvironment

pytestmark = pytest.mark.perdure(workflows=[waits_for_approval, pays], activities=[charge_card])


async def test_perdure_env_is_a_running_time_skipping_environment(
    perdure_env: WorkflowEnvironment,
) -> None:
    assert perdure_env.time_skipping and perdure_env.check_determinism
    before = perdure_env.now()
    assert await perdure_env.execute(waits_for_approval, "o-1") == "o-1: escalated"
    assert perdure_env.now() - before >= THREE_DAYS


def fake_charge(charge: Charge) -> str:
    return f"fake-{charge.order_id}"


@pytest.mark.perdure(activity_overrides={"charge_card": fake_charge})
async def test_a_test_marker_adds_to_the_module_marker(perdure_env: WorkflowEnvironment) -> None:
    assert await perdure_env.execute(pays, "o-2") == "fake-o-2"


@pytest.mark.perdure(workflows=[waits_for_approval], time_skipping=False)
async def test_the_closest_marker_wins(perdure_env: WorkflowEnvironment) -> None:
    assert not perdure_env.time_skipping
    assert [w.__name__ for w in perdure_env.workflows] == ["waits_for_approval"]


async def test_perdure_client_is_a_real_client_on_a_file(
    perdure_client: perdure.Client, tmp_path: Path
) -> None:
    assert (tmp_path / "perdure.db").exists()
    async with perdure.Worker(perdure_client, [waits_for_approval], [greet], poll_interval=0.02):
        handle = await perdure_client.start(waits_for_approval, "o-3")
        await handle.signal("approval", "yes")
        assert await handle.result(timeout=10) == "o-3: yes"


PLUGIN_TESTS = """
import pytest
from perdure import StoreError, workflow

@workflow.defn
async def hello(name: str) -> str:
    await workflow.sleep(86400)
    return "hello " + name

kept = []

@pytest.mark.asyncio
@pytest.mark.perdure(workflows=[hello])
async def test_env_works_in_strict_mode(perdure_env):
    assert await perdure_env.execute(hello, "x") == "hello x"

@pytest.mark.asyncio
async def test_client_is_open(perdure_client):
    kept.append(perdure_client)
    assert await perdure_client.list() == []

@pytest.mark.asyncio
async def test_client_was_closed_at_teardown():
    with pytest.raises(StoreError, match="closed"):
        await kept[0].list()

@pytest.mark.asyncio
async def test_no_marker(perdure_env):
    pass

@pytest.mark.asyncio
@pytest.mark.perdure(workflows=[hello], time_skiping=True)
async def test_misspelt_option(perdure_env):
    pass
"""


def test_the_plugin_in_a_fresh_strict_mode_run(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = strict
            asyncio_default_fixture_loop_scope = function
            addopts = --strict-markers -p no:cacheprovider
            filterwarnings = error
            """
        )
    )
    (tmp_path / "test_plugin_use.py").write_text(PLUGIN_TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "test_plugin_use.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert "3 passed, 2 errors" in out, out + done.stderr
    assert "PASSED test_plugin_use.py::test_env_works_in_strict_mode" in out
    assert "PASSED test_plugin_use.py::test_client_was_closed_at_teardown" in out
    assert "the perdure_env fixture needs workflows: mark the test" in out
    assert "bad @pytest.mark.perdure arguments" in out and "time_skiping" in out


def test_the_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("perdure(") for line in pytestconfig.getini("markers"))


def test_the_plugin_imports_no_engine_module_of_its_own() -> None:
    # The plugin loads in every pytest run: it must not pull in the
    # environment (and with it SQLite, the worker and the runtime) by itself.
    code = (
        "import sys, perdure.testing.pytest_plugin;"
        "print(any(m.startswith('perdure.testing._') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
