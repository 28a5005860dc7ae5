"""perdure's pytest plugin (registered through the ``pytest11`` entry point).

Loaded in every pytest run of every project that installs perdure, so it
imports only pytest (and pytest-asyncio, itself a loaded plugin) at import
time; perdure's engine is imported when a fixture is first used. Owns:

- the ``perdure`` marker: ``@pytest.mark.perdure(workflows=[...], activities=[...],
  **options)`` gives the arguments of :class:`perdure.testing.WorkflowEnvironment`;
  markers on the module (``pytestmark``), class and test merge, the closest winning;
- ``perdure_env``: an entered time-skipping ``WorkflowEnvironment`` built from it;
- ``perdure_client``: a real :class:`perdure.Client` on a SQLite file in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from perdure.client import Client
    from perdure.testing._environment import WorkflowEnvironment

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency here
    pytest_asyncio = None  # type: ignore[assignment]

MARKER = "perdure"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(workflows=[...], activities=[...], **options): the WorkflowEnvironment "
        f"arguments of the perdure_env fixture (module, class and test markers merge)",
    )


def environment_options(node: pytest.Item) -> dict[str, Any]:
    """The merged keyword arguments of every ``perdure`` marker on ``node``:
    module, then class, then function; a closer marker's keys win."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(MARKER))):  # farthest first
        if marker.args:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only, "
                f"e.g. @pytest.mark.{MARKER}(workflows=[my_workflow], activities=[my_activity])"
            )
        options.update(marker.kwargs)
    return options


def _make_environment(request: pytest.FixtureRequest) -> WorkflowEnvironment:
    from perdure.testing._environment import WorkflowEnvironment

    node = request.node
    assert isinstance(node, pytest.Item)
    options = environment_options(node)
    if not options.get("workflows"):
        pytest.fail(
            f"{node.nodeid}: the perdure_env fixture needs workflows: mark the test (or the "
            f"module with pytestmark) @pytest.mark.{MARKER}(workflows=[...], activities=[...])",
            pytrace=False,
        )
    try:
        return WorkflowEnvironment(**options)
    except TypeError as exc:
        problem = str(exc)  # failing outside the except block keeps the report to one line
    pytest.fail(f"{node.nodeid}: bad @pytest.mark.{MARKER} arguments: {problem}", pytrace=False)


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def perdure_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
        """A time-skipping :class:`~perdure.testing.WorkflowEnvironment`, entered,
        configured by ``@pytest.mark.perdure(workflows=[...], activities=[...])``."""
        async with _make_environment(request) as env:
            yield env

    @pytest_asyncio.fixture
    async def perdure_client(tmp_path: Path) -> AsyncIterator[Client]:
        """A real :class:`perdure.Client` on a fresh SQLite file in ``tmp_path``
        (no worker: start one with ``perdure.Worker(perdure_client, ...)``)."""
        from perdure.client import Client

        client = await Client.connect(f"sqlite:///{tmp_path / 'perdure.db'}")
        try:
            yield client
        finally:
            await client.close()

else:  # pragma: no cover

    def _needs_asyncio() -> None:
        pytest.fail(
            "perdure's fixtures are async: install pytest-asyncio (pip install pytest-asyncio)",
            pytrace=False,
        )

    @pytest.fixture
    def perdure_env() -> None:
        _needs_asyncio()

    @pytest.fixture
    def perdure_client() -> None:
        _needs_asyncio()
